//! Where a key file the configuration names relatively is: a systemd credential.
//!
//! The unit hands keys over with `LoadCredential=NAME:PATH` and the configuration
//! names them by `NAME` (`private_key_file = "antom-private-key"`). The daemon finds
//! them in `$CREDENTIALS_DIRECTORY`, which systemd sets. A command run from a shell
//! (`doctor`, `refund`, `inquire`) has no such directory: it takes `--credentials DIR`,
//! or reads the installed unit's and its drop-ins' `LoadCredential=` lines and goes
//! to each `PATH` itself. Whatever is found neither way is looked for beside the
//! configuration, as before there were credentials.

use std::fmt;
use std::path::{Path, PathBuf};

/// The installed unit file and its drop-in directories, in systemd's order of
/// precedence (the first unit file found is the one systemd loads).
#[derive(Clone, Debug)]
pub struct UnitFiles {
    /// Candidate unit files; the first that exists is read.
    pub units: Vec<PathBuf>,
    /// Drop-in directories (`posbridge.service.d`); every `*.conf` in them is read.
    pub dropin_dirs: Vec<PathBuf>,
}

impl UnitFiles {
    /// Where the package and an administrator put `posbridge.service`.
    pub fn installed() -> UnitFiles {
        let dirs = [
            "/etc/systemd/system",
            "/run/systemd/system",
            "/lib/systemd/system",
            "/usr/lib/systemd/system",
        ];
        UnitFiles {
            units: dirs
                .iter()
                .map(|d| Path::new(d).join("posbridge.service"))
                .collect(),
            dropin_dirs: dirs
                .iter()
                .map(|d| Path::new(d).join("posbridge.service.d"))
                .collect(),
        }
    }

    /// Reads the `LoadCredential=` lines of the unit and its drop-ins.
    pub fn credentials(&self) -> UnitCredentials {
        let mut found = UnitCredentials::default();
        if let Some(unit) = self.units.iter().find(|u| u.is_file()) {
            found.read_file(unit);
        }
        // Drop-ins apply in the order of their file names, whichever directory holds
        // them; a name in an earlier directory hides the same name in a later one.
        let mut dropins: Vec<(std::ffi::OsString, PathBuf)> = Vec::new();
        for dir in &self.dropin_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "conf")
                    && !dropins.iter().any(|(n, _)| *n == name)
                {
                    dropins.push((name, path));
                }
            }
        }
        dropins.sort();
        for (_, path) in dropins {
            found.read_file(&path);
        }
        found
    }
}

/// One `LoadCredential=NAME:PATH` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitCredential {
    /// The credential's name.
    pub name: String,
    /// The file systemd reads it from.
    pub path: PathBuf,
    /// The unit file or drop-in with the line.
    pub from: PathBuf,
}

/// What the unit files say about credentials.
#[derive(Clone, Debug, Default)]
pub struct UnitCredentials {
    /// The credentials, later lines first (a later line for a name wins).
    pub entries: Vec<UnitCredential>,
    /// The files read.
    pub read: Vec<PathBuf>,
    /// Files that exist but could not be read, with why.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// systemd's credential stores, where `LoadCredential=NAME` without a path looks.
const CREDENTIAL_STORES: &[&str] = &["/etc/credstore", "/run/credstore", "/usr/lib/credstore"];

impl UnitCredentials {
    fn read_file(&mut self, path: &Path) {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                self.read.push(path.to_path_buf());
                self.parse(&text, path);
            }
            Err(e) => self.unreadable.push((path.to_path_buf(), e.to_string())),
        }
    }

    /// Reads the `LoadCredential=` lines of a unit file's `[Service]` section.
    pub fn parse(&mut self, text: &str, from: &Path) {
        let mut in_service = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_service = line == "[Service]";
                continue;
            }
            if !in_service || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if key.trim() != "LoadCredential" {
                continue;
            }
            let value = value.trim();
            // An empty assignment resets the list, as for every list setting.
            if value.is_empty() {
                self.entries.clear();
                continue;
            }
            let (name, path) = match value.split_once(':') {
                Some((name, path)) => (name.trim(), PathBuf::from(path.trim())),
                None => {
                    let store = CREDENTIAL_STORES
                        .iter()
                        .map(|s| Path::new(s).join(value))
                        .find(|p| p.exists())
                        .unwrap_or_else(|| Path::new(CREDENTIAL_STORES[0]).join(value));
                    (value, store)
                }
            };
            self.entries.retain(|c| c.name != name);
            self.entries.push(UnitCredential {
                name: name.to_owned(),
                path,
                from: from.to_path_buf(),
            });
        }
    }

    /// The credential named `name`, if a line gives it.
    pub fn get(&self, name: &str) -> Option<&UnitCredential> {
        self.entries.iter().find(|c| c.name == name)
    }
}

