//! `otpsim check --target` and `otpsim replay --target`: scenario files
//! against a real server (otpsim-live).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use otpsim_core::Variant;
use otpsim_live::check::{sweep, Order, Verdict};
use otpsim_live::run::{self, violations, LiveError, Options};
use otpsim_live::target::Target;
use otpsim_sim::render::{self, Diagram};
use otpsim_sim::schedule::Strategy;
use otpsim_sim::Scenario;

use crate::cli::{CheckArgs, RunFormat, TableFormat};
use crate::{load_all, InvalidInput};

/// A scratch folder for the runs, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn setup() -> Result<(Options, Scratch, tokio::runtime::Runtime)> {
    let scratch = std::env::temp_dir().join(format!("otpsim-live-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let options = Options {
        otpsim: std::env::current_exe().context("finding the otpsim program")?,
        scratch: scratch.clone(),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    Ok((options, Scratch(scratch), runtime))
}

/// The `[expect]` entry of `scenario` for the target's key.
fn expectation(target: &Target, scenario: &Scenario) -> Option<otpsim_sim::Expectation> {
    scenario
        .expect
        .iter()
        .find(|(variant, _)| variant.to_string() == target.expect)
        .map(|(_, e)| *e)
}

pub fn check(target: &Path, args: &CheckArgs) -> Result<ExitCode> {
    let (paths, max, strategy, seed, format) = (&args.paths, args.schedules, args.strategy, args.seed, args.format);
    let order = match strategy {
        None | Some(Strategy::Dfs) => Order::DepthFirst,
        Some(Strategy::Random) => Order::Random(seed.unwrap_or(1)),
        Some(other) => bail!(InvalidInput(format!(
            "--strategy {other} with --target: a live run orders deliveries, not threads; use dfs or random"
        ))),
    };
    if seed.is_some() && order == Order::DepthFirst {
        bail!(InvalidInput(
            "--seed with --target is the seed of --strategy random".to_string()
        ));
    }
    let target = Target::load(target)?;
    // The simulator runs the variant the target is judged as.
    let compared: Option<Variant> = match args.compare {
        false => None,
        true => Some(target.expect.parse().map_err(|_| {
            InvalidInput(format!(
                "--compare runs the simulator on the variant the target is judged as, and {}'s expect = {:?} names none (naive, seed_fix, idempotent)",
                target.path.display(),
                target.expect
            ))
        })?),
    };
    let scenarios = load_all(paths)?;
    let (options, _scratch, runtime) = setup()?;
    let (mut held, mut unexpected, mut skipped) = (0, 0, 0);
    println!(
        "target {} ({}), judged as {}",
        target.path.display(),
        target.name,
        target.expect
    );
    if format == TableFormat::Markdown {
        match compared {
            None => println!("| scenario | expected | live | schedules | seconds | |\n|---|---|---|---|---|---|"),
            Some(_) => println!(
                "| scenario | expected | simulator | live (orders) | live orders the simulator made | verdicts |\n|---|---|---|---|---|---|"
            ),
        }
    }
    let (mut agree, mut differ) = (0, 0);
    for scenario in &scenarios {
        let expected = expectation(&target, scenario);
        let swept = runtime.block_on(sweep(&target, scenario, &options, max as usize, order));
        let file = scenario.path.display();
        let swept = match swept {
            Ok(s) => s,
            Err(LiveError::NotRunnable(why)) => {
                skipped += 1;
                match format {
                    TableFormat::Text => println!("{file}\n  not runnable live: {why}"),
                    TableFormat::Markdown => println!("| `{file}` | | | not runnable: {why} | | |"),
                }
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("running {file} live")),
        };
        let verdict = expected.map(|e| swept.verdict(e));
        let mark = match verdict {
            Some(Verdict::Holds) => crate::style::verdict("ok", true),
            Some(Verdict::Unexpected) => crate::style::verdict("UNEXPECTED", false),
            Some(Verdict::NotObservable) => "not observable".to_string(),
            None => "no expectation".to_string(),
        };
        match verdict {
            Some(Verdict::Holds) => held += 1,
            Some(Verdict::Unexpected) => unexpected += 1,
            _ => skipped += 1,
        }
        let comparison = compared.map(|variant| {
            let shared = std::sync::Arc::new(scenario.clone());
            otpsim_sim::check::beside_live(&shared, variant, &swept.orders, &swept.not_observable)
        });
        match &comparison {
            Some(c) if c.agrees() => agree += 1,
            Some(_) => differ += 1,
            None => {}
        }
        let expected = expected.map_or("-".to_string(), |e| e.to_string());
        let all = if swept.exhausted { " (all)" } else { "" };
        if let (Some(c), TableFormat::Markdown) = (&comparison, format) {
            let name = scenario
                .path
                .file_stem()
                .map_or(String::new(), |s| s.to_string_lossy().to_string());
            println!(
                "| `{name}` | `{expected}` | {} | {} ({}) | {} of {} | {} |",
                otpsim_sim::Expectation::found(&c.simulated),
                swept.found(),
                swept.schedules,
                c.seen,
                swept.orders.len(),
                if c.agrees() { "agree" } else { "**differ**" }
            );
            continue;
        }
        match format {
            TableFormat::Text => {
                println!("{file}  ({})", scenario.name);
                println!(
                    "  live  expected {expected:<24} found {:<24} {:>3} schedule(s){all}  {:>6.1} s  {mark}",
                    swept.found(),
                    swept.schedules,
                    swept.seconds
                );
                if let Some(c) = &comparison {
                    println!(
                        "  sim   found {:<24} {} of {} live network orders also simulated  {}",
                        otpsim_sim::Expectation::found(&c.simulated),
                        c.seen,
                        c.runs,
                        if c.agrees() { "agree" } else { "DIFFER" }
                    );
                    if let Some(order) = &c.unseen {
                        println!("    a live order the simulator never made: {}", order.join(", "));
                    }
                }
                if !swept.not_observable.is_empty() {
                    let names: Vec<&str> = swept.not_observable.iter().map(|i| i.name()).collect();
                    println!("    not observable by this target: {}", names.join(", "));
                }
                if let Some(c) = &swept.counterexample {
                    for v in &c.violations {
                        println!("    {}: {}", v.invariant, v.why);
                    }
                    println!("    replay: {}", c.command(scenario));
                }
            }
            TableFormat::Markdown => println!(
                "| `{file}` | `{expected}` | `{}` | {}{all} | {:.1} | {mark} |",
                swept.found(),
                swept.schedules,
                swept.seconds
            ),
        }
    }
    // The words of check's summary line, and the rows live mode could not
    // judge beside them.
    println!("{held} passed, {unexpected} failed, {skipped} not judged");
    if compared.is_some() {
        println!("beside the simulator: {agree} agree, {differ} differ");
    }
    Ok(if unexpected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn replay(target: &Path, file: &Path, choices: Vec<u8>, repeat: u32, format: RunFormat) -> Result<ExitCode> {
    let target = Target::load(target)?;
    let scenario = crate::load(file)?;
    let (options, _scratch, runtime) = setup()?;
    let mut runs = Vec::new();
    for n in 0..repeat {
        let run = runtime
            .block_on(run::run(&target, &scenario, &choices, &options, n as usize))
            .with_context(|| format!("running {} live", file.display()))?;
        runs.push(run);
    }
    let first = &runs[0];
    // A choice the run had no use for means a different schedule than the
    // one asked for: say so rather than replay something else.
    if choices.len() > first.arities.len() {
        bail!(InvalidInput(format!(
            "--deliveries gives {} choices, but this schedule has only {} instants with more than one delivery",
            choices.len(),
            first.arities.len()
        )));
    }
    if let Some((i, (c, a))) = choices
        .iter()
        .zip(&first.arities)
        .enumerate()
        .find(|(_, (c, a))| c >= a)
    {
        bail!(InvalidInput(format!(
            "--deliveries: choice {} is {c}, but only {a} deliveries were due at that instant (0 to {})",
            i + 1,
            a - 1
        )));
    }
    let broken = violations(&target, &scenario, first);
    let same_invariants = |r: &run::LiveRun| {
        let a: Vec<_> = violations(&target, &scenario, r).iter().map(|v| v.invariant).collect();
        let b: Vec<_> = broken.iter().map(|v| v.invariant).collect();
        a == b
    };
    let reproduced = runs.iter().filter(|r| same_invariants(r)).count();
    let same_network = runs
        .iter()
        .filter(|r| r.trace.network_order() == first.trace.network_order())
        .count();
    let taken: Vec<String> = first.choices.iter().map(u8::to_string).collect();
    let title = format!(
        "{} | target {} | choices [{}]",
        scenario.name,
        target.name,
        taken.join(",")
    );
    let summary = format!(
        "{reproduced} of {repeat} runs broke the same invariants as the first; {same_network} of {repeat} had the same network order; a run took {:.1} s",
        runs.iter().map(|r| r.seconds).sum::<f64>() / runs.len() as f64
    );
    let diagram = || Diagram::of(&first.trace, &broken);
    match format {
        RunFormat::Text => {
            println!("# {title}");
            print!("{}", first.trace);
            if broken.is_empty() {
                println!("no invariant broken");
            }
            for v in &broken {
                println!("VIOLATED {}: {}", v.invariant, v.why);
            }
            println!("{summary}");
        }
        RunFormat::Json => print!("{}", render::json(&title, &first.trace, &broken, &summary)),
        RunFormat::Mermaid => print!("{}", render::mermaid(&diagram())),
        RunFormat::Svg => print!("{}", render::svg(&diagram())),
        RunFormat::Html => print!(
            "{}",
            render::html_page(&title, &render::svg(&diagram()), &summary, &first.trace.to_string())
        ),
    }
    if format != RunFormat::Text {
        eprintln!("{summary}");
    }
    // The first run is the one shown: it decides, as in `replay`.
    Ok(if broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
