//! `posbridge loopback --device PATH`: the link-test responder on a serial line that
//! already exists (here the far end of a pseudo-terminal; in `tests/vm/run usb` a real
//! CDC-ACM line and, with `--usb`, a vendor-bulk USB device). The refund comes back
//! FAILED with result code LINK_TEST and nothing else happens.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use posbridge::link::OneShot;
use posbridge::message::{Message, Refund, RefundState};
use posbridge::money::{Amount, Currency};
use posbridge::sim::link_test::LINK_TEST_CODE;
use posbridge::sim::terminal::{Terminal, TerminalEvent, TerminalIdentity};
use posbridge::transport::open_pty;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_responder_answers_a_refund_on_an_existing_line() {
    let line = open_pty().unwrap();
    let _loopback = Killed(
        Command::new(env!("CARGO_BIN_EXE_posbridge"))
            .args(["loopback", "--json", "--device"])
            .arg(&line.path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (terminal, mut events) = Terminal::start(
        &TerminalIdentity::default(),
        None,
        None,
        OneShot::new(line.master),
    );
    let refund = Message::Refund(Refund {
        original_merchant_refund_id: "LB-1".into(),
        payment_id: "PAY-1".into(),
        refund_amount: Some(Amount::new(100, Currency::parse("USD").unwrap()).unwrap()),
        memo: None,
    });
    // The responder may still be opening the line: the terminal retransmits HELLO
    // until it answers.
    terminal.send(&refund).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let update = loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => {
                if let TerminalEvent::Message(Message::RefundUpdate(u)) = event {
                    break u;
                }
            }
            other => panic!("no REFUND_UPDATE within 30 s: {other:?}"),
        }
    };
    assert_eq!(update.original_merchant_refund_id, "LB-1");
    assert_eq!(update.state, RefundState::Failed);
    assert_eq!(update.result_code.as_deref(), Some(LINK_TEST_CODE));
}

#[test]
fn usb_options_are_checked_before_anything_opens() {
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args([
            "loopback",
            "--usb",
            "0b00:3070",
            "--usb-endpoint-in",
            "0x181",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--usb-endpoint-in") && err.contains("0x81"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["loopback", "--device", "/dev/null", "--pair"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
