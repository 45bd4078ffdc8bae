//! `posbridge-chaos`: the fault campaign from the command line, for long runs.
//!
//! Runs seed after seed (each a schedule of line noise, unplugs, cloud faults and
//! SIGKILLs against the real bridge process), prints what each did and found, and
//! stops at the first failing seed with the command that replays it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use posbridge::sim::chaos::{self, Campaign, Intensity, ProviderKind};

/// Drive the bridge through seeded faults and check that no refund is lost, none is
/// made twice, and the cashier is always told the truth.
#[derive(Parser, Debug)]
#[command(
    name = "posbridge-chaos",
    version,
    after_help = "Examples:\n  \
        posbridge-chaos --minutes 30                 # seeds from a random one, for 30 minutes\n  \
        posbridge-chaos --seed 42                    # one run, seed 42 (replays it)\n  \
        posbridge-chaos --seed 1 --runs 20 --provider ottpay\n\n\
        A failing seed is printed with the command that replays its schedule; its \
        directory (ledger, bridge log, configuration) is kept."
)]
struct Args {
    /// The first seed (default: drawn from the clock and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// How many seeds to run, one after another.
    #[arg(long, conflicts_with = "minutes")]
    runs: Option<u64>,
    /// Keep running seeds until this many minutes have passed.
    #[arg(long)]
    minutes: Option<f64>,
    /// How long each run's schedule lasts, in seconds (settling comes on top).
    #[arg(long, default_value_t = 30)]
    run_seconds: u64,
    /// antom, ottpay or paymentoptions (default: by seed, Antom half the time).
    #[arg(long, value_parser = parse_provider)]
    provider: Option<ProviderKind>,
    /// Emulated terminals on the bridge.
    #[arg(long, default_value_t = 2)]
    terminals: usize,
    /// Refunds started per second over all terminals.
    #[arg(long, default_value_t = 6.0)]
    rate: f64,
    /// The posbridge binary (default: the one next to this program).
    #[arg(long)]
    bridge: Option<PathBuf>,
    /// Keep every run's directory, not only failing ones.
    #[arg(long)]
    keep: bool,
}

fn parse_provider(text: &str) -> Result<ProviderKind, String> {
    ProviderKind::parse(text).ok_or_else(|| "expected antom, ottpay or paymentoptions".into())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let bridge = match args.bridge.clone().or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("posbridge")))
    }) {
        Some(path) if path.exists() => path,
        other => {
            eprintln!(
                "posbridge-chaos: no posbridge binary at {} (build it, or pass --bridge PATH)",
                other.map_or("?".into(), |p| p.display().to_string())
            );
            return ExitCode::from(2);
        }
    };
    let first = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() % 1_000_000)
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("posbridge-chaos: {e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let until = args
        .minutes
        .map(|m| Duration::from_secs_f64(m.max(0.0) * 60.0));
    let runs = if until.is_some() {
        u64::MAX
    } else {
        args.runs.unwrap_or(1)
    };
    let mut totals = Totals::default();
    for seed in (first..).take(runs.try_into().unwrap_or(usize::MAX)) {
        if until.is_some_and(|u| started.elapsed() >= u) {
            break;
        }
        let campaign = Campaign {
            provider: args.provider,
            intensity: Intensity {
                duration: Duration::from_secs(args.run_seconds),
                terminals: args.terminals,
                refunds_per_second: args.rate,
                ..Intensity::default()
            },
            keep: args.keep,
            ..Campaign::new(seed, &bridge)
        };
        let report = match runtime.block_on(chaos::run(&campaign)) {
            Ok(report) => report,
            Err(e) => {
                eprintln!("posbridge-chaos: seed {seed}: {e}");
                return ExitCode::from(2);
            }
        };
        println!("{report}");
        totals.add(&report);
        if !report.passed() {
            println!(
                "\nseed {seed} FAILED; replay it with:\n  posbridge-chaos --seed {seed} --provider {} --run-seconds {} --terminals {} --rate {}",
                report.provider, args.run_seconds, args.terminals, args.rate
            );
            println!("{totals}");
            return ExitCode::FAILURE;
        }
    }
    println!("{totals}");
    ExitCode::SUCCESS
}

#[derive(Default)]
struct Totals {
    runs: u64,
    refunds: u64,
    executed: u64,
    kills: u64,
    unplugs: u64,
    cloud_faults: u64,
    frames: u64,
    damaged: u64,
    elapsed: Duration,
}

impl Totals {
    fn add(&mut self, r: &chaos::Report) {
        self.runs += 1;
        self.refunds += u64::from(r.tally.refunds);
        self.executed += u64::from(r.executed);
        self.kills += u64::from(r.tally.kills);
        self.unplugs += u64::from(r.tally.unplugs);
        self.cloud_faults += u64::from(r.tally.cloud_faults + r.tally.cloud_outages);
        self.frames += r.frames;
        self.damaged += r.damaged;
        self.elapsed += r.elapsed;
    }
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} runs in {:.0} s: {} refunds ({} executed at the provider), {} SIGKILLs, {} unplugs, {} cloud faults, {} frames ({} damaged)",
            self.runs,
            self.elapsed.as_secs_f64(),
            self.refunds,
            self.executed,
            self.kills,
            self.unplugs,
            self.cloud_faults,
            self.frames,
            self.damaged
        )
    }
}
