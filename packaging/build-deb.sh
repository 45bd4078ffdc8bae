#!/usr/bin/env bash
# Builds the Debian package: release binary, man page and completions, then `cargo deb`.
# Needs cargo-deb (`cargo install cargo-deb --locked`); the package lands in
# target/debian/. With POSBRIDGE_BIN set, packages that binary instead of building one
# (the VM rig packages the binary under test): it is copied, stripped, into a staging
# target directory that cargo-deb reads as target/release/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n ${POSBRIDGE_BIN:-} ]]; then
    stage="${POSBRIDGE_DEB_STAGE:-target/deb-stage}"
    mkdir -p "$stage/release"
    objcopy --strip-debug "$POSBRIDGE_BIN" "$stage/release/posbridge"
    export CARGO_TARGET_DIR="$stage"
    release="$stage/release"
else
    cargo build --release
    release="${CARGO_TARGET_DIR:-target}/release"
fi
mkdir -p "$release/packaging"
# gzip -n: no name or time stamp, so the same man page makes the same file.
"$release/posbridge" man | gzip -9n >"$release/packaging/posbridge.1.gz"
"$release/posbridge" completions bash >"$release/packaging/posbridge.bash"
cargo deb --no-build "$@"