/// How relative key files are to be found.
#[derive(Clone, Debug, Default)]
pub struct CredentialLookup {
    /// A directory holding the credentials by name, and where it came from.
    directory: Option<(PathBuf, DirectorySource)>,
    /// The unit's `LoadCredential=` lines, for a command run from a shell.
    unit: Option<UnitCredentials>,
}

/// Where a credentials directory came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectorySource {
    /// `--credentials DIR`.
    Flag,
    /// `$CREDENTIALS_DIRECTORY`, set by systemd for the service.
    Environment,
}

impl CredentialLookup {
    /// The daemon's lookup: `$CREDENTIALS_DIRECTORY` when systemd set it.
    pub fn service() -> CredentialLookup {
        CredentialLookup {
            directory: std::env::var_os("CREDENTIALS_DIRECTORY")
                .map(|d| (PathBuf::from(d), DirectorySource::Environment)),
            unit: None,
        }
    }

    /// A command's lookup: `--credentials DIR` if given, else `$CREDENTIALS_DIRECTORY`,
    /// else the unit's `LoadCredential=` lines.
    pub fn for_command(flag: Option<&Path>, units: &UnitFiles) -> CredentialLookup {
        if let Some(dir) = flag {
            return CredentialLookup {
                directory: Some((dir.to_path_buf(), DirectorySource::Flag)),
                unit: None,
            };
        }
        let service = CredentialLookup::service();
        if service.directory.is_some() {
            return service;
        }
        CredentialLookup {
            directory: None,
            unit: Some(units.credentials()),
        }
    }

