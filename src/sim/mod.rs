//! Stand-ins for the world around the bridge, used by field techs, the demo and the
//! tests alike: a noisy line, the terminal emulator, the link-test responder, and the
//! cloud simulator, and a throwaway PostgreSQL cluster for the fleet.

pub mod chaos;
pub mod cloud;
pub mod line;
pub mod link_test;
pub mod postgres;
pub mod screen;
pub mod terminal;
