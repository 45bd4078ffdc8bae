//! Exit statuses: one per kind of failure, so that a script can tell "fix the
//! configuration" from "try again later" from "no such refund".
//!
//! [`STATUSES`] is the one list: the man page's EXIT STATUS section is written from it
//! and a test holds the README's table to it.

use std::process::ExitCode;

use crate::ledger::LedgerError;
use crate::provider::Outcome;

/// Why a command did not do what it was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The check or comparison ran and found something wrong (`doctor`, `reconcile`,
    /// a link test), or the provider refused the refund (`refund`).
    Findings,
    /// The command line is wrong (as clap reports it).
    Usage,
    /// The configuration, or an input file (a key, a certificate, a report), cannot be
    /// used.
    Config,
    /// What was named does not exist: no such refund, no ledger, no device.
    NotFound,
    /// The refund's state does not allow the change (resolve a settled refund, retry
    /// one that needs attention).
    WrongState,
    /// Something did not answer in time: the provider, a device, a busy ledger. Trying
    /// again later may work.
    NoAnswer,
    /// This user may not read or write what the command needs.
    Permission,
    /// Anything else: an I/O error, a damaged ledger.
    Failed,
}

impl Status {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Status::Findings => 1,
            Status::Usage => 2,
            Status::Config => 3,
            Status::NotFound => 4,
            Status::WrongState => 5,
            Status::NoAnswer => 6,
            Status::Permission => 7,
            Status::Failed => 8,
        }
    }
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        ExitCode::from(status.code())
    }
}

/// Every exit status a `posbridge` command returns, with what it means.
pub const STATUSES: &[(u8, &str)] = &[
    (
        0,
        "success (for `refund` and `inquire`: the refund succeeded)",
    ),
    (
        1,
        "the command ran and found a problem: a `doctor` check failed, `reconcile` found a \
         difference, a link test failed, or the provider refused the refund",
    ),
    (
        2,
        "usage error: an unknown option or a value that does not parse",
    ),
    (
        3,
        "the configuration, or an input file (a key, a certificate, a provider's report), \
         cannot be used",
    ),
    (
        4,
        "not found: no such refund, no ledger yet, no such device",
    ),
    (
        5,
        "the refund's state does not allow the change (for example resolving a settled refund)",
    ),
    (
        6,
        "no answer: the provider, a device or the ledger did not answer in time; try again later",
    ),
    (
        7,
        "permission denied: run the command as the service user (`sudo -u posbridge …`)",
    ),
    (8, "any other error (an I/O error, a damaged ledger)"),
    (
        10,
        "`refund`/`inquire`: the provider is still processing the refund",
    ),
    (
        11,
        "`refund`/`inquire`: the provider accepted the refund and finishes it later",
    ),
    (
        12,
        "`refund`/`inquire`: the outcome is unknown; ask again with the same refundRequestId",
    ),
    (
        13,
        "`refund`/`inquire`: the provider wants a new refundRequestId",
    ),
];

/// A failure of a command: what to print and the status to exit with.
#[derive(Debug)]
pub struct Failure {
    /// Its kind.
    pub status: Status,
    /// What to tell the person.
    pub message: String,
}

