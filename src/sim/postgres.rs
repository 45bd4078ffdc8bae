//! A throwaway PostgreSQL cluster from Debian's own binaries, for the fleet's tests,
//! benchmark and demo: `initdb` into a scratch directory, `pg_ctl` to start and stop
//! it, listening only on a unix socket in that directory.
//!
//! `initdb` refuses to run as root, so as root the cluster belongs to the `postgres`
//! user the Debian package creates (or `nobody`). Where no PostgreSQL is installed and
//! this runs as root with `apt-get`, [`binaries`] installs Debian's `postgresql`
//! package (unless `POSBRIDGE_PG_INSTALL=0`).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Installs happen one at a time within a process.
static INSTALL: Mutex<()> = Mutex::new(());

/// The directory holding `initdb` and `pg_ctl` (the newest under
/// `/usr/lib/postgresql/*/bin`, or `POSBRIDGE_PG_BIN`), installing Debian's package
/// where that is possible. The error says why there is none.
pub fn binaries() -> Result<PathBuf, String> {
    if let Some(found) = find() {
        return Ok(found);
    }
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = find() {
        return Ok(found);
    }
    if std::env::var("POSBRIDGE_PG_INSTALL").is_ok_and(|v| v == "0") {
        return Err("PostgreSQL is not installed and POSBRIDGE_PG_INSTALL=0".into());
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(
            "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb) and \
                    installing it needs root: apt-get install postgresql"
                .into(),
        );
    }
    for args in [
        &["-q", "update"][..],
        &[
            "-q",
            "install",
            "-y",
            "--no-install-recommends",
            "postgresql",
        ][..],
    ] {
        let status = Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=300"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("PostgreSQL is not installed and apt-get cannot run: {e}"))?;
        if !status.success() {
            return Err(format!(
                "PostgreSQL is not installed and `apt-get {}` failed ({status})",
                args.join(" ")
            ));
        }
    }
    find().ok_or_else(|| "apt-get installed postgresql but no initdb was found".into())
}

fn find() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("POSBRIDGE_PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").exists().then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A running private cluster; stopped and removed when dropped.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    port: u16,
    durable: bool,
}

/// The database the cluster is created with.
pub const DATABASE: &str = "fleet";
/// Its superuser.
pub const USER: &str = "posbridge";

impl PgCluster {
    /// Creates and starts a cluster with a database [`DATABASE`]. `durable: false`
    /// turns fsync off, which tests want; a benchmark wants it on.
    /// Installs PostgreSQL first where [`binaries`] can.
    pub fn start(durable: bool) -> Result<PgCluster, String> {
        PgCluster::start_with(binaries()?, durable)
    }

    /// The same, with an installed PostgreSQL only: never installs anything.
    pub fn start_if_installed(durable: bool) -> Result<PgCluster, String> {
        let bin = find().ok_or(
            "PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/initdb; \
             on Debian: apt-get install postgresql)",
        )?;
        PgCluster::start_with(bin, durable)
    }

    fn start_with(bin: PathBuf, durable: bool) -> Result<PgCluster, String> {
        let dir = tempfile::Builder::new()
            .prefix("posbridge-pg-")
            .tempdir()
            .map_err(|e| format!("scratch directory: {e}"))?;
        let owner = if nix::unistd::geteuid().is_root() {
            Some(unprivileged_user()?)
        } else {
            None
        };
        let cluster = PgCluster {
            dir,
            bin,
            owner,
            port: 5432,
            durable,
        };
        std::fs::set_permissions(cluster.dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("scratch directory: {e}"))?;
        for sub in ["data", "run"] {
            let path = cluster.dir.path().join(sub);
            std::fs::create_dir(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some((uid, gid)) = cluster.owner {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .map_err(|e| format!("chown {}: {e}", path.display()))?;
            }
        }
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data().display().to_string(),
                "-U",
                USER,
                "--auth=trust",
                "--no-locale",
                "--encoding=UTF8",
                "--no-sync",
            ],
        )?;
        cluster.start_server()?;
        let status = Command::new(cluster.bin.join("createdb"))
            .args(["-h", &cluster.socket_dir().display().to_string()])
            .args(["-p", &cluster.port.to_string(), "-U", USER, DATABASE])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("createdb: {e}"))?;
        if !status.status.success() {
            return Err(format!(
                "createdb: {}",
                String::from_utf8_lossy(&status.stderr).trim()
            ));
        }
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of the server's unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// The server's log.
    pub fn log_path(&self) -> PathBuf {
        self.socket_dir().join("postgres.log")
    }

    /// The connection string of the database, for `--database`.
    pub fn url(&self) -> String {
        format!(
            "host={} port={} user={USER} dbname={DATABASE}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_server(&self) -> Result<(), String> {
        let mut options = format!(
            "-c listen_addresses='' -k {} -p {} -c max_connections=50",
            self.socket_dir().display(),
            self.port
        );
        if !self.durable {
            options.push_str(" -c fsync=off -c full_page_writes=off -c synchronous_commit=off");
        }
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-l",
                &self.log_path().display().to_string(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    }

    /// Stops the server: `immediate` is a crash (no checkpoint, recovery on the next
    /// start), otherwise a clean stop that ends every connection.
    pub fn stop_server(&self, immediate: bool) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                if immediate { "immediate" } else { "fast" },
                "-w",
                "stop",
            ],
        )
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let mut command = Command::new(self.bin.join(tool));
        command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((uid, gid)) = self.owner {
            // std drops the supplementary groups along with root.
            command.uid(uid).gid(gid);
        }
        let output = command.output().map_err(|e| format!("{tool}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{tool} {}: {}",
                args.last().unwrap_or(&""),
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// Where `initdb` and `pg_ctl` came from.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The scratch directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.stop_server(true);
    }
}

/// The user a root process runs the cluster as.
fn unprivileged_user() -> Result<(u32, u32), String> {
    for name in ["postgres", "nobody"] {
        if let Ok(Some(user)) = nix::unistd::User::from_name(name) {
            return Ok((user.uid.as_raw(), user.gid.as_raw()));
        }
    }
    Err(
        "running as root, and neither a `postgres` nor a `nobody` user exists to run \
         initdb as"
            .into(),
    )
}
