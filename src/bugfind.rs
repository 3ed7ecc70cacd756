//! `otpsim bugfind`: schedules to the first violation over many seeds, for
//! each scheduler, on each failing variant of the given scenarios.

use std::process::ExitCode;
use std::sync::Arc;

use otpsim_sim::Scenario;

pub fn run(scenarios: &[Arc<Scenario>], seeds: u64, max: u32, jobs: usize) -> ExitCode {
    use otpsim_sim::bugfind::{schedules_to_first, summary, FINDERS};
    println!("schedules to the first violation, over {seeds} seeds (DFS: one run; >{max}: not found)");
    println!(
        "{:<34} {:<10} {:<8} {:>7} {:>7} {:>7}",
        "scenario", "variant", "finder", "median", "p90", "max"
    );
    let rows: Vec<_> = scenarios
        .iter()
        .flat_map(|scenario| {
            scenario
                .expect
                .iter()
                .filter(|(_, e)| *e != otpsim_sim::Expectation::Pass)
                .flat_map(move |(variant, _)| FINDERS.map(|finder| (scenario, *variant, finder)))
        })
        .collect();
    // Each row is measured on its own; they print in this order.
    let lines = otpsim_sim::jobs::map(&rows, jobs, |(scenario, variant, finder)| {
        let found = schedules_to_first(scenario, *variant, *finder, seeds, max);
        let (median, p90, worst) = summary(&found, max);
        let file = scenario
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!(
            "{file:<34} {:<10} {:<8} {median:>7} {p90:>7} {worst:>7}",
            variant.to_string(),
            finder.to_string()
        )
    });
    for line in lines {
        println!("{line}");
    }
    ExitCode::SUCCESS
}
