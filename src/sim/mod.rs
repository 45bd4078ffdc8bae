//! Stand-ins for the world around the bridge, used by field techs, the demo and the
//! tests alike: a noisy line, the terminal emulator, and the link-test responder.

pub mod line;
pub mod link_test;
pub mod screen;
pub mod terminal;
