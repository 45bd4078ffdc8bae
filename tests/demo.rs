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

/// `posbridge demo --language ja`: the same story, with the cashier's screen in
/// Japanese and the box drawn by display columns.
#[test]
fn the_demo_speaks_japanese() {
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["demo", "--language", "ja"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "cashier texts in 日本語 (ja)",
        "│返金受付            │",
        "│返金完了            │",
        "│$12.50              │",
        "│お待ちください      │",
        "│通信できません      │",
        "REF-3 ended SUCCEEDED.",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}
