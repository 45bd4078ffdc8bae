//! A short power-cut campaign of the VM rig: the installed bridge's VM killed with
//! SIGKILL (a power cut: what the guest had not flushed is lost) at seeded points with
//! refunds in flight, booted again on the same disk, and the books checked.
//! `POWERCUT_CUTS` and `POWERCUT_SEED` change the campaign; long ones are run by hand
//! (`tests/vm/run powercut --cuts 1000 --seed 7`, README "Reliability").

mod vm_rig;

#[test]
fn a_short_power_cut_campaign() {
    let cuts = std::env::var("POWERCUT_CUTS").unwrap_or_else(|_| "2".into());
    let seed = std::env::var("POWERCUT_SEED").unwrap_or_else(|_| "1".into());
    vm_rig::run(&["powercut", "--cuts", &cuts, "--seed", &seed]);
}
