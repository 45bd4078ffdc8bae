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

#[test]
fn the_commented_alternatives_parse_too() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/posbridge.example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    // Uncomment every `# key = value` line in the optional tables and the USB terminal.
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