    /// Where the relative key file `name` (setting `setting`) is, and how that was
    /// found. `config_dir` is the configuration's directory, the last place looked.
    pub fn resolve(&self, setting: &str, name: &Path, config_dir: &Path) -> FoundKey {
        let found = |path: PathBuf, how: How| FoundKey {
            setting: setting.to_owned(),
            name: name.to_path_buf(),
            path,
            how,
        };
        if let Some((dir, source)) = &self.directory {
            // The service reads what systemd put there, and nothing else.
            return found(dir.join(name), How::Directory(dir.clone(), *source));
        }
        if let Some(unit) = &self.unit
            && let Some(credential) = name.to_str().and_then(|n| unit.get(n))
        {
            return found(credential.path.clone(), How::Unit(credential.from.clone()));
        }
        let beside = config_dir.join(name);
        if beside.exists() {
            return found(beside, How::BesideConfig);
        }
        let mut looked = Vec::new();
        if let Some(unit) = &self.unit {
            if unit.read.is_empty() {
                looked.push("no posbridge.service unit file was found".to_owned());
            } else {
                looked.push(format!(
                    "no LoadCredential={}:PATH line in {}",
                    name.display(),
                    unit.read
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            for (path, why) in &unit.unreadable {
                looked.push(format!("{} cannot be read: {why}", path.display()));
            }
        } else {
            looked.push("$CREDENTIALS_DIRECTORY is not set".to_owned());
        }
        looked.push(format!("no file {}", beside.display()));
        found(beside, How::NotFound(looked.join("; ")))
    }
}

/// A relative key file and where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundKey {
    /// The setting (`private_key_file`, `fleet.secret_file`...).
    pub setting: String,
    /// The relative name the configuration gives.
    pub name: PathBuf,
    /// The file it stands for (for a key not found, the path tried last).
    pub path: PathBuf,
    /// How it was found.
    pub how: How,
}

/// How a relative key file was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum How {
    /// In a credentials directory.
    Directory(PathBuf, DirectorySource),
    /// By a `LoadCredential=` line in this unit file or drop-in.
    Unit(PathBuf),
    /// Beside the configuration file.
    BesideConfig,
    /// Found neither way; the text says where it was looked for.
    NotFound(String),
}

impl FoundKey {
    /// Whether the file was found (it may still be unreadable).
    pub fn is_found(&self) -> bool {
        !matches!(self.how, How::NotFound(_))
    }
}

impl fmt::Display for FoundKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (setting, name) = (&self.setting, self.name.display());
        let path = self.path.display();
        match &self.how {
            How::Directory(dir, DirectorySource::Flag) => write!(
                f,
                "{setting} = \"{name}\": {path} (from --credentials {})",
                dir.display()
            ),
            How::Directory(dir, DirectorySource::Environment) => write!(
                f,
                "{setting} = \"{name}\": {path} (from $CREDENTIALS_DIRECTORY {})",
                dir.display()
            ),
            How::Unit(from) => write!(
                f,
                "{setting} = \"{name}\": {path} (LoadCredential={name}:{path} in {})",
                from.display()
            ),
            How::BesideConfig => {
                write!(
                    f,
                    "{setting} = \"{name}\": {path} (beside the configuration)"
                )
            }
            How::NotFound(looked) => write!(
                f,
                "{setting} = \"{name}\" names a systemd credential that cannot be found: \
                 no --credentials DIR was given, and {looked}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_credential_lines_are_read_from_the_service_section() {
        let mut found = UnitCredentials::default();
        found.parse(
            "[Unit]\nLoadCredential=ignored:/x\n[Service]\n# LoadCredential=commented:/y\n\
             LoadCredential=antom-private-key:/etc/posbridge/keys/a.pem\n\
             LoadCredential = antom-public-key : /etc/posbridge/keys/b.pem\n",
            Path::new("/u"),
        );
        assert_eq!(found.entries.len(), 2);
        assert_eq!(
            found.get("antom-private-key").unwrap().path,
            Path::new("/etc/posbridge/keys/a.pem")
        );
        assert_eq!(
            found.get("antom-public-key").unwrap().path,
            Path::new("/etc/posbridge/keys/b.pem")
        );
        assert!(found.get("ignored").is_none() && found.get("commented").is_none());
        // A later line for the same name wins; an empty one resets the list.
        found.parse(
            "[Service]\nLoadCredential=antom-private-key:/other.pem\n",
            Path::new("/d"),
        );
        assert_eq!(
            found.get("antom-private-key").unwrap().from,
            Path::new("/d")
        );
        found.parse("[Service]\nLoadCredential=\n", Path::new("/e"));
        assert!(found.entries.is_empty());
    }

    #[test]
    fn a_command_finds_keys_as_the_unit_passes_them() {
        let dir = tempfile::tempdir().unwrap();
        let units = UnitFiles {
            units: vec![
                dir.path().join("etc.service"),
                dir.path().join("lib.service"),
            ],
            dropin_dirs: vec![dir.path().join("d")],
        };
        std::fs::write(
            dir.path().join("lib.service"),
            "[Service]\nLoadCredential=k:/lib/key\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(
            dir.path().join("d/credentials.conf"),
            "[Service]\nLoadCredential=k:/dropin/key\n",
        )
        .unwrap();
        let lookup = CredentialLookup {
            directory: None,
            unit: Some(units.credentials()),
        };
        let key = lookup.resolve("private_key_file", Path::new("k"), Path::new("/cfg"));
        assert_eq!(key.path, Path::new("/dropin/key"));
        assert_eq!(key.how, How::Unit(dir.path().join("d/credentials.conf")));
        let missing = lookup.resolve("app_key_file", Path::new("other"), Path::new("/cfg"));
        assert!(!missing.is_found());
        let text = missing.to_string();
        assert!(
            text.contains("LoadCredential=other:PATH") && text.contains("/cfg/other"),
            "{text}"
        );
        let flag = CredentialLookup::for_command(Some(Path::new("/creds")), &units);
        let key = flag.resolve("private_key_file", Path::new("k"), Path::new("/cfg"));
        assert_eq!(key.path, Path::new("/creds/k"));
        assert!(key.to_string().contains("--credentials /creds"), "{key}");
    }
}
