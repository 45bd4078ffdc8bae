//! Drop-in files: `posbridge.toml.d/*.toml` beside the main file, read after it in
//! name order. The Debian package owns the main file (a conffile it may change in an
//! upgrade); a store's settings live in drop-ins, which no upgrade touches, so an
//! unattended upgrade never stops at a conffile prompt.
//!
//! Tables merge key by key; any other value (a string, a number, an array such as
//! the `[[terminal]]` list) in a later file replaces the earlier one whole.

use std::path::{Path, PathBuf};

use serde::Deserialize as _;

use super::{Config, ConfigFileError, Positions};

/// One file read: its name for errors, its text, where its keys are and its table.
struct Source {
    file: String,
    text: String,
    positions: Positions,
    table: toml::Table,
}

/// The main file and its drop-ins, each read and checked as TOML.
pub(super) struct Sources {
    main: String,
    list: Vec<Source>,
}

/// The drop-in directory of a main file: `posbridge.toml.d` beside `posbridge.toml`.
pub fn directory_of(main: &Path) -> PathBuf {
    let mut name = main.as_os_str().to_owned();
    name.push(".d");
    PathBuf::from(name)
}

fn read(path: &Path) -> Result<String, ConfigFileError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigFileError::new(
            &path.display().to_string(),
            None,
            None,
            &format!("cannot read: {e}"),
        )
    })
}

impl Sources {
    /// Reads `main` and every `*.toml` in its drop-in directory (a missing directory
    /// is none; an unreadable one is an error, not silently skipped).
    pub fn read(main: &Path) -> Result<Sources, ConfigFileError> {
        let main_text = read(main)?;
        let mut paths = Vec::new();
        let dir = directory_of(main);
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(|e| {
                        ConfigFileError::new(
                            &dir.display().to_string(),
                            None,
                            None,
                            &format!("cannot list: {e}"),
                        )
                    })?;
                    let path = entry.path();
                    if path.extension().is_some_and(|x| x == "toml") {
                        paths.push(path);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ConfigFileError::new(
                    &dir.display().to_string(),
                    None,
                    None,
                    &format!("cannot list: {e}"),
                ));
            }
        }
        paths.sort();
        let main_file = main.display().to_string();
        let mut texts = vec![(main_file.clone(), main_text)];
        for path in paths {
            texts.push((path.display().to_string(), read(&path)?));
        }
        let mut list = Vec::with_capacity(texts.len());
        for (file, text) in texts {
            // Syntax first, file by file, so the error names the file and line.
            let super::position::Parsed {
                document,
                positions,
                error,
            } = super::position::parse(&text);
            let table = match error {
                Some(e) => Err(e),
                None => toml::Table::deserialize(toml::de::Deserializer::from(document)),
            }
            .map_err(|e| ConfigFileError::from_toml(&file, &positions, &e))?;
            list.push(Source {
                file,
                text,
                positions,
                table,
            });
        }
        Ok(Sources {
            main: main_file,
            list,
        })
    }

    /// The configuration they make together. With no drop-in this is exactly the
    /// main file parsed alone.
    pub fn parse(self) -> Result<Config, ConfigFileError> {
        let Some((first, rest)) = self.list.split_first() else {
            return Err(ConfigFileError::new(
                &self.main,
                None,
                None,
                "nothing was read",
            ));
        };
        if rest.is_empty() {
            return Config::parse(&first.text, &first.file);
        }
        let mut merged = first.table.clone();
        for source in rest {
            merge(&mut merged, source.table.clone());
        }
        let text = toml::to_string(&merged).map_err(|e| {
            ConfigFileError::new(
                &self.main,
                None,
                None,
                &format!("cannot combine the drop-in files: {e}"),
            )
        })?;
        Config::parse(&text, &self.main).map_err(|error| self.blame(error))
    }

    /// Points an error found in the combined text at the file that set the key it
    /// names (the last one to set it), with that file's line.
    fn blame(&self, error: ConfigFileError) -> ConfigFileError {
        let found = error.key.as_deref().and_then(|key| {
            let path: Vec<&str> = key
                .split('.')
                .map(|part| part.split('[').next().unwrap_or(part))
                .collect();
            // The deepest match; of equals, the last file (max_by_key keeps the last).
            self.list
                .iter()
                .map(|s| (s, depth(&s.table, &path)))
                .filter(|(_, d)| *d > 0)
                .max_by_key(|(_, d)| *d)
                .map(|(s, _)| (s, key))
        });
        match found {
            Some((source, key)) => ConfigFileError {
                file: source.file.clone(),
                line: source.positions.line_of(key),
                ..error.clone()
            },
            None => ConfigFileError {
                file: format!(
                    "{} (with {})",
                    self.main,
                    directory_of(Path::new(&self.main)).display()
                ),
                line: None,
                ..error
            },
        }
    }
}

