//! Stand-ins for the world around the bridge, used by field techs, the demo and the
//! tests alike: a noisy line, the terminal emulator, the link-test responder, the
//! cloud simulator, a vendor-bulk USB terminal made of Linux's gadget stack, and a
//! throwaway PostgreSQL cluster for the fleet.

pub mod chaos;
pub mod cloud;
pub mod gadget;
pub mod line;
pub mod link_test;
pub mod postgres;
pub mod powercut;
pub mod screen;
pub mod terminal;
