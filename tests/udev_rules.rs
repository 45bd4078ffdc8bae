//! The shipped udev rules: every line parses as udev rule syntax, uses only known keys
//! and operators, every rule that matches the terminal sets what it needs, and names
//! never follow the kernel's numbering. `udevadm verify` also runs where it exists
//! (systemd 254 and later). What the rules do under a real systemd-udevd is checked in
//! the VM rig (`tests/vm/run usb`, run by `tests/vm_usb.rs`).

use std::process::Command;

const RULES: &str = include_str!("../udev/99-posbridge.rules");

const MATCH_KEYS: [&str; 14] = [
    "ACTION",
    "DEVPATH",
    "KERNEL",
    "KERNELS",
    "NAME",
    "SUBSYSTEM",
    "SUBSYSTEMS",
    "DRIVER",
    "DRIVERS",
    "ATTR",
    "ATTRS",
    "ENV",
    "TAG",
    "TEST",
];
const ASSIGN_KEYS: [&str; 13] = [
    "SYMLINK", "GROUP", "MODE", "OWNER", "ENV", "TAG", "RUN", "OPTIONS", "NAME", "ATTR", "IMPORT",
    "GOTO", "LABEL",
];

#[derive(Debug, PartialEq)]
struct Item {
    key: String,
    attr: Option<String>,
    op: String,
    value: String,
}

/// Parses one rule (continuations already joined) into its items.
fn parse_rule(rule: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut rest = rule.trim();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .ok_or(format!("no operator after {rest:?}"))?;
        let key = rest[..key_end].to_owned();
        rest = &rest[key_end..];
        let mut attr = None;
        if let Some(after) = rest.strip_prefix('{') {
            let close = after.find('}').ok_or("unclosed {")?;
            attr = Some(after[..close].to_owned());
            rest = &after[close + 1..];
        }
        let op = ["==", "!=", "+=", "-=", ":=", "="]
            .into_iter()
            .find(|op| rest.starts_with(op))
            .ok_or(format!("{key}: no operator in {rest:?}"))?;
        rest = &rest[op.len()..];
        let value_text = rest
            .strip_prefix('"')
            .ok_or(format!("{key}: value not quoted"))?;
        let close = value_text
            .find('"')
            .ok_or(format!("{key}: unclosed quote"))?;
        let value = value_text[..close].to_owned();
        rest = value_text[close + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after.trim_start();
        } else if !rest.is_empty() {
            return Err(format!("{key}: expected `,` before {rest:?}"));
        }
        let is_match = op == "==" || op == "!=";
        let known = if is_match {
            MATCH_KEYS.contains(&key.as_str())
        } else {
            ASSIGN_KEYS.contains(&key.as_str())
        };
        if !known {
            return Err(format!(
                "{key}{op}: not a udev {} key",
                if is_match { "match" } else { "assignment" }
            ));
        }
        if key == "MODE" && !(value.len() == 4 && value.chars().all(|c| ('0'..='7').contains(&c))) {
            return Err(format!("MODE {value:?} is not an octal mode"));
        }
        items.push(Item {
            key,
            attr,
            op: op.to_owned(),
            value,
        });
    }
    Ok(items)
}

/// The rules as udev reads them: comments dropped, continuations joined; with
/// `include_commented_examples`, the commented example rules are read too.
fn rules(text: &str, include_commented_examples: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_example = false;
    for raw in text.lines() {
        let commented = raw.trim_start().strip_prefix('#').map(str::trim_start);
        let line = match commented {
            Some(rule)
                if include_commented_examples && (rule.starts_with("SUBSYSTEM") || in_example) =>
            {
                in_example = true;
                rule
            }
            Some(_) => continue,
            None => raw,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
                in_example = false;
            }
        }
    }
    assert!(current.is_empty(), "a continuation runs off the end");
    out
}

fn has(items: &[Item], key: &str, attr: Option<&str>, op: &str, value: &str) -> bool {
    items
        .iter()
        .any(|i| i.key == key && i.attr.as_deref() == attr && i.op == op && i.value == value)
}

fn parsed(include_examples: bool) -> Vec<(String, Vec<Item>)> {
    rules(RULES, include_examples)
        .into_iter()
        .map(|rule| {
            let items = parse_rule(&rule).unwrap_or_else(|e| panic!("{e}\nin: {rule}"));
            (rule, items)
        })
        .collect()
}