/// How many leading parts of `path` the table holds.
fn depth(table: &toml::Table, path: &[&str]) -> usize {
    let Some((first, rest)) = path.split_first() else {
        return 0;
    };
    match table.get(*first) {
        None => 0,
        Some(toml::Value::Table(inner)) => 1 + depth(inner, rest),
        Some(_) => 1,
    }
}

/// Tables merge key by key; anything else is replaced.
fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(old)), toml::Value::Table(new)) => merge(old, new),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: &str = "# the package's file\n[ledger]\npath = \"/var/lib/posbridge/ledger.sqlite\"\n\n[shutdown]\ngrace_ms = 20000\n";
    const STORE: &str = r#"
[[terminal]]
device = "/dev/posterminal-A1"

[provider]
kind = "paymentoptions"
base_url = "https://api.example.com/api/v1"
api_key = "k"
merchant_id = "M1"
"#;

    fn setup(dropins: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("posbridge.toml");
        std::fs::write(&main, MAIN).unwrap();
        if !dropins.is_empty() {
            std::fs::create_dir(directory_of(&main)).unwrap();
        }
        for (name, text) in dropins {
            std::fs::write(directory_of(&main).join(name), text).unwrap();
        }
        (dir, main)
    }

    #[test]
    fn drop_ins_are_read_in_name_order_after_the_main_file() {
        let (_dir, main) = setup(&[
            ("50-store.toml", STORE),
            (
                "60-later.toml",
                "[shutdown]\ngrace_ms = 5000\n[[terminal]]\ndevice = \"/dev/posterminal-B2\"\n[[terminal]]\ndevice = \"/dev/posterminal-C3\"\n",
            ),
            ("README", "not toml, not read"),
        ]);
        let config = Config::load(&main).unwrap();
        assert_eq!(
            config.ledger.path,
            PathBuf::from("/var/lib/posbridge/ledger.sqlite")
        );
        assert_eq!(config.shutdown.grace_ms, 5000);
        // The later file's list replaces the earlier one's whole.
        let devices: Vec<_> = config
            .terminals
            .iter()
            .map(|t| t.device.clone().unwrap())
            .collect();
        assert_eq!(
            devices,
            [
                PathBuf::from("/dev/posterminal-B2"),
                PathBuf::from("/dev/posterminal-C3")
            ]
        );
        assert_eq!(config.provider.name(), "paymentoptions");
    }

    #[test]
    fn tables_merge_key_by_key() {
        let (_dir, main) = setup(&[
            ("50-store.toml", STORE),
            ("70-key.toml", "[provider]\nmerchant_id = \"M2\"\n"),
        ]);
        let text = STORE.replace("\"M1\"", "\"M2\"");
        let expected = Config::parse(&format!("{MAIN}{text}"), "x").unwrap();
        let config = Config::load(&main).unwrap();
        assert_eq!(
            format!("{:?}", config.provider),
            format!("{:?}", expected.provider)
        );
    }

    #[test]
    fn without_drop_ins_the_main_file_is_read_alone() {
        let (_dir, main) = setup(&[]);
        let error = Config::load(&main).unwrap_err();
        // The main file's own error, naming it (it has no [provider]).
        assert_eq!(error.file, main.display().to_string());
        assert!(error.message.contains("provider"), "{error}");
    }

    #[test]
    fn errors_name_the_drop_in_and_its_line() {
        let bad = STORE.replace("merchant_id = \"M1\"", "merchant_id = 12");
        let (_dir, main) = setup(&[("50-store.toml", &bad)]);
        let error = Config::load(&main).unwrap_err();
        assert!(
            error.file.ends_with("posbridge.toml.d/50-store.toml"),
            "{error}"
        );
        assert_eq!(error.line, Some(9), "{error}");
        assert!(
            error.message.starts_with("`provider.merchant_id`"),
            "{error}"
        );
        assert!(
            !error.to_string().contains("12"),
            "the value is not quoted: {error}"
        );

        let (_dir, main) = setup(&[
            ("50-store.toml", STORE),
            ("60-x.toml", "[shutdown]\ngrace_ms = 9999999\n"),
        ]);
        let error = Config::load(&main).unwrap_err();
        assert!(error.file.ends_with("60-x.toml"), "{error}");
        assert_eq!(error.line, Some(2), "{error}");

        let (_dir, main) = setup(&[("50-store.toml", "[[terminal]\n")]);
        let error = Config::load(&main).unwrap_err();
        assert!(error.file.ends_with("50-store.toml"), "{error}");
        assert_eq!(error.line, Some(1), "{error}");
    }

    #[test]
    fn an_error_no_file_set_names_the_directory_too() {
        let (_dir, main) = setup(&[(
            "50-store.toml",
            &STORE.replace("[[terminal]]\ndevice = \"/dev/posterminal-A1\"\n", ""),
        )]);
        let error = Config::load(&main).unwrap_err();
        assert!(error.message.contains("no [[terminal]]"), "{error}");
        assert!(error.file.contains("posbridge.toml.d"), "{error}");
    }
}
