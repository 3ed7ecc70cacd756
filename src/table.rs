//! The table `check` prints, in either mode: its rows, what `--json`
//! writes and `merge` reads back, the JUnit file, and the printer.

use std::process::ExitCode;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::cli::{Shard, TableFormat};

/// One printed row of the table: what `check --json` writes for each
/// scenario and variant, and what `otpsim merge` reads back, so that the
/// merged table is the one an unsharded run prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The scenario's position among all the files given (sharding key).
    pub index: usize,
    /// The file.
    pub file: String,
    /// The scenario's name.
    pub name: String,
    pub variant: String,
    pub expected: String,
    pub found: String,
    pub schedules: u64,
    pub holds: bool,
    /// Why each broken invariant broke (`invariant`, sentence), for an
    /// unexpected row.
    pub violations: Vec<(String, String)>,
    /// The command that replays the counterexample, if there is one.
    pub replay: Option<String>,
    /// Why a live row was not judged (not runnable live, an invariant the
    /// target cannot observe, no expectation for the target): it neither
    /// passes nor fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_judged: Option<String>,
    /// Lines shown under the row (a live run's seconds, what the target
    /// cannot observe).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// With `--target --compare`: the simulator beside the live row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beside: Option<Beside>,
}

/// The simulator beside a live row (`check --target T --compare`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Beside {
    /// What the simulator found, in an expectation's words.
    pub simulator: String,
    /// Live network orders the simulator also made, of `runs`.
    pub seen: usize,
    /// Live runs.
    pub runs: usize,
    /// The verdicts agree and every live order was simulated.
    pub agrees: bool,
}

/// What `check --json` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `I/N`, or `1/1` for an unsharded run.
    pub shard: Shard,
    /// The scheduler, for the hint on a row where nothing broke.
    pub strategy: String,
    /// With `--target`: the target and what it is judged as, printed
    /// above the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Rows, in order.
    pub rows: Vec<Row>,
}

/// What one mode's check made: the table, and the report's rows.
pub struct Checked {
    pub report: Report,
    pub report_rows: Vec<otpsim_sim::render::ReportRow>,
}

/// A testcase per row: the scenario file, the variant, and why a row that
/// does not hold fails.
pub fn write_junit(path: &std::path::Path, rows: &[Row]) -> Result<()> {
    let cases: Vec<crate::junit::Case> = rows
        .iter()
        .map(|r| crate::junit::Case {
            class: r.file.clone(),
            name: r.variant.clone(),
            skipped: r.not_judged.clone(),
            failure: (!r.holds).then(|| {
                let mut why = format!("expected {}, found {}", r.expected, r.found);
                for (invariant, sentence) in &r.violations {
                    why.push_str(&format!("\n{invariant}: {sentence}"));
                }
                if let Some(replay) = &r.replay {
                    why.push_str(&format!("\nreplay: {replay}"));
                }
                why
            }),
        })
        .collect();
    crate::junit::write(path, "otpsim check", &cases)
}

/// Prints the table and the count; exit 1 if a row does not hold.
pub fn print_table(table: &Report, format: TableFormat) -> ExitCode {
    let rows = &table.rows;
    let compared = rows.iter().any(|r| r.beside.is_some());
    if let Some(target) = &table.target {
        println!("{target}");
    }
    if format == TableFormat::Markdown {
        match compared {
            false => println!("| scenario | variant | expected | found | schedules | |\n|---|---|---|---|---|---|"),
            true => println!(
                "| scenario | variant | expected | simulator | live (orders) | live orders the simulator made | verdicts |\n|---|---|---|---|---|---|---|"
            ),
        }
    }
    let mut last = None;
    for row in rows {
        match format {
            TableFormat::Text => {
                if last != Some(row.index) {
                    println!("{}  ({})", row.file, row.name);
                    last = Some(row.index);
                }
                print_row(row, &table.strategy);
            }
            TableFormat::Markdown => {
                let mark = match (&row.not_judged, row.holds) {
                    (Some(why), _) => format!("not judged: {why}"),
                    (None, true) => "✅".to_string(),
                    (None, false) => "❌ unexpected".to_string(),
                };
                match &row.beside {
                    Some(b) => println!(
                        "| `{}` | {} | `{}` | `{}` | `{}` ({}) | {} of {} | {} |",
                        row.file,
                        row.variant,
                        row.expected,
                        b.simulator,
                        row.found,
                        row.schedules,
                        b.seen,
                        b.runs,
                        if b.agrees { "agree" } else { "**differ**" }
                    ),
                    None if compared => println!(
                        "| `{}` | {} | `{}` | | {mark} | | |",
                        row.file, row.variant, row.expected
                    ),
                    None => println!(
                        "| `{}` | {} | `{}` | `{}` | {} | {mark} |",
                        row.file, row.variant, row.expected, row.found, row.schedules
                    ),
                }
            }
        }
    }
    if format == TableFormat::Markdown {
        println!();
    }
    let failed = rows.iter().filter(|r| !r.holds && r.not_judged.is_none()).count();
    let not_judged = rows.iter().filter(|r| r.not_judged.is_some()).count();
    let passed = rows.len() - failed - not_judged;
    match not_judged {
        0 => println!("{passed} passed, {failed} failed"),
        n => println!("{passed} passed, {failed} failed, {n} not judged"),
    }
    if compared {
        let agree = rows
            .iter()
            .filter(|r| r.beside.as_ref().is_some_and(|b| b.agrees))
            .count();
        let differ = rows
            .iter()
            .filter(|r| r.beside.as_ref().is_some_and(|b| !b.agrees))
            .count();
        println!("beside the simulator: {agree} agree, {differ} differ");
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_row(row: &Row, strategy: &str) {
    let verdict = match &row.not_judged {
        Some(why) => format!("not judged: {why}"),
        None => crate::style::verdict(if row.holds { "ok" } else { "UNEXPECTED" }, row.holds),
    };
    println!(
        "  {:<16} expected {:<24} found {:<24} {:>4} schedules  {verdict}",
        row.variant, row.expected, row.found, row.schedules
    );
    for note in &row.notes {
        println!("    {note}");
    }
    if let Some(b) = &row.beside {
        println!(
            "    simulator found {}; {} of {} live network orders also simulated: {}",
            b.simulator,
            b.seen,
            b.runs,
            if b.agrees { "agree" } else { "DIFFER" }
        );
    }
    if !row.holds || (row.not_judged.is_some() && row.replay.is_some()) {
        match &row.replay {
            Some(replay) => {
                for (invariant, why) in &row.violations {
                    println!("    {invariant}: {why}");
                }
                println!("    replay: {replay}");
            }
            None if row.not_judged.is_none() => println!(
                "    no schedule broke it; explore more with: otpsim check {} --strategy {strategy} --seed <another>",
                row.file
            ),
            None => {}
        }
    }
}
