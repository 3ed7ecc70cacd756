//! `otpsim check`: sweeps each variant a scenario names and compares what
//! it found with what the file expects.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use otpsim_sim::check::check;
use otpsim_sim::scenario::discover;
use otpsim_sim::Scenario;

use crate::cli::{CheckArgs, Shard, TableFormat};
use crate::table::{print_table, write_junit, Checked, Report, Row};
use crate::{report, InvalidInput};

pub fn run(args: &CheckArgs) -> Result<ExitCode> {
    let (paths, report, format, db_mode, shard, json) = (
        &args.paths,
        args.report.as_deref(),
        args.format,
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
    let Checked {
        report: table,
        report_rows,
    } = match &args.target {
        Some(target) => crate::live::check(target, args, &mine)?,
        None => simulate(args, &mine),
    };
    if let Some(dir) = report {
        let path = report::write(dir, "otpsim check", &report_rows)?;
        if !crate::style::quiet() {
            eprintln!("report: {}", path.display());
        }
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&table)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.junit {
        write_junit(path, &table.rows)?;
    }
    let code = print_table(&table, format);
    if bad > 0 {
        eprintln!("{bad} bad path(s) or file(s) above; the rest ran");
        return Ok(ExitCode::from(2));
    }
    Ok(code)
}

/// The simulator's rows: each scenario swept on its own, on every core;
/// the table comes out in file order.
fn simulate(args: &CheckArgs, mine: &[(usize, Arc<Scenario>)]) -> Checked {
    let (seed, strategy, shard) = (args.seed, args.strategy.unwrap_or_default(), args.shard);
    let checked = otpsim_sim::jobs::map(
        mine,
        args.jobs.unwrap_or_else(otpsim_sim::jobs::available),
        |(_, scenario)| check(scenario, strategy, seed),
    );
    let mut rows = Vec::new();
    let mut report_rows = Vec::new();
    for ((index, scenario), checked) in mine.iter().zip(checked) {
        for row in checked {
            if args.report.is_some() {
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
                not_judged: None,
                notes: Vec::new(),
                beside: None,
            });
        }
    }
    Checked {
        report: Report {
            shard,
            strategy: strategy.to_string(),
            target: None,
            rows,
        },
        report_rows,
    }
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
    let (strategy, target) = (reports[0].1.strategy.clone(), reports[0].1.target.clone());
    if let Some((file, _)) = reports.iter().find(|(_, r)| r.target != target) {
        return Err(InvalidInput(format!(
            "{} is a report of another target than {}: only shards of one check merge",
            file.display(),
            reports[0].0.display()
        ))
        .into());
    }
    let mut rows: Vec<Row> = reports.into_iter().flat_map(|(_, r)| r.rows).collect();
    // Stable: a scenario's rows keep their order.
    rows.sort_by_key(|r| r.index);
    if let Some(path) = junit {
        write_junit(path, &rows)?;
    }
    let merged = Report {
        shard: Shard::ALL,
        strategy,
        target,
        rows,
    };
    Ok(print_table(&merged, format))
}
