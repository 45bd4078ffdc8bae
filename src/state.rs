//! Where a refund stands: the states the ledger records and the link protocol tells
//! the terminal. Both layers use them, so they live below both.

use serde::{Deserialize, Serialize};

/// Where a refund stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundState {
    /// Durably recorded, being sent to the cloud.
    Accepted,
    /// Recorded; the cloud is unreachable and it will be sent when it returns.
    Queued,
    /// The cloud accepted it; the final result is pending.
    Processing,
    /// The provider accepted it and finishes it later, and cannot be asked about it:
    /// reconciliation against the provider's report settles it. The terminal hears
    /// `PROCESSING` (see [`RefundState::on_the_wire`]).
    ProviderPending,
    /// Refunded.
    Succeeded,
    /// Refused by the provider; `resultCode` says why.
    Failed,
    /// The outcome cannot be known automatically; a person must look.
    NeedsAttention,
}

impl RefundState {
    /// Every state, in life-cycle order.
    pub const ALL: [RefundState; 7] = [
        RefundState::Accepted,
        RefundState::Queued,
        RefundState::Processing,
        RefundState::ProviderPending,
        RefundState::Succeeded,
        RefundState::Failed,
        RefundState::NeedsAttention,
    ];

    /// The state's name, as the ledger and the wire spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundState::Accepted => "ACCEPTED",
            RefundState::Queued => "QUEUED",
            RefundState::Processing => "PROCESSING",
            RefundState::ProviderPending => "PROVIDER_PENDING",
            RefundState::Succeeded => "SUCCEEDED",
            RefundState::Failed => "FAILED",
            RefundState::NeedsAttention => "NEEDS_ATTENTION",
        }
    }

    /// The state a terminal is told: link protocol v1 knows six states, and a refund
    /// the provider finishes later is, for the terminal, `PROCESSING` ("the provider
    /// accepted it; the result is pending").
    pub fn on_the_wire(self) -> RefundState {
        match self {
            RefundState::ProviderPending => RefundState::Processing,
            other => other,
        }
    }

    /// Whether the terminal is told this state again after every reconnect until it
    /// acknowledges it: the final states, and a refund the provider finishes later,
    /// which may rest there for days.
    pub fn told_until_acknowledged(self) -> bool {
        self.is_final() || self == RefundState::ProviderPending
    }

    /// Whether the state is final for the terminal.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RefundState::Succeeded | RefundState::Failed | RefundState::NeedsAttention
        )
    }
}

impl std::fmt::Display for RefundState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
