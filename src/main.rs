//! The otpsim command line: a thin layer over `otpsim-sim`. `cli` holds
//! every flag; each command has its module.
//!
//! Exit codes: 0 when every expectation holds, 1 when one does not, 2 on
//! invalid input (a scenario file, a flag).

mod ablate;
mod bugfind;
mod check;
mod cli;
mod explore;
mod init;
mod interrupt;
mod junit;
mod live;
mod merge;
mod replay;
mod report;
mod serve;
mod stress;
mod style;
mod table;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::Parser;
use otpsim_sim::scenario::{discover, DiscoveryError};
use otpsim_sim::{Scenario, ScenarioError};

use cli::{Cli, Command};

/// A schedule of `explore` allocates and frees small blocks by the
/// thousand; mimalloc ran it 1.19x faster than glibc's malloc
/// (BENCHMARKS.md, session 25). The libraries leave the choice to their
/// user: a test binary keeps its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bad input: reported, exit code 2.
#[derive(Debug)]
pub struct InvalidInput(pub String);

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

fn main() -> ExitCode {
    interrupt::quiet_on_closed_pipe();
    // clap exits with 2 on a bad flag, as the project's convention asks.
    let cli = Cli::parse();
    style::set(cli.color, cli.quiet);
    let outcome = match cli.command {
        // With --target the rows are live ones; clap refuses the
        // simulator's other flags beside it.
        Command::Check(args) => check::run(&args),
        Command::Merge {
            reports,
            format,
            save,
            json,
            junit,
        } => merge::run(&reports, format, &save, json.as_deref(), junit.as_deref()),
        Command::Replay(args) => match (&args.target, args.variant) {
            (Some(target), _) => live::replay(target, &args),
            (None, _) if args.deliveries.is_some() => Err(InvalidInput(
                "--deliveries orders a live run's deliveries and needs --target; the simulator's schedule is --choices"
                    .to_string(),
            )
            .into()),
            (None, Some(_)) => replay::run(&args),
            (None, None) => Err(InvalidInput("--variant is needed without --target".to_string()).into()),
        },
        Command::Explore(args) => match &args.target {
            Some(target) => live::explore(target, &args),
            None => explore::run(&args),
        },
        Command::Bugfind {
            paths,
            seeds,
            max,
            jobs,
        } => {
            let paths = if paths.is_empty() {
                ["seed_incident", "double_click_signup", "double_click_two_workers"]
                    .iter()
                    .map(|n| PathBuf::from(format!("scenarios/{n}.toml")))
                    .collect()
            } else {
                paths
            };
            load_all(&paths).map(|scenarios| bugfind::run(&scenarios, seeds, max, jobs))
        }
        Command::Stress(f) if f.target.is_some() => live::stress(&f),
        Command::Stress(f) => stress::run(&stress::StressArgs {
            variant: f.variant.expect("clap requires --variant without --target"),
            runtime: if f.tokio {
                otpsim_live::stress::Runtime::Tokio
            } else {
                otpsim_live::stress::Runtime::Threads
            },
            browsers: usize::from(f.threads),
            workers: usize::from(f.workers),
            duration: f.duration,
            db: f.db,
        }),
        Command::Serve(flags) => serve::run(&flags),
        Command::Init {
            what: cli::InitWhat::Target(flags),
        } => init::run(&flags),
        Command::Ablate {
            paths,
            budget,
            seed,
            jobs,
        } => {
            let paths = if paths.is_empty() {
                vec![PathBuf::from("scenarios")]
            } else {
                paths
            };
            load_all(&paths).map(|scenarios| {
                ablate::run(&scenarios, budget, seed, jobs);
                ExitCode::SUCCESS
            })
        }
    };
    // For tests and benchmarks: how much memory the whole command took.
    if std::env::var_os("OTPSIM_REPORT_PEAK_RSS").is_some() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            eprintln!("peak RSS: {}", line.trim_start_matches("VmHWM:").trim());
        }
    }
    match outcome {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<live::Stopped>().is_some() => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            let invalid = e.downcast_ref::<InvalidInput>().is_some()
                || e.downcast_ref::<ScenarioError>().is_some()
                || e.downcast_ref::<DiscoveryError>().is_some()
                || e.downcast_ref::<otpsim_live::target::TargetError>().is_some();
            if invalid {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn load(path: &Path) -> Result<Arc<Scenario>> {
    Ok(Arc::new(Scenario::load(path)?))
}

/// Every scenario under `paths` (files, or folders searched recursively),
/// loaded.
fn load_all(paths: &[PathBuf]) -> Result<Vec<Arc<Scenario>>> {
    discover(paths)?.iter().map(|f| load(f)).collect()
}
