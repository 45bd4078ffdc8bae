//! An independent check of the link's promise to the layer above.
//!
//! Within one session a sender's data frames carry consecutive sequence numbers (mod
//! 256), so the layer above can see, without trusting the link's own bookkeeping,
//! whether a frame was delivered twice (the same `seq` again) or skipped (a gap).
//! The bridge logs any such fault as an error; the terminal emulator keeps them for
//! the fault campaign to report.

use std::fmt;

/// A delivery that broke the sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceFault {
    /// The session it arrived in.
    pub session: u64,
    /// The `seq` that should have come next, if one was known.
    pub expected: Option<u8>,
    /// The `seq` that came.
    pub got: u8,
}

impl fmt::Display for SequenceFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expected {
            Some(e) if e == self.got.wrapping_add(1) => write!(
                f,
                "session {}: frame seq {} delivered twice",
                self.session, self.got
            ),
            Some(e) => write!(
                f,
                "session {}: frame seq {} delivered where seq {} was due",
                self.session, self.got, e
            ),
            None => write!(f, "session {}: unexpected seq {}", self.session, self.got),
        }
    }
}

/// Watches the deliveries of one link.
#[derive(Clone, Debug, Default)]
pub struct SequenceAudit {
    first: Option<u8>,
    last: Option<(u64, u8)>,
    delivered: u64,
    faults: Vec<SequenceFault>,
}

/// At most this many faults are kept; the count goes on.
const KEPT: usize = 64;

impl SequenceAudit {
    /// An audit whose sessions open with `first` (the terminal's view of the bridge:
    /// `Some(0)`), or with any `seq` (the bridge's view: HELLO carries the terminal's
    /// counter).
    pub fn new(first: Option<u8>) -> SequenceAudit {
        SequenceAudit {
            first,
            ..SequenceAudit::default()
        }
    }

    /// Records one delivery; a fault is returned (and kept) when it broke the sequence.
    pub fn observe(&mut self, session: u64, seq: u8) -> Result<(), SequenceFault> {
        self.delivered += 1;
        let expected = match self.last {
            Some((s, last)) if s == session => Some(last.wrapping_add(1)),
            _ => self.first,
        };
        self.last = Some((session, seq));
        match expected {
            Some(e) if e != seq => {
                let fault = SequenceFault {
                    session,
                    expected,
                    got: seq,
                };
                if self.faults.len() < KEPT {
                    self.faults.push(fault.clone());
                }
                Err(fault)
            }
            _ => Ok(()),
        }
    }

    /// Deliveries seen.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The faults seen (the first few).
    pub fn faults(&self) -> &[SequenceFault] {
        &self.faults
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_deliveries_pass_across_sessions_and_wrap() {
        let mut audit = SequenceAudit::new(Some(0));
        for seq in 0..=255u8 {
            audit.observe(1, seq).unwrap();
        }
        audit.observe(1, 0).unwrap();
        audit.observe(2, 0).unwrap();
        audit.observe(2, 1).unwrap();
        assert_eq!(audit.delivered(), 259);
        assert!(audit.faults().is_empty());
    }

    #[test]
    fn repeats_and_gaps_are_faults() {
        let mut audit = SequenceAudit::new(Some(0));
        audit.observe(1, 0).unwrap();
        let twice = audit.observe(1, 0).unwrap_err();
        assert!(twice.to_string().contains("delivered twice"), "{twice}");
        let gap = audit.observe(1, 5).unwrap_err();
        assert!(gap.to_string().contains("seq 1 was due"), "{gap}");
        let bad_start = audit.observe(2, 7).unwrap_err();
        assert_eq!(bad_start.expected, Some(0));
        assert_eq!(audit.faults().len(), 3);
    }

    #[test]
    fn any_first_seq_when_sessions_open_with_the_peers_counter() {
        let mut audit = SequenceAudit::new(None);
        audit.observe(1, 200).unwrap();
        audit.observe(1, 201).unwrap();
        audit.observe(2, 9).unwrap();
        assert!(audit.observe(2, 9).is_err());
    }
}
