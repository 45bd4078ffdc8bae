//! Parses any text as the configuration file, as `posbridge run` and `check-config`
//! do. It must never panic; an error names the file and says what is wrong, and an
//! accepted configuration yields a transport for every terminal.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use posbridge::config::Config;

const FILE: &str = "/etc/posbridge/posbridge.toml";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::parse(&text, FILE) {
        Ok(mut config) => {
            config
                .provider
                .resolve_relative_files(Path::new("/etc/posbridge"));
            for terminal in &config.terminals {
                assert!(
                    terminal.transport().is_ok(),
                    "a checked terminal has a transport"
                );
                let _ = terminal.label();
            }
            let _ = config.bridge_settings();
        }
        Err(error) => {
            assert!(!error.message.is_empty(), "an error says what is wrong");
            assert!(
                error.to_string().starts_with(FILE),
                "an error names the file"
            );
        }
    }
});
