//! The system scenario of the VM rig: the Debian package built by cargo deb from this
//! build's binary, checked by lintian, then installed with dpkg on a Debian system
//! booted with systemd (no network device), started by udev when gadget terminals
//! are plugged in, stopped, killed, hung for the watchdog, upgraded unattended twice,
//! removed and purged. `tests/vm/run system` does the work.

mod vm_rig;

#[test]
fn system_scenario_in_a_virtual_machine() {
    vm_rig::run(&["system"]);
}
