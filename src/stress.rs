//! `otpsim stress`: real threads or tokio against a real SQLite file, to
//! show what simulation buys.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use otpsim_core::Variant;
use otpsim_live::stress::{stress, Runtime};
use otpsim_sim::Invariant;

use crate::InvalidInput;

/// What `stress` was asked.
pub struct StressArgs {
    pub variant: Variant,
    pub runtime: Runtime,
    pub browsers: usize,
    pub workers: usize,
    pub duration: Duration,
    pub db: Option<PathBuf>,
}

/// Removes a scratch database and its WAL files when dropped.
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

pub fn run(args: &StressArgs) -> Result<ExitCode> {
    let (db, _scratch) = match &args.db {
        Some(path) if path.exists() => {
            bail!(InvalidInput(format!(
                "{}: exists; stress writes into its database, so give a new path",
                path.display()
            )))
        }
        Some(path) => (path.clone(), Scratch(None)),
        None => {
            let path = std::env::temp_dir().join(format!("otpsim-stress-{}.db", std::process::id()));
            (path.clone(), Scratch(Some(path)))
        }
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(args.duration.as_millis() as u64);
        bar.set_style(ProgressStyle::with_template("{bar:30} {elapsed}/{msg}").expect("a valid template"));
        bar
    });
    let started = std::time::Instant::now();
    let progress = |runs: u64| {
        if let Some(bar) = &bar {
            bar.set_position(started.elapsed().as_millis() as u64);
            bar.set_message(format!("{}s  {runs} runs", args.duration.as_secs()));
        }
    };
    let report = stress(
        args.variant,
        args.runtime,
        args.browsers,
        args.workers,
        args.duration,
        &db,
        &progress,
    )?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let runtime = match args.runtime {
        Runtime::Threads => format!("{} browser threads", args.browsers),
        Runtime::Tokio => format!("{} browser tasks on tokio", args.browsers),
    };
    println!(
        "stress {}: {runtime}, {} workers, {}: {} runs, {} requests in {:.1} s ({:.0} requests/s)",
        args.variant,
        args.workers,
        db.display(),
        report.runs,
        report.requests,
        report.seconds,
        report.requests as f64 / report.seconds.max(1e-9)
    );
    let statuses: Vec<String> = report.statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    println!("answers by status: {}", statuses.join(", "));
    print!("violations per 1000 runs:");
    for i in Invariant::ALL {
        print!(" {i} {:.2}", report.per_thousand(i));
    }
    println!();
    for (i, why) in &report.examples {
        println!("  first {i}: {why}");
    }
    Ok(if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
