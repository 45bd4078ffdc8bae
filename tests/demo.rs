//! `posbridge demo`, the README's first command: with nothing set up, it makes a
//! refund, shows the display and the history, queues one through an outage and
//! drains it.

use std::process::Command;

#[test]
fn the_demo_tells_the_whole_story() {
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .arg("demo")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "REFUND_UPDATE REF-1 ACCEPTED",
        "│Refund approved     │",
        "It ended SUCCEEDED. Its history",
        "ACCEPTED → SUCCEEDED",
        "REFUND_UPDATE REF-2 PROCESSING",
        "REFUND_UPDATE REF-3 QUEUED",
        "│Network down:       │",
        "REF-3 ended SUCCEEDED.",
        "executed 3 refunds, one each",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(
        String::from_utf8_lossy(&out.stderr).trim().is_empty(),
        "no warnings on a clean run"
    );
}
