//! Every command has `--help` with examples, and the shell completions and the man page
//! can be generated.

use std::process::Command;

fn posbridge(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn every_command_has_help_with_examples() {
    let (ok, top) = posbridge(&["--help"]);
    assert!(ok);
    let commands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 17, "{commands:?}");
    for command in commands {
        let (ok, help) = posbridge(&[&command, "--help"]);
        assert!(ok, "{command} --help");
        assert!(
            help.contains("Examples:"),
            "{command} --help has no examples:\n{help}"
        );
    }
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let (ok, out) = posbridge(&["completions", shell]);
        assert!(
            ok && out.contains("posbridge") && out.contains("doctor"),
            "{shell}"
        );
    }
    let (ok, man) = posbridge(&["man"]);
    assert!(ok);
    assert!(
        man.contains(".TH posbridge 1") && man.contains("doctor"),
        "{man}"
    );
}
