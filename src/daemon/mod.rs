//! The daemon: `posbridge run` — configuration in, ledger opened, bridge and terminal
//! lines started, and a clean stop on SIGTERM.

pub mod doctor;
pub mod lock;
pub mod metrics;
pub mod run;
pub mod systemd;
