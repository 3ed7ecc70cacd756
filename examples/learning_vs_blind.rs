//! The search that learns against blind generation, as BENCHMARKS.md
//! reports it: for every (variant, invariant) the corpus shows broken, the
//! time and the schedules each search needed to first hit it, on seeds 1
//! to 5, and the median of each.
//!
//! ```text
//! cargo run --release --example learning_vs_blind -- [SCHEDULES] [SEEDS]
//! ```
//!
//! Each search runs alone on one thread, one after the other, with a
//! budget of SCHEDULES (default 60000) per variant and seed; a pair not
//! hit within it counts as "not found" (and as longer than any hit in the
//! median). Times are wall-clock from the start of the search, including
//! the reduction of the invariants found before it, as `explore` prints
//! them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use otpsim_core::Variant;
use otpsim_sim::explore::{search, Budget, Guide, Options};
use otpsim_sim::schedule::Strategy;
use otpsim_sim::{Invariant, Scenario};

/// (variant, invariant) → per seed, (schedules, seconds) to the first hit.
type Hits = BTreeMap<(Variant, Invariant), Vec<Option<(u64, f64)>>>;

fn main() -> ExitCode {
    let arg = |i: usize, default: u64| match std::env::args().nth(i) {
        None => Ok(default),
        Some(a) => a.parse::<u64>().map_err(|e| format!("argument {i} {a:?}: {e}")),
    };
    let (schedules, seeds) = match (arg(1, 60_000), arg(2, 5)) {
        (Ok(s), Ok(n)) if s > 0 && n > 0 => (s, n),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}; expected [SCHEDULES] [SEEDS], positive whole numbers");
            return ExitCode::from(2);
        }
        _ => {
            eprintln!("error: SCHEDULES and SEEDS must be positive");
            return ExitCode::from(2);
        }
    };
    let pairs = match broken_in_corpus(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let variants: Vec<Variant> = {
        let mut v: Vec<Variant> = pairs.iter().map(|(v, _)| *v).collect();
        v.dedup();
        v
    };
    let mut hits: BTreeMap<Guide, Hits> = BTreeMap::new();
    for guide in [Guide::Coverage, Guide::Blind] {
        for variant in &variants {
            for seed in 1..=seeds {
                let options = Options {
                    guide,
                    // One round: the search that learns builds on all of it.
                    round: schedules,
                    ..Options::new(Budget::Schedules(schedules), seed)
                };
                let report = search(variant, &options, &|_, _| {});
                eprintln!(
                    "{guide} {variant} seed {seed}: {} schedules in {:.1} s",
                    report.schedules, report.seconds
                );
                for (v, i) in pairs.iter().filter(|(v, _)| v == variant) {
                    let hit = report
                        .findings
                        .iter()
                        .find(|f| f.invariant == *i)
                        .map(|f| (f.schedules_to_hit, f.seconds_to_hit));
                    hits.entry(guide).or_default().entry((*v, *i)).or_default().push(hit);
                }
            }
        }
    }
    println!(
        "| variant | invariant | learning: median schedules (s) | blind: median schedules (s) | learning ≤ 10 s | blind ≤ 10 s |"
    );
    println!("|---|---|---|---|---|---|");
    let mut all_within = true;
    for pair in &pairs {
        let (learn, blind) = (&hits[&Guide::Coverage][pair], &hits[&Guide::Blind][pair]);
        let within = |h: &[Option<(u64, f64)>]| h.iter().filter(|x| x.is_some_and(|(_, s)| s <= 10.0)).count();
        all_within &= within(learn) == learn.len();
        println!(
            "| {} | {} | {} | {} | {}/{} | {}/{} |",
            pair.0,
            pair.1,
            median(learn),
            median(blind),
            within(learn),
            learn.len(),
            within(blind),
            blind.len()
        );
    }
    println!(
        "\nbudget {schedules} schedules per variant and seed, seeds 1 to {seeds}; every pair within 10 s on every seed with learning: {}",
        if all_within { "yes" } else { "no" }
    );
    ExitCode::SUCCESS
}

/// The seed at the median by schedules, with its seconds; a miss sorts
/// after every hit. Not by seconds: they count the reduction of the
/// invariants found first and whatever else the machine runs, so the
/// median seed by time moved between two runs of one build.
fn median(hits: &[Option<(u64, f64)>]) -> String {
    let mut sorted: Vec<Option<(u64, f64)>> = hits.to_vec();
    sorted.sort_by(|a, b| match (a, b) {
        (Some(x), Some(y)) => x.0.cmp(&y.0),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    match sorted[sorted.len() / 2] {
        Some((n, s)) => format!("{n} ({s:.2} s)"),
        None => "not found".to_string(),
    }
}

/// Every (variant, invariant) some corpus file shows broken, as `otpsim
/// check` finds it.
fn broken_in_corpus(dir: &Path) -> Result<Vec<(Variant, Invariant)>, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut pairs = std::collections::BTreeSet::new();
    for file in files {
        let scenario = Arc::new(Scenario::load(&file).map_err(|e| e.to_string())?);
        for row in otpsim_sim::check::check(&scenario, Strategy::default(), None) {
            pairs.extend(row.sweep.violated().into_iter().map(|i| (row.variant, i)));
        }
    }
    Ok(pairs.into_iter().collect())
}
