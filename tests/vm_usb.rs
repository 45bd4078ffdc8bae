//! The USB scenario of the VM rig: the real `posbridge` against the kernel's USB stack
//! (dummy_hcd, CDC-ACM and FunctionFS gadgets, cdc-acm, usbfs, systemd-udevd) in a
//! virtual machine with no network device. `tests/vm/run usb` does the work; this runs
//! it with the binaries this build made. Skipped, saying why, only where QEMU is not
//! installed and cannot be (not root, or no apt-get).

use std::process::Command;

#[test]
fn usb_scenario_in_a_virtual_machine() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vm/run");
    let output = Command::new(script)
        .arg("usb")
        .env("POSBRIDGE_BIN", env!("CARGO_BIN_EXE_posbridge"))
        .env(
            "POSBRIDGE_GADGET_BIN",
            env!("CARGO_BIN_EXE_posbridge-gadget"),
        )
        .output()
        .expect("tests/vm/run starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    match output.status.code() {
        Some(0) => {
            let last = stdout.lines().last().unwrap_or_default();
            assert!(
                last.ends_with(" 0 failed") && !last.starts_with("0 passed"),
                "the rig passed without a result line: {last:?}"
            );
        }
        Some(77) => eprintln!("SKIPPED: the VM rig cannot run here: {}", stderr.trim()),
        other => panic!("tests/vm/run usb failed ({other:?}):\n{stdout}\n{stderr}"),
    }
}
