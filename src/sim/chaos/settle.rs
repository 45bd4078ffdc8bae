//! The end of a run: waiting for everything to settle once the faults stop, and
//! reconciling against the simulator's report what only a person or the provider's
//! report can settle.

use std::path::Path;
use std::time::{Duration, Instant};

use super::rig::Rig;
use super::world::TerminalSide;
use super::{Campaign, CampaignError, ProviderKind, check};
use crate::ledger::Ledger;
use crate::sim::cloud::CloudSim;
use crate::sim::cloud::report::ReportFormat;

impl Rig {
    /// Waits for everything to settle: first what the bridge can finish by itself;
    /// what waits for the provider's report (PROVIDER_PENDING) or for a person
    /// (NEEDS_ATTENTION) is then settled by reconciling against the simulator's
    /// books, as a store would. Returns what needed attention before reconciling,
    /// and how many refunds reconciling settled.
    pub(super) async fn settle(
        &self,
        campaign: &Campaign,
        provider: ProviderKind,
        ledger: &Ledger,
        outages: &[jiff::Timestamp],
        run_started: jiff::Timestamp,
        violations: &mut Vec<String>,
    ) -> (check::Attention, usize) {
        let deadline = Instant::now() + campaign.settle_within;
        let calm = settle_until(ledger, &self.terminals, true, deadline).await;
        if !calm {
            violations.push(format!(
                "not settled within {:?} of the faults stopping",
                campaign.settle_within
            ));
        }
        let before_reconcile = check::attention(
            ledger,
            &self.sim,
            &self.terminals,
            provider,
            self.bridge.starts,
            outages,
        );
        if !calm {
            return (before_reconcile, 0);
        }
        let reconciled = match reconcile(
            campaign,
            provider,
            &self.sim,
            &self.config_path,
            self.dir.path(),
            run_started,
        ) {
            Ok(applied) => applied,
            Err(why) => {
                violations.push(why);
                0
            }
        };
        if !settle_until(ledger, &self.terminals, false, deadline).await {
            violations.push(format!(
                "not settled within {:?} of reconciling",
                campaign.settle_within
            ));
        }
        (before_reconcile, reconciled)
    }
}

/// Waits until the ledger and the terminals are settled ([`check::settled`], with
/// `pending_too` as there); false if they are not by `deadline`.
async fn settle_until(
    ledger: &Ledger,
    terminals: &[TerminalSide],
    pending_too: bool,
    deadline: Instant,
) -> bool {
    while !check::settled(ledger, terminals, pending_too) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// Runs `posbridge reconcile --apply` against the simulator's report, as a store
/// would with its provider's; returns how many refunds it settled.
fn reconcile(
    campaign: &Campaign,
    provider: ProviderKind,
    sim: &CloudSim,
    config: &Path,
    dir: &Path,
    from: jiff::Timestamp,
) -> Result<usize, String> {
    // Asynchronous refunds still open at the simulator finish now.
    sim.settle_now();
    let format = match provider {
        ProviderKind::Antom => ReportFormat::Antom,
        ProviderKind::OttPay => ReportFormat::Ottpay,
        ProviderKind::PaymentOptions => ReportFormat::Paymentoptions,
    };
    let report = dir.join("provider-report.csv");
    std::fs::write(&report, sim.report(format)).map_err(|e| format!("writing the report: {e}"))?;
    let through = jiff::Timestamp::now().to_string();
    let from = from.to_string();
    let mut command = std::process::Command::new(&campaign.bridge_exe);
    command
        .args(["reconcile", "--json", "--apply", "--config"])
        .arg(config)
        .arg("--report")
        .arg(&report)
        .args([
            "--provider",
            provider.name(),
            "--from",
            &from,
            "--through",
            &through,
        ])
        // One clock: the simulator's and the bridge's.
        .args(["--clock-skew", "0"]);
    if provider == ProviderKind::OttPay {
        command.args(["--currency", "USD"]);
    }
    let out = command
        .output()
        .map_err(|e| format!("running posbridge reconcile: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = std::fs::write(dir.join("reconcile.json"), &text);
    let found: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "posbridge reconcile printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let findings = found["findings"].as_array().cloned().unwrap_or_default();
    // A refund the bridge said FAILED that the provider made is a broken promise even
    // when the report corrects it.
    let wrong: Vec<String> = findings
        .iter()
        .filter(|f| f["kind"] == "failed_but_refunded")
        .map(|f| f.to_string())
        .collect();
    if !wrong.is_empty() {
        return Err(format!(
            "FAILED in the ledger but refunded by the provider: {}",
            wrong.join("; ")
        ));
    }
    if !out.status.success() {
        let disagreements: Vec<String> = findings
            .iter()
            .filter(|f| {
                f["kind"] != "confirmed" && f["kind"] != "still_open" && f["applied"] != true
            })
            .map(|f| f.to_string())
            .collect();
        return Err(format!(
            "the ledger and the provider's report disagree after reconciling: {}",
            disagreements.join("; ")
        ));
    }
    Ok(findings.iter().filter(|f| f["applied"] == true).count())
}

/// The ledger, once the bridge has created it.
pub(super) async fn open_ledger(path: &Path, within: Duration) -> Result<Ledger, CampaignError> {
    let deadline = Instant::now() + within;
    loop {
        if path.exists()
            && let Ok(ledger) = Ledger::open(path)
        {
            return Ok(ledger);
        }
        if Instant::now() >= deadline {
            return Err(CampaignError::Setup(format!(
                "no ledger at {} within {within:?}",
                path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
