//! Stand-ins for the world around the bridge, used by field techs, the demo and the
//! tests alike: a noisy line and (later in this module) the terminal emulator.

pub mod line;
