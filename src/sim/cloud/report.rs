//! The simulator's books as each provider's report: what `posbridge reconcile` reads.
//!
//! - Antom: the transaction details report in its current documented layout (a
//!   header of field names, a row per transaction, `<END>`; amounts in main units;
//!   `transactionId` the payment's id, `transactionRequestId` the refundRequestId).
//! - OTT Pay and PaymentOptions, which document no report: a CSV export under the
//!   names their APIs use (what [`crate::reconcile::report::CsvLayout::ottpay`] and
//!   [`paymentoptions`](crate::reconcile::report::CsvLayout::paymentoptions) read).

use std::fmt::Write as _;

use super::books::{Books, RefundRecord, RefundState};
use crate::money::{Amount, minor_unit_exponent};

/// Whose report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// Antom's transaction details report.
    Antom,
    /// OTT Pay's fields.
    Ottpay,
    /// PaymentOptions' fields.
    Paymentoptions,
}

impl ReportFormat {
    /// By provider name.
    pub fn parse(text: &str) -> Option<ReportFormat> {
        match text {
            "antom" => Some(ReportFormat::Antom),
            "ottpay" => Some(ReportFormat::Ottpay),
            "paymentoptions" => Some(ReportFormat::Paymentoptions),
            _ => None,
        }
    }
}

/// An amount in main units: `1250` USD is `12.50`.
fn major(amount: Amount) -> String {
    let exponent = minor_unit_exponent(amount.currency);
    if exponent == 0 {
        return amount.value.to_string();
    }
    let scale = 10i64.pow(exponent);
    format!(
        "{}.{:0width$}",
        amount.value / scale,
        amount.value % scale,
        width = exponent as usize
    )
}

fn time(r: &RefundRecord) -> jiff::Timestamp {
    match r.state {
        RefundState::Succeeded { at } => at,
        _ => r.created,
    }
}

/// The books as `format`'s report.
pub fn render(ledger: &Books, format: ReportFormat) -> String {
    let refunds = ledger.refunds();
    let mut out = String::new();
    match format {
        ReportFormat::Antom => {
            out.push_str(
                "customerId,PSP,ARN,referenceMerchantId,referenceStoreId,transactionId,\
                 transactionRequestId,referenceTransactionId,originalTransactionRequestId,\
                 transactionType,transactionStatus,transactionTime,transactionAmountValue,\
                 transactionAmountCurrency\n",
            );
            for p in ledger.payments() {
                let _ = writeln!(
                    out,
                    "2188120000000001,Antom,,,,{id},pay-{id},,,PAYMENT,SUCCESS,,{},{}",
                    major(p.seed.amount),
                    p.seed.amount.currency,
                    id = p.seed.id,
                );
            }
            for r in refunds.iter().filter(|r| r.refund_request_id.is_some()) {
                let status = match r.state {
                    RefundState::Succeeded { .. } => "SUCCESS",
                    RefundState::Failed => "FAIL",
                    RefundState::Pending => "PROCESSING",
                };
                let _ = writeln!(
                    out,
                    "2188120000000001,Antom,,,,{},{},,pay-{},REFUND,{status},{},{},{}",
                    r.payment_id,
                    r.refund_request_id.as_deref().unwrap_or(""),
                    r.payment_id,
                    time(r),
                    major(r.amount),
                    r.amount.currency,
                );
            }
            out.push_str("<END>\n");
        }
        ReportFormat::Ottpay => {
            out.push_str("refundId,oriPaymentId,refundAmount,refundStatus,tradeTime\n");
            let zone = jiff::tz::TimeZone::get("America/Toronto").ok();
            for r in refunds.iter().filter(|r| r.refund_request_id.is_none()) {
                let status = match r.state {
                    RefundState::Succeeded { .. } => "success",
                    RefundState::Failed => "failure",
                    RefundState::Pending => "init",
                };
                let eastern = zone
                    .as_ref()
                    .map(|z| {
                        z.to_datetime(time(r))
                            .strftime("%Y-%m-%d %H:%M:%S")
                            .to_string()
                    })
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{},{},{},{status},{eastern}",
                    r.refund_id, r.payment_id, r.amount.value
                );
            }
        }
        ReportFormat::Paymentoptions => {
            out.push_str("id,transactionId,amount,currency,status,timestamp\n");
            for r in refunds.iter().filter(|r| r.refund_request_id.is_none()) {
                let status = match r.state {
                    RefundState::Succeeded { .. } => "success",
                    RefundState::Failed => "failed",
                    RefundState::Pending => "pending",
                };
                let _ = writeln!(
                    out,
                    "{},{},{},{},{status},{}",
                    r.refund_id,
                    r.payment_id,
                    r.amount.value,
                    r.amount.currency,
                    time(r)
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    #[test]
    fn main_units() {
        let usd = Currency::parse("USD").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(major(Amount::new(1250, usd).unwrap()), "12.50");
        assert_eq!(major(Amount::new(7, usd).unwrap()), "0.07");
        assert_eq!(major(Amount::new(1250, jpy).unwrap()), "1250");
    }
}
