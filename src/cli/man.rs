//! `posbridge man`: the manual page, posbridge(1).
//!
//! clap_mangen writes the title, synopsis, description and options from the command
//! line's own definitions; the commands, EXIT STATUS, FILES and ENVIRONMENT sections
//! are written here. The commands are listed on this one page (with where to find
//! each one's options) rather than pointing at per-command pages that do not exist.

use std::io::Write;

use clap_mangen::roff::{Roff, bold, italic, roman};

use super::exit::STATUSES;

/// The files a store's box has, and what each is for.
const FILES: &[(&str, &str)] = &[
    (
        "/etc/posbridge/posbridge.toml",
        "the configuration (`run` and the operator commands read it unless given --config \
         or POSBRIDGE_CONFIG)",
    ),
    (
        "/usr/share/doc/posbridge/examples/posbridge.example.toml",
        "every key of the configuration, with its default and range",
    ),
    (
        "/var/lib/posbridge/ledger.sqlite",
        "the ledger: every refund and its history (the default [ledger] path)",
    ),
    (
        "/var/lib/posbridge/ledger.sqlite.lock",
        "held by the running daemon; `doctor` names its pid",
    ),
    (
        "/usr/lib/systemd/system/posbridge.service",
        "the systemd unit; local changes go in /etc/systemd/system/posbridge.service.d/",
    ),
    (
        "/usr/share/doc/posbridge/examples/posbridge-credentials.conf.example",
        "a drop-in handing the keys over with LoadCredential=",
    ),
    (
        "/lib/udev/rules.d/99-posbridge.rules",
        "names terminals /dev/posterminal-SERIAL, gives them to group posbridge, keeps \
         ModemManager away and starts the service; a store's own rules go in \
         /etc/udev/rules.d/",
    ),
    (
        "/usr/share/doc/posbridge/OPERATIONS.md",
        "installing, configuring, upgrading, replacing a terminal, reading the logs",
    ),
];

/// The environment variables posbridge reads.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "POSBRIDGE_CONFIG",
        "the configuration file for every command that takes --config, when --config is \
         not given (default /etc/posbridge/posbridge.toml)",
    ),
    (
        "RUST_LOG",
        "the log filter (`info`, `posbridge::link=debug`); wins over [log] level",
    ),
    (
        "JOURNAL_STREAM",
        "set by systemd when standard error is the journal: each line then starts with \
         its syslog priority, so `journalctl -p warning` shows the warnings",
    ),
    (
        "CREDENTIALS_DIRECTORY",
        "set by systemd for LoadCredential=: relative key file names are found there",
    ),
    (
        "NOTIFY_SOCKET, WATCHDOG_USEC",
        "set by systemd for Type=notify and WatchdogSec=: readiness, status and \
         watchdog pings",
    ),
    (
        "POSBRIDGE_FLEET_DATABASE",
        "the PostgreSQL URL for `fleet serve` and `fleet query` (instead of --database, \
         which `ps` would show)",
    ),
    (
        "SUDO_USER, USER",
        "the operator named in the ledger by `resolve` and `retry`",
    ),
];

/// Writes posbridge(1) for `command` to `out`.
pub fn render(command: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    let mut page = Roff::new();
    page.control("SH", ["COMMANDS"]);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        page.control("TP", []);
        page.text([bold(format!("posbridge {}", sub.get_name()))]);
        let about = sub
            .get_long_about()
            .or(sub.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        page.text([roman(about)]);
    }
    page.control("PP", []);
    page.text([
        roman("Each command's options and examples: "),
        bold("posbridge COMMAND --help"),
        roman("."),
    ]);
    page.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in STATUSES {
        page.control("TP", []);
        page.text([bold(code.to_string())]);
        page.text([roman(*meaning)]);
    }
    page.control("SH", ["FILES"]);
    for (path, what) in FILES {
        page.control("TP", []);
        page.text([italic(*path)]);
        page.text([roman(*what)]);
    }
    page.control("SH", ["ENVIRONMENT"]);
    for (name, what) in ENVIRONMENT {
        page.control("TP", []);
        page.text([bold(*name)]);
        page.text([roman(*what)]);
    }
    page.control("SH", ["SEE ALSO"]);
    page.text([roman(
        "systemd.exec(5) (LoadCredential=), journalctl(1), udevadm(8), and \
         /usr/share/doc/posbridge/README.md",
    )]);
    page.to_writer(out)?;
    man.render_version_section(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the Debian package puts each file: its assets in Cargo.toml (a
    /// destination ending in `/` keeps the source's name), and the unit cargo-deb
    /// installs from systemd/.
    fn packaged() -> Vec<String> {
        let manifest: toml::Table = toml::from_str(include_str!("../../Cargo.toml")).unwrap();
        let assets = manifest["package"]["metadata"]["deb"]["assets"]
            .as_array()
            .unwrap();
        let mut paths: Vec<String> = assets
            .iter()
            .map(|a| {
                let (source, dest) = (a[0].as_str().unwrap(), a[1].as_str().unwrap());
                match dest.strip_suffix('/') {
                    Some(dir) => format!("/{dir}/{}", source.rsplit('/').next().unwrap()),
                    None => format!("/{dest}"),
                }
            })
            .collect();
        paths.push("/usr/lib/systemd/system/posbridge.service".into());
        paths
    }

    #[test]
    fn every_installed_file_the_page_names_is_where_the_package_puts_it() {
        let packaged = packaged();
        for (path, _) in FILES {
            // The store's and the daemon's own files are made on the box, not shipped.
            if path.starts_with("/var/")
                || (path.starts_with("/etc/") && !path.ends_with("posbridge/posbridge.toml"))
            {
                continue;
            }
            assert!(
                packaged.iter().any(|p| p == path),
                "{path} is not where the package puts it: {packaged:?}"
            );
        }
        for path in [
            crate::daemon::doctor::EXAMPLE_CONFIG,
            crate::daemon::doctor::CREDENTIALS_EXAMPLE,
        ] {
            assert!(packaged.iter().any(|p| p == path), "doctor names {path}");
        }
    }

    fn page() -> String {
        let command = <super::super::Cli as clap::CommandFactory>::command();
        let mut out = Vec::new();
        render(command, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_page_has_its_sections_and_lists_every_exit_status() {
        let page = page();
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH COMMANDS",
            ".SH \"EXIT STATUS\"",
            ".SH FILES",
            ".SH ENVIRONMENT",
        ] {
            assert!(page.contains(section), "{section} missing");
        }
        for (code, _) in STATUSES {
            assert!(
                page.contains(&format!("\\fB{code}\\fR")),
                "exit status {code}"
            );
        }
        for sub in ["run", "doctor", "queue", "reconcile", "export"] {
            assert!(page.contains(&format!("posbridge {sub}")), "{sub}");
        }
    }

    #[test]
    fn the_page_points_at_no_page_that_is_not_generated() {
        let page = page();
        let named_pages = page.split("posbridge-").skip(1).filter(|rest| {
            let name_end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(rest.len());
            rest[name_end..].starts_with("(1)")
        });
        assert_eq!(named_pages.count(), 0, "a posbridge-*(1) reference");
    }
}
