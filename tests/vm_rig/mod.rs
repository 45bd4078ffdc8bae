//! Runs `tests/vm/run` with the binaries this build made, for the VM tests
//! (`vm_usb`, `vm_system`, `vm_powercut`). A scenario is skipped, saying why, only
//! where QEMU is not installed and cannot be (not root, or no apt-get): the script
//! exits 77 then.

use std::process::Command;

/// Runs `tests/vm/run ARGS...` and fails the test unless every step passed.
pub fn run(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vm/run");
    let output = Command::new(script)
        .args(args)
        .env("POSBRIDGE_BIN", env!("CARGO_BIN_EXE_posbridge"))
        .env(
            "POSBRIDGE_GADGET_BIN",
            env!("CARGO_BIN_EXE_posbridge-gadget"),
        )
        .env(
            "POSBRIDGE_POWERCUT_BIN",
            env!("CARGO_BIN_EXE_posbridge-powercut"),
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
        other => panic!("tests/vm/run {args:?} failed ({other:?}):\n{stdout}\n{stderr}"),
    }
}