#[test]
fn every_rule_parses_and_sets_what_the_terminal_needs() {
    for include_examples in [false, true] {
        let rules = parsed(include_examples);
        assert_eq!(rules.len(), if include_examples { 7 } else { 6 });
        let by_id: Vec<&(String, Vec<Item>)> = rules
            .iter()
            .filter(|(_, items)| {
                items
                    .iter()
                    .any(|i| i.attr.as_deref() == Some("idVendor") && i.op == "==")
            })
            .collect();
        assert_eq!(
            by_id.len(),
            2,
            "one rule per kind of terminal matches its id"
        );
        for (rule, items) in by_id {
            for (key, attr, op, value) in [
                ("GROUP", None, "=", "posbridge"),
                ("MODE", None, "=", "0660"),
                ("ENV", Some("ID_MM_DEVICE_IGNORE"), "=", "1"),
                ("TAG", None, "+=", "systemd"),
                ("ENV", Some("SYSTEMD_WANTS"), "+=", "posbridge.service"),
            ] {
                assert!(
                    has(items, key, attr, op, value),
                    "missing {key} {op} {value:?} in: {rule}"
                );
            }
        }
        // Every name a rule gives is by serial number or USB port, behind the mark the
        // serial-line rule sets, never by the kernel's ttyACM number.
        let naming: Vec<&(String, Vec<Item>)> = rules
            .iter()
            .filter(|(_, items)| items.iter().any(|i| i.key == "SYMLINK"))
            .collect();
        assert_eq!(naming.len(), if include_examples { 3 } else { 2 });
        for (rule, items) in &naming {
            assert!(
                has(items, "ENV", Some("POSBRIDGE_TERMINAL"), "==", "1"),
                "names only the terminal: {rule}"
            );
            assert!(
                !rule.contains("%n") && !rule.contains("$number") && !rule.contains("%k"),
                "a name that follows the kernel's numbering: {rule}"
            );
        }
        let symlink = |items: &[Item]| {
            items
                .iter()
                .find(|i| i.key == "SYMLINK")
                .map(|i| i.value.clone())
        };
        assert!(naming.iter().any(|(_, items)| {
            has(items, "ENV", Some("ID_SERIAL_SHORT"), "==", "?*")
                && symlink(items).as_deref() == Some("posterminal-$env{ID_SERIAL_SHORT}")
        }));
        assert!(naming.iter().any(|(_, items)| {
            has(items, "ENV", Some("ID_SERIAL_SHORT"), "!=", "?*")
                && symlink(items).as_deref() == Some("posterminal-path-$env{ID_PATH_TAG}")
        }));
        // The mark is set where the serial number and port are imported.
        assert!(rules.iter().any(|(_, items)| {
            has(items, "ENV", Some("POSBRIDGE_TERMINAL"), "=", "1")
                && has(items, "IMPORT", Some("builtin"), "=", "usb_id")
                && has(items, "IMPORT", Some("builtin"), "=", "path_id")
        }));
        let first = &rules[0].1;
        assert!(has(first, "ACTION", None, "==", "remove"));
        assert!(has(first, "GOTO", None, "=", "posbridge_end"));
        assert!(has(
            &rules[rules.len() - 1].1,
            "LABEL",
            None,
            "=",
            "posbridge_end"
        ));
    }
}

#[test]
fn the_parser_refuses_bad_syntax() {
    for bad in [
        r#"SUBSYSTEM="tty""#.to_owned(),
        r#"SUBSYSTEM=="tty" GROUP="x""#.to_owned(),
        r#"SUBSYSTEM=="tty", GROUP=x"#.to_owned(),
        r#"SUBSYSTEM=="tty", FOO="x""#.to_owned(),
        r#"SUBSYSTEM=="tty", MODE="660""#.to_owned(),
        r#"SUBSYSTEM=="tty", ATTRS{idVendor=="x""#.to_owned(),
    ] {
        assert!(parse_rule(&bad).is_err(), "accepted: {bad}");
    }
}

#[test]
fn udevadm_verify_where_available() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/udev/99-posbridge.rules");
    match Command::new("udevadm").args(["verify", path]).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("Unknown command")
                || err.contains("unknown command")
                || err.contains("invalid option")
            {
                eprintln!(
                    "udevadm has no `verify` here (needs systemd 254+); the parser test covers the rules"
                );
            } else {
                panic!("udevadm verify failed: {err}");
            }
        }
        Err(_) => eprintln!("udevadm is not installed here; the parser test covers the rules"),
    }
}
