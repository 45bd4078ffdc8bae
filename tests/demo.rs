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

/// `posbridge demo --fleet`: two boxes' ledgers in one PostgreSQL database where
/// PostgreSQL is installed; where it is not, a plain word saying so.
#[test]
fn the_fleet_demo_shows_two_boxes_in_one_database() {
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(Result::ok)
                .any(|d| d.path().join("bin/initdb").exists())
        })
        .unwrap_or(false);
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["demo", "--fleet"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    if !installed {
        assert!(!out.status.success());
        assert!(
            err.contains("needs PostgreSQL") && err.contains("apt-get install postgresql"),
            "{err}"
        );
        return;
    }
    assert!(out.status.success(), "{text}\n{err}");
    for expected in [
        "store-101: 4 transitions recorded, 4 confirmed, 0 waiting",
        "store-102: 4 transitions recorded, 4 confirmed, 0 waiting",
        "store-101  1          POS-101      REF-1   PAY-SYNC-1   SUCCEEDED  2",
        "store-102  2          POS-102      REF-2   PAY-UNKNOWN  FAILED     2",
        "antom     USD       2        2          4250",
        "antom     USD       2        1          800              1",
        "(none)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}