impl Failure {
    /// A failure of kind `status`.
    pub fn new(status: Status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// Prints the failure as `posbridge <command>: <message>` (`posbridge: <message>`
    /// for an empty command) and returns its status.
    pub fn report(&self, command: &str) -> ExitCode {
        if command.is_empty() {
            eprintln!("posbridge: {}", self.message);
        } else {
            eprintln!("posbridge {command}: {}", self.message);
        }
        self.status.into()
    }
}

impl From<LedgerError> for Failure {
    fn from(e: LedgerError) -> Failure {
        let status = match &e {
            LedgerError::NotFound(_) | LedgerError::Ambiguous(..) => Status::NotFound,
            LedgerError::NotAllowed { .. }
            | LedgerError::FleetAhead { .. }
            | LedgerError::FleetOff { .. } => Status::WrongState,
            e if e.permission_denied() => Status::Permission,
            e if e.busy() => Status::NoAnswer,
            _ => Status::Failed,
        };
        Failure::new(status, e.to_string())
    }
}

impl From<crate::config::ConfigFileError> for Failure {
    fn from(e: crate::config::ConfigFileError) -> Failure {
        let status = if e.line.is_none() && e.message.contains("ermission denied") {
            Status::Permission
        } else {
            Status::Config
        };
        Failure::new(status, e.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::new(of_io(&e), e.to_string())
    }
}

/// The status for an I/O error, by its kind.
pub fn of_io(e: &std::io::Error) -> Status {
    match e.kind() {
        std::io::ErrorKind::NotFound => Status::NotFound,
        std::io::ErrorKind::PermissionDenied => Status::Permission,
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Status::NoAnswer,
        _ => Status::Failed,
    }
}

/// The exit code of a provider's outcome, for `refund` and `inquire`.
pub fn of_outcome(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Succeeded { .. } => 0,
        Outcome::FailedFinal { .. } => Status::Findings.code(),
        Outcome::RetrySameRequest { .. } => Status::NoAnswer.code(),
        Outcome::InProgress { .. } => 10,
        Outcome::AcceptedLater { .. } => 11,
        Outcome::OutcomeUnknown { .. } => 12,
        Outcome::NeedsNewRequestId { .. } => 13,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_listed_once_and_outcomes_do_not_collide_with_failures() {
        let all = [
            Status::Findings,
            Status::Usage,
            Status::Config,
            Status::NotFound,
            Status::WrongState,
            Status::NoAnswer,
            Status::Permission,
            Status::Failed,
        ];
        for status in all {
            assert!(
                STATUSES.iter().any(|(c, _)| *c == status.code()),
                "{status:?} is not in STATUSES"
            );
        }
        let mut codes: Vec<u8> = STATUSES.iter().map(|(c, _)| *c).collect();
        codes.dedup();
        assert_eq!(codes.len(), STATUSES.len(), "a code is listed twice");
        let failures: Vec<u8> = all.iter().map(|s| s.code()).collect();
        for code in [10, 11, 12, 13] {
            assert!(!failures.contains(&code), "{code}");
        }
    }

    #[test]
    fn the_readme_lists_exactly_these_statuses() {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("<!-- exit-statuses -->")
            .nth(1)
            .and_then(|rest| rest.split("<!-- end exit-statuses -->").next())
            .expect("README has the exit-statuses table");
        let rows: Vec<(u8, String)> = table
            .lines()
            .filter_map(|line| {
                let mut cells = line.trim_matches('|').split(" | ");
                let code = cells.next()?.trim().parse().ok()?;
                Some((code, cells.next()?.trim().to_owned()))
            })
            .collect();
        let ours: Vec<(u8, String)> = STATUSES
            .iter()
            .map(|(c, m)| (*c, m.replace("  ", " ")))
            .collect();
        assert_eq!(rows, ours);
    }

    #[test]
    fn ledger_errors_get_their_kind() {
        let of = |e: LedgerError| Failure::from(e).status;
        assert_eq!(of(LedgerError::NotFound("x".into())), Status::NotFound);
        assert_eq!(
            of(LedgerError::NotAllowed {
                id: 1,
                state: crate::state::RefundState::Succeeded,
                what: "already settled".into()
            }),
            Status::WrongState
        );
        assert_eq!(
            of(LedgerError::File {
                path: "/x".into(),
                reason: "Permission denied (os error 13)".into(),
                cause: Some(crate::ledger::FileCause::Io(std::sync::Arc::new(
                    std::io::Error::from_raw_os_error(13)
                ))),
            }),
            Status::Permission
        );
        assert_eq!(
            of(LedgerError::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some("database is locked".into())
            ))),
            Status::NoAnswer
        );
        assert_eq!(
            of(LedgerError::Corrupt {
                id: 1,
                what: "bad".into()
            }),
            Status::Failed
        );
    }
}
