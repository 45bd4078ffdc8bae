//! The annotated example configuration stays valid: every key it shows is one the
//! daemon reads.

use posbridge::config::Config;

#[test]
fn the_annotated_example_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/posbridge.example.toml");
    let config = Config::load(std::path::Path::new(path)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.terminals.len(), 1);
    assert_eq!(config.provider.name(), "antom");
}

const EXAMPLE: &str = include_str!("../config/posbridge.example.toml");

/// The example with every `# key = value` line of the optional tables and the USB
/// terminal uncommented (the alternative providers stay commented).
fn uncommented(text: &str) -> String {
    let mut uncommented = String::new();
    let mut in_alternative_provider = false;
    for line in text.lines() {
        if line.starts_with("# [provider]") {
            in_alternative_provider = true;
        }
        if line.starts_with("# [provider.notify]")
            || line.starts_with("# [[terminal]]")
            || line.starts_with("# ---")
            || line.starts_with('[')
        {
            in_alternative_provider = false;
        }
        let key = line
            .strip_prefix("# ")
            .and_then(|rest| rest.split_once(" = "))
            .map(|(key, _)| key)
            .unwrap_or("");
        let is_key = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        let is_setting = is_key || line.starts_with("# [");
        if is_setting && !in_alternative_provider {
            uncommented.push_str(&line[2..]);
        } else {
            uncommented.push_str(line);
        }
        uncommented.push('\n');
    }
    uncommented
}

#[test]
fn the_commented_alternatives_parse_too() {
    let uncommented = uncommented(EXAMPLE);
    let config =
        Config::parse(&uncommented, "example").unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    assert_eq!(config.terminals.len(), 2);
    assert_eq!(config.limits.per_refund.get("USD"), Some(&50000));
    assert!(config.messages.all.states.contains_key("SUCCEEDED"));
    assert!(config.messages.all.reasons.contains_key("BALANCE_LOW"));
    let japanese = posbridge::bridge::texts::Language::Ja;
    assert!(
        config.messages.languages[&japanese]
            .states
            .contains_key("SUCCEEDED")
    );
    assert_eq!(config.terminals[0].language, Some(japanese));
    let fleet = config.fleet.expect("the [fleet] example");
    assert_eq!(fleet.box_id, "store-112");
    assert_eq!(fleet.batch_url(), "https://fleet.example.com/v1/batch");
}

/// A number as the example writes it: decimal or `0x` hexadecimal.
fn number(text: &str) -> Option<i128> {
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => i128::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The first `A to B` in a comment.
fn documented_range(comment: &str) -> Option<(i128, i128)> {
    let words: Vec<&str> = comment
        .split(|c: char| c.is_whitespace() || c == ';' || c == ':' || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(3)
        .find(|w| w[1] == "to" && number(w[0]).is_some() && number(w[2]).is_some())
        .and_then(|w| Some((number(w[0])?, number(w[2])?)))
}

/// One numeric setting of the example: the configuration it is in (the example with
/// its optional tables on, or an alternative provider's table on its own), its line
/// there, its key, value and documented range.
struct Numeric {
    config: String,
    line: usize,
    key: String,
    value: i128,
    range: Option<(i128, i128)>,
}

fn numerics() -> Vec<Numeric> {
    let mut out = Vec::new();
    let mut found = |config: &str| {
        for (i, line) in config.lines().enumerate() {
            let Some((key, rest)) = line.split_once(" = ") else {
                continue;
            };
            if key.starts_with('#') {
                continue;
            }
            let (value, comment) = rest.split_once('#').unwrap_or((rest, ""));
            if let Some(value) = number(value) {
                out.push(Numeric {
                    config: config.to_owned(),
                    line: i + 1,
                    key: key.trim().to_owned(),
                    value,
                    range: documented_range(comment),
                });
            }
        }
    };
    found(&uncommented(EXAMPLE));
    // Each alternative provider on its own, with the example's ledger and terminal.
    let head = "[ledger]\npath = \"/tmp/l.sqlite\"\n[[terminal]]\ndevice = \"/dev/x\"\n";
    for block in EXAMPLE
        .split("\n\n")
        .filter(|b| b.contains("\n# [provider]\n"))
    {
        let table: String = block
            .lines()
            .skip_while(|l| *l != "# [provider]")
            .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l)))
            .collect();
        found(&format!("{head}{table}"));
    }
    out
}

#[test]
fn every_number_has_a_documented_range_and_is_held_to_it() {
    let numerics = numerics();
    assert!(numerics.len() >= 25, "{} numbers", numerics.len());
    for key in [
        "baud",
        "usb_endpoint_in",
        "key_version",
        "connect_timeout_ms",
        "max_body_bytes",
        "body_read_timeout_ms",
        "max_connections",
        "token_refresh_margin_ms",
        "concurrency",
        "USD",
        "header_read_timeout_ms",
        "grace_ms",
    ] {
        assert!(
            numerics.iter().any(|n| n.key == key),
            "the example shows no {key}"
        );
    }
    Config::parse(&numerics[0].config, "example").unwrap_or_else(|e| panic!("{e}"));
    for n in &numerics {
        let (low, high) = n
            .range
            .unwrap_or_else(|| panic!("line {}: `{}` documents no range", n.line, n.key));
        assert!(
            (low..=high).contains(&n.value),
            "line {}: `{}` = {} is outside its own range",
            n.line,
            n.key,
            n.value
        );
        for outside in [low - 1, high + 1] {
            let mut lines: Vec<String> = n.config.lines().map(str::to_owned).collect();
            let (key, rest) = lines[n.line - 1].split_once(" = ").unwrap();
            let comment = rest.split_once('#').map(|(_, c)| c).unwrap_or("");
            lines[n.line - 1] = format!("{key} = {outside} #{comment}");
            let text = lines.join("\n");
            let err = match Config::parse(&text, "example") {
                Ok(_) => panic!("`{}` = {outside} (range {low} to {high}) accepted", n.key),
                Err(e) => e,
            };
            assert_eq!(err.line, Some(n.line), "`{}` = {outside}: {err}", n.key);
            assert!(
                err.message.contains(&n.key),
                "`{}` = {outside}: {err}",
                n.key
            );
        }
    }
}
