//! The USB scenario of the VM rig: the real `posbridge` against the kernel's USB stack
//! (dummy_hcd, CDC-ACM and FunctionFS gadgets, cdc-acm, usbfs, systemd-udevd) in a
//! virtual machine with no network device. `tests/vm/run usb` does the work.

mod vm_rig;

#[test]
fn usb_scenario_in_a_virtual_machine() {
    vm_rig::run(&["usb"]);
}
