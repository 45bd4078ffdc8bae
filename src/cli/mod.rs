//! The command line.
//!
//! The dispatch below is a stand-in so the cloud commands can be run by hand; the
//! full `Command` enum replaces it.

pub mod cloud;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "posbridge", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the cloud simulator.
    SimCloud(cloud::SimCloudArgs),
    /// Send one refund to the configured provider.
    Refund(cloud::RefundArgs),
    /// Look a refund up at the configured provider.
    Inquire(cloud::InquireArgs),
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> std::process::ExitCode {
    match Cli::parse().command {
        Some(Command::SimCloud(args)) => cloud::run_sim_cloud(args),
        Some(Command::Refund(args)) => cloud::run_refund(args),
        Some(Command::Inquire(args)) => cloud::run_inquire(args),
        None => std::process::ExitCode::SUCCESS,
    }
}
