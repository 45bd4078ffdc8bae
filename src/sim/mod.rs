//! Stand-ins for the world around the bridge, used by field techs, the demo and the
//! tests alike: a noisy line, the terminal emulator, the link-test responder, and the
//! cloud simulator.

pub mod chaos;
pub mod cloud;
pub mod line;
pub mod link_test;
pub mod screen;
pub mod terminal;
