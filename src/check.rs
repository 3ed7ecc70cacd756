//! `otpsim check`: sweeps each variant a scenario names and compares what
//! it found with what the file expects.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use otpsim_core::DbMode;
use otpsim_sim::check::{check, CheckRow};
use otpsim_sim::schedule::Strategy;
use otpsim_sim::{Counterexample, Scenario};

use crate::cli::TableFormat;
use crate::{load_all, report};

pub fn run(
    paths: &[std::path::PathBuf],
    seed: Option<u64>,
    strategy: Strategy,
    report: Option<&Path>,
    format: TableFormat,
    jobs: usize,
    db_mode: Option<DbMode>,
) -> Result<ExitCode> {
    // Load everything first: one bad file stops the run before any work.
    let mut scenarios = load_all(paths)?;
    if let Some(db_mode) = db_mode {
        for scenario in &mut scenarios {
            Arc::make_mut(scenario).deployment.db_mode = db_mode;
        }
    }
    // Each scenario is swept on its own; the table comes out in file order.
    let checked = otpsim_sim::jobs::map(&scenarios, jobs, |scenario| check(scenario, strategy, seed));
    let (mut passed, mut failed) = (0, 0);
    let mut report_rows = Vec::new();
    if format == TableFormat::Markdown {
        println!("| scenario | variant | expected | found | schedules | |\n|---|---|---|---|---|---|");
    }
    for (scenario, rows) in scenarios.iter().zip(checked) {
        if format == TableFormat::Text {
            println!("{}  ({})", scenario.path.display(), scenario.name);
        }
        for row in rows {
            match format {
                TableFormat::Text => print_row(scenario, &row, strategy),
                TableFormat::Markdown => println!(
                    "| `{}` | {} | `{}` | `{}` | {} | {} |",
                    scenario.path.display(),
                    row.variant,
                    row.expected,
                    row.found(),
                    row.sweep.schedules,
                    if row.holds() { "✅" } else { "❌ unexpected" }
                ),
            }
            if row.holds() {
                passed += 1;
            } else {
                failed += 1;
            }
            if report.is_some() {
                let example = row.counterexample().map(|c| report::of_counterexample(scenario, c));
                let file = scenario.path.display().to_string();
                let (variant, expected) = (row.variant.to_string(), row.expected.to_string());
                report_rows.push(report::row(
                    &file,
                    &variant,
                    &expected,
                    &row.found(),
                    row.holds(),
                    example,
                ));
            }
        }
    }
    if format == TableFormat::Markdown {
        println!();
    }
    if let Some(dir) = report {
        let path = report::write(dir, "otpsim check", &report_rows)?;
        eprintln!("report: {}", path.display());
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_row(scenario: &Scenario, row: &CheckRow, strategy: Strategy) {
    let verdict = if row.holds() { "ok" } else { "UNEXPECTED" };
    let schedules = row.sweep.schedules;
    let expected = row.expected.to_string();
    println!(
        "  {:<16} expected {expected:<24} found {:<24} {schedules:>4} schedules  {verdict}",
        row.variant.to_string(),
        row.found()
    );
    if !row.holds() {
        match row.counterexample() {
            Some(f) => {
                for v in &f.violations {
                    println!("    {}: {}", v.invariant, v.why);
                }
                println!("    replay: {}", replay_command(scenario, f));
            }
            None => println!(
                "    no schedule broke it; explore more with: otpsim check {} --strategy {strategy} --seed <another>",
                scenario.path.display()
            ),
        }
    }
}

/// The command that replays `c` as exactly one schedule.
pub fn replay_command(scenario: &Scenario, c: &Counterexample) -> String {
    let choices: Vec<String> = c.choices.iter().map(u8::to_string).collect();
    let mut cmd = format!(
        "otpsim replay {} --variant {} --seed {} --choices {}",
        scenario.path.display(),
        c.flow,
        c.seed,
        choices.join(",")
    );
    if scenario
        .faults
        .iter()
        .any(|s| s.statement == otpsim_sim::scenario::StatementChoice::Every)
    {
        cmd.push_str(&format!(" --position {}", c.position));
    }
    cmd
}
