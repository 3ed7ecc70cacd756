//! `otpsim check`: sweeps each variant a scenario names and compares what
//! it found with what the file expects.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use otpsim_sim::check::check;
use otpsim_sim::scenario::discover;
use otpsim_sim::Scenario;
use serde::{Deserialize, Serialize};

use crate::cli::{CheckArgs, Shard, TableFormat};
use crate::{report, InvalidInput};

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
}

/// What `check --json` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `I/N`, or `1/1` for an unsharded run.
    pub shard: Shard,
    /// The scheduler, for the hint on a row where nothing broke.
    pub strategy: String,
    /// Rows, in order.
    pub rows: Vec<Row>,
}

pub fn run(args: &CheckArgs) -> Result<ExitCode> {
    let (paths, seed, strategy, report, format, jobs, db_mode, shard, json) = (
        &args.paths,
        args.seed,
        args.strategy.unwrap_or_default(),
        args.report.as_deref(),
        args.format,
        args.jobs,
        args.db_mode,
        args.shard,
        args.json.as_deref(),
    );
    // Every bad path and file is reported, each with where and what; the
    // good ones still run, and the exit code is then 2.
    let mut bad = 0usize;
    let mut files = Vec::new();
    for path in paths {
        match discover(std::slice::from_ref(path)) {
            Ok(found) => files.extend(found),
            Err(e) => {
                eprintln!("error: {e}");
                bad += 1;
            }
        }
    }
    let mut scenarios: Vec<(usize, Arc<Scenario>)> = Vec::new();
    // A file keeps its position among all the files, bad ones included,
    // so that every shard agrees on which is whose.
    for (index, file) in files.iter().enumerate() {
        match Scenario::load(file) {
            Ok(scenario) => scenarios.push((index, Arc::new(scenario))),
            Err(e) => {
                eprintln!("error: {e}");
                bad += 1;
            }
        }
    }
    if let Some(db_mode) = db_mode {
        for (_, scenario) in &mut scenarios {
            Arc::make_mut(scenario).deployment.db_mode = db_mode;
        }
    }
    // --name and --variant narrow the run; a file left with no variant to
    // check is not run.
    if let Some(name) = &args.name {
        scenarios
            .retain(|(_, s)| s.path.display().to_string().contains(name.as_str()) || s.name.contains(name.as_str()));
    }
    if !args.variants.is_empty() {
        for (_, scenario) in &mut scenarios {
            Arc::make_mut(scenario)
                .expect
                .retain(|(v, _)| args.variants.contains(v));
        }
        scenarios.retain(|(_, s)| !s.expect.is_empty());
    }
    if scenarios.is_empty() && bad == 0 {
        anyhow::bail!(InvalidInput(
            "no scenario is left to check after --name and --variant; a run that checks nothing would pass".to_string()
        ));
    }
    // This shard's scenarios: every N-th, from the I-th.
    let mine: Vec<(usize, Arc<Scenario>)> = scenarios.into_iter().filter(|(i, _)| shard.owns(*i)).collect();
    // Each scenario is swept on its own; the table comes out in file order.
    let checked = otpsim_sim::jobs::map(&mine, jobs, |(_, scenario)| check(scenario, strategy, seed));
    let mut rows = Vec::new();
    let mut report_rows = Vec::new();
    for ((index, scenario), checked) in mine.iter().zip(checked) {
        for row in checked {
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
            let counterexample = row.counterexample();
            rows.push(Row {
                index: *index,
                file: scenario.path.display().to_string(),
                name: scenario.name.clone(),
                variant: row.variant.to_string(),
                expected: row.expected.to_string(),
                found: row.found(),
                schedules: row.sweep.schedules,
                holds: row.holds(),
                violations: counterexample
                    .filter(|_| !row.holds())
                    .map(|c| {
                        c.violations
                            .iter()
                            .map(|v| (v.invariant.to_string(), v.why.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
                replay: counterexample.map(|c| c.command(scenario)),
            });
        }
    }
    if let Some(dir) = report {
        let path = report::write(dir, "otpsim check", &report_rows)?;
        if !crate::style::quiet() {
            eprintln!("report: {}", path.display());
        }
    }
    let table = Report {
        shard,
        strategy: strategy.to_string(),
        rows,
    };
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&table)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.junit {
        write_junit(path, &table.rows)?;
    }
    let code = print_table(&table.rows, &table.strategy, format);
    if bad > 0 {
        eprintln!("{bad} bad path(s) or file(s) above; the rest ran");
        return Ok(ExitCode::from(2));
    }
    Ok(code)
}

/// `otpsim merge`: the shards' JSON reports, printed as the table one
/// unsharded run prints, with its exit code.
pub fn merge(
    files: &[(std::path::PathBuf, String)],
    format: TableFormat,
    junit: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let mut reports: Vec<(std::path::PathBuf, Report)> = Vec::new();
    for (file, text) in files {
        let report: Report = serde_json::from_str(text).map_err(|e| {
            InvalidInput(format!(
                "{}:{}:{}: not a report of `otpsim check --json`: {e}",
                file.display(),
                e.line(),
                e.column()
            ))
        })?;
        reports.push((file.clone(), report));
    }
    let shards: Vec<_> = reports.iter().map(|(f, r)| (f.clone(), r.shard)).collect();
    crate::cli::shards_complete(&shards)?;
    let strategy = reports[0].1.strategy.clone();
    let mut rows: Vec<Row> = reports.into_iter().flat_map(|(_, r)| r.rows).collect();
    // Stable: a scenario's rows keep their order.
    rows.sort_by_key(|r| r.index);
    if let Some(path) = junit {
        write_junit(path, &rows)?;
    }
    Ok(print_table(&rows, &strategy, format))
}

/// A testcase per row: the scenario file, the variant, and why a row that
/// does not hold fails.
fn write_junit(path: &std::path::Path, rows: &[Row]) -> Result<()> {
    let cases: Vec<crate::junit::Case> = rows
        .iter()
        .map(|r| crate::junit::Case {
            class: r.file.clone(),
            name: r.variant.clone(),
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
fn print_table(rows: &[Row], strategy: &str, format: TableFormat) -> ExitCode {
    if format == TableFormat::Markdown {
        println!("| scenario | variant | expected | found | schedules | |\n|---|---|---|---|---|---|");
    }
    let mut last = None;
    for row in rows {
        match format {
            TableFormat::Text => {
                if last != Some(row.index) {
                    println!("{}  ({})", row.file, row.name);
                    last = Some(row.index);
                }
                print_row(row, strategy);
            }
            TableFormat::Markdown => println!(
                "| `{}` | {} | `{}` | `{}` | {} | {} |",
                row.file,
                row.variant,
                row.expected,
                row.found,
                row.schedules,
                if row.holds { "✅" } else { "❌ unexpected" }
            ),
        }
    }
    if format == TableFormat::Markdown {
        println!();
    }
    let failed = rows.iter().filter(|r| !r.holds).count();
    println!("{} passed, {failed} failed", rows.len() - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_row(row: &Row, strategy: &str) {
    let verdict = crate::style::verdict(if row.holds { "ok" } else { "UNEXPECTED" }, row.holds);
    println!(
        "  {:<16} expected {:<24} found {:<24} {:>4} schedules  {verdict}",
        row.variant, row.expected, row.found, row.schedules
    );
    if !row.holds {
        match &row.replay {
            Some(replay) => {
                for (invariant, why) in &row.violations {
                    println!("    {invariant}: {why}");
                }
                println!("    replay: {replay}");
            }
            None => println!(
                "    no schedule broke it; explore more with: otpsim check {} --strategy {strategy} --seed <another>",
                row.file
            ),
        }
    }
}
