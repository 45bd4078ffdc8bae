#!/usr/bin/env bash
# Builds the Debian package: release binary, man page and completions, then `cargo deb`.
# Needs cargo-deb (`cargo install cargo-deb`); the package lands in target/debian/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release
mkdir -p target/packaging
target/release/posbridge man > target/packaging/posbridge.1
target/release/posbridge completions bash > target/packaging/posbridge.bash
cargo deb --no-build "$@"
