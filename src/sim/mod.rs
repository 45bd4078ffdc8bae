//! sim
pub mod cloud;
