//! The live search (`otpsim explore --target`) rehearsed in the simulator:
//! the same pool, the same fitting of each drawn case to the target, the
//! same aims and features a live run gives the pool, but each case run as
//! one schedule of a flow of ours instead of against the server. It
//! starts nothing and takes seconds, so a change to the generator or to
//! the mutations can be weighed in live runs before ten real minutes are
//! spent on it.
//!
//! ```text
//! cargo run --release --example live_search_rehearsal -- TARGET VARIANT [RUNS] [SEEDS] [SPEED]
//! ```
//!
//! For each seed 1 to SEEDS (default 5), the runs (default 600) until
//! each invariant was first broken, and the median of each over the
//! seeds, a miss counted as longer than any hit. SPEED is the controlled
//! clock's, as `explore --target --speed` takes it (1 to 100; default
//! 10), or `file` for the clock the target file sets, if any, as a
//! search without `--speed` runs. The verdicts are VARIANT's, a
//! flow of this project (`naive`, `seed_fix`, ...): a rehearsal against
//! `targets/django.toml` fits cases to Django's constants and routes but
//! judges naive's behaviour, so it says how often the search draws the
//! shapes that break a flaw naive shares, not what Django does. What it
//! leaves out: the server's own timing, runs lost to start-up, and the
//! features only a live answer has (statuses, redirects).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use otpsim_core::Variant;
use otpsim_live::clock::{FakeClock, DEFAULT_START_UNIX_MS};
use otpsim_live::explore::for_target;
use otpsim_live::target::Target;
use otpsim_sim::explore::{aims, coverage, Aim, Pool};
use otpsim_sim::sweep::replay;
use otpsim_sim::Invariant;

/// The longest a case may last in real time: `explore --target`'s
/// `--longest` default.
const LONGEST_MS: u64 = 5_000;

/// Most draws in a row that may fit nothing.
const DRAWS: usize = 10_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (target, variant, runs, seeds) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("usage: live_search_rehearsal TARGET VARIANT [RUNS] [SEEDS] [SPEED|file]");
            return ExitCode::from(2);
        }
    };
    match report(&target, &variant, runs, seeds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The target (on the clock asked for), the variant, runs and seeds.
fn parse(args: &[String]) -> Result<(Target, Variant, u64, u64), String> {
    if args.len() > 5 {
        return Err(format!("{} arguments; expected at most 5", args.len()));
    }
    let (Some(path), Some(variant)) = (args.first(), args.get(1)) else {
        return Err("a target file and a variant are needed".into());
    };
    let number = |i: usize, default: u64, most: u64| -> Result<u64, String> {
        match args.get(i) {
            None => Ok(default),
            Some(a) => match a.parse::<u64>() {
                Ok(n) if (1..=most).contains(&n) => Ok(n),
                _ => Err(format!(
                    "argument {} {a:?}: expected a whole number from 1 to {most}",
                    i + 1
                )),
            },
        }
    };
    let (runs, seeds) = (number(2, 600, 1_000_000)?, number(3, 5, 1000)?);
    let variant: Variant = variant.parse().map_err(|e| format!("{e}"))?;
    let mut target = Target::load(Path::new(path)).map_err(|e| e.to_string())?;
    if args.get(4).map(String::as_str) != Some("file") {
        let speed = number(4, 10, 100)?;
        target.clock = Some(FakeClock {
            start_unix_ms: target.clock.map_or(DEFAULT_START_UNIX_MS, |c| c.start_unix_ms),
            speed: speed as u32,
        });
    }
    Ok((target, variant, runs, seeds))
}

fn report(target: &Target, variant: &Variant, runs: u64, seeds: u64) -> Result<(), String> {
    let mut hits: BTreeMap<Invariant, Vec<Option<u64>>> = BTreeMap::new();
    for seed in 1..=seeds {
        let found = rehearse(target, variant, seed, runs)?;
        let list: Vec<String> = found.iter().map(|(i, n)| format!("{i} {n}")).collect();
        println!("seed {seed}: {}", list.join(", "));
        for i in Invariant::ALL {
            hits.entry(i)
                .or_default()
                .push(found.iter().find(|(f, _)| *f == i).map(|(_, n)| *n));
        }
    }
    println!("\n| invariant | median runs to a first break | broken on |");
    println!("|---|---|---|");
    for (invariant, per_seed) in &hits {
        let on = per_seed.iter().filter(|h| h.is_some()).count();
        if on == 0 {
            continue;
        }
        let mut sorted: Vec<u64> = per_seed.iter().map(|h| h.unwrap_or(u64::MAX)).collect();
        sorted.sort_unstable();
        let median = match sorted[sorted.len() / 2] {
            u64::MAX => format!("over {runs}"),
            n => n.to_string(),
        };
        println!("| {invariant} | {median} | {on} of {seeds} seeds |");
    }
    let clock = target
        .clock
        .map_or("the real clock".to_string(), |c| format!("a clock x{}", c.speed));
    println!("\n{runs} runs per seed, judged as {variant}, on {clock}");
    Ok(())
}

/// The first break of each invariant in `runs` rehearsed runs, by run.
fn rehearse(target: &Target, variant: &Variant, seed: u64, runs: u64) -> Result<Vec<(Invariant, u64)>, String> {
    let mut pool = Pool::new(seed);
    let mut found: Vec<(Invariant, u64)> = Vec::new();
    let mut features = Vec::new();
    for n in 1..=runs {
        let fitted = (0..DRAWS).find_map(|_| {
            let (case, choices) = pool.draw();
            for_target(target, &case, LONGEST_MS).map(|s| (Arc::new(s), choices))
        });
        let Some((case, choices)) = fitted else {
            return Err(format!("{DRAWS} drawn cases in a row fit nothing in {}", target.name));
        };
        let (outcome, violations, taken) = replay(&case, variant, seed, &choices, 1);
        for v in violations {
            if found.iter().all(|(i, _)| *i != v.invariant) {
                found.push((v.invariant, n));
            }
        }
        coverage::features(&outcome.trace, case.deployment.otp_ttl_ms, &mut features);
        // What a live run gives the pool: no writes to aim a fault at (a
        // real server has no statement hook), the guesses it refused and
        // the owners' signups it accepted.
        let live_aims = || {
            aims(&case, &outcome.trace)
                .into_iter()
                .filter(|a| !matches!(a, Aim::Write { .. }))
                .collect()
        };
        pool.learn((Arc::clone(&case), taken), &mut features, live_aims);
    }
    Ok(found)
}
