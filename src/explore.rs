//! `otpsim explore`: generated scenarios against each variant until the
//! budget, a matrix of what broke, and the minimal scenario of each break
//! saved as a file `otpsim check` replays.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use otpsim_core::Variant;
use otpsim_sim::explore::{search, Budget, SearchReport};
use otpsim_sim::sweep::replay;
use otpsim_sim::{Invariant, Scenario};
use serde::Serialize;

use crate::cli::{ExploreArgs, TableFormat};

#[derive(Serialize)]
struct JsonReport {
    variants: Vec<JsonVariant>,
}

#[derive(Serialize)]
struct JsonVariant {
    variant: String,
    schedules: u64,
    seconds: f64,
    violations: Vec<JsonViolation>,
}

#[derive(Serialize)]
struct JsonViolation {
    invariant: String,
    scenario: String,
    schedules_to_hit: u64,
    seconds_to_hit: f64,
    why: String,
}

/// Runs the search for each variant, one after the other.
pub fn run(args: &ExploreArgs) -> Result<ExitCode> {
    let variants = if args.variants.is_empty() {
        Variant::MAIN.to_vec()
    } else {
        args.variants.clone()
    };
    // Each variant is searched on its own thread; the reports come back
    // in the order asked. A progress bar only for one search at a time.
    let bar = args.jobs == 1 || variants.len() == 1;
    let reports = otpsim_sim::jobs::map(&variants, args.jobs, |variant| {
        search_with_progress(variant, args.budget, args.seed, bar)
    });
    let mut saved: Vec<Vec<PathBuf>> = Vec::new();
    for report in &reports {
        let mut paths = Vec::new();
        for finding in &report.findings {
            paths.push(save_new(
                &args.save,
                &format!("{}-{}", report.flow, finding.invariant),
                &finding.scenario.to_toml(),
            )?);
        }
        saved.push(paths);
    }
    if args.format == TableFormat::Markdown {
        print_markdown(&reports, &saved);
    } else {
        print_matrix(&reports, &saved);
    }
    if let Some(dir) = &args.report {
        let mut rows = Vec::new();
        for (report, paths) in reports.iter().zip(&saved) {
            for (f, path) in report.findings.iter().zip(paths) {
                let example = (&f.counterexample, format!("otpsim check {}", path.display()));
                let file = path.display().to_string();
                let found = format!("fail:{}", f.invariant);
                rows.push(crate::report::row(&file, &report.flow, "", &found, true, Some(example)));
            }
        }
        let path = crate::report::write(dir, "otpsim explore", &rows)?;
        eprintln!("report: {}", path.display());
    }
    if args.check_determinism {
        check_determinism(&reports, &saved)?;
    }
    if let Some(json) = &args.json {
        write_json(json, &reports, &saved)?;
    }
    let found = reports.iter().any(|r| !r.findings.is_empty());
    Ok(if found { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn search_with_progress(variant: &Variant, budget: Budget, seed: u64, bar: bool) -> SearchReport {
    let report = if bar && std::io::stderr().is_terminal() {
        let (length, unit) = match budget {
            Budget::Time(d) => (d.as_millis() as u64, "ms"),
            Budget::Schedules(n) => (n, "schedules"),
        };
        let bar = ProgressBar::new(length);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {elapsed:>4}/{msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(variant.to_string());
        let started = std::time::Instant::now();
        let report = search(variant, budget, seed, &|schedules, found| {
            bar.set_position(match budget {
                Budget::Time(_) => started.elapsed().as_millis() as u64,
                Budget::Schedules(_) => schedules,
            });
            bar.set_message(format!("{length} {unit}  {schedules} schedules, {found} broken"));
        });
        bar.finish_and_clear();
        report
    } else {
        search(variant, budget, seed, &|_, _| {})
    };
    eprintln!(
        "{variant}: {} schedules in {:.1} s, {} invariant(s) broken",
        report.schedules,
        report.seconds,
        report.findings.len()
    );
    report
}

/// Writes `text` to DIR/STEM.toml, or STEM-2.toml and so on: a file that
/// exists is never overwritten.
pub fn save_new(dir: &Path, stem: &str, text: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for n in 1.. {
        let name = if n == 1 {
            format!("{stem}.toml")
        } else {
            format!("{stem}-{n}.toml")
        };
        let path = dir.join(name);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                use std::io::Write;
                file.write_all(text.as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    unreachable!("some file name is free")
}

fn print_matrix(reports: &[SearchReport], saved: &[Vec<PathBuf>]) {
    let short = |i: Invariant| i.name().replace('_', " ");
    print!("{:<14}", "variant");
    for i in Invariant::ALL {
        print!(" {:>16}", short(i));
    }
    println!("  schedules  seconds");
    for report in reports {
        print!("{:<14}", report.flow);
        for i in Invariant::ALL {
            let cell = match report.findings.iter().find(|f| f.invariant == i) {
                Some(f) => format!("{} @{:.2}s", f.schedules_to_hit, f.seconds_to_hit),
                None => "-".to_string(),
            };
            print!(" {cell:>16}");
        }
        println!("  {:>9}  {:>7.1}", report.schedules, report.seconds);
    }
    println!("(each cell: schedules and seconds to the first hit, before shrinking)");
    for (report, paths) in reports.iter().zip(saved) {
        for (finding, path) in report.findings.iter().zip(paths) {
            let requests: u32 = finding.scenario.requests.iter().map(|r| r.repeat).sum();
            println!(
                "{} breaks {}: {} ({requests} requests, {} choices)",
                report.flow,
                finding.invariant,
                path.display(),
                finding.scenario.choices.as_ref().map_or(0, Vec::len)
            );
            println!("    {}", finding.violation().why);
        }
    }
}

fn print_markdown(reports: &[SearchReport], saved: &[Vec<PathBuf>]) {
    print!("| variant |");
    for i in Invariant::ALL {
        print!(" {} |", i.name());
    }
    println!(" schedules | seconds |");
    println!("|---{}|---|---|", "|---".repeat(Invariant::ALL.len()));
    for (report, paths) in reports.iter().zip(saved) {
        print!("| {} |", report.flow);
        for i in Invariant::ALL {
            match report.findings.iter().zip(paths).find(|(f, _)| f.invariant == i) {
                Some((f, p)) => print!(
                    " ❌ {} @{:.2}s `{}` |",
                    f.schedules_to_hit,
                    f.seconds_to_hit,
                    p.display()
                ),
                None => print!(" ✅ |"),
            }
        }
        println!(" {} | {:.1} |", report.schedules, report.seconds);
    }
}

fn check_determinism(reports: &[SearchReport], saved: &[Vec<PathBuf>]) -> Result<()> {
    let mut checked = 0;
    for (report, paths) in reports.iter().zip(saved) {
        for (finding, path) in report.findings.iter().zip(paths) {
            let scenario = Arc::new(Scenario::load(path)?);
            for _ in 0..2 {
                let variant: Variant = report.flow.parse().context("a variant's report")?;
                let choices = scenario.choices.clone().unwrap_or_default();
                let (outcome, _, _) = replay(&scenario, &variant, scenario.seed, &choices, 1);
                if outcome.trace != finding.counterexample.trace {
                    anyhow::bail!(
                        "NOT DETERMINISTIC: {} replays to a different trace than the one found",
                        path.display()
                    );
                }
            }
            checked += 1;
        }
    }
    println!("determinism: {checked} failure(s) rerun twice from their saved files, traces identical");
    Ok(())
}

fn write_json(path: &Path, reports: &[SearchReport], saved: &[Vec<PathBuf>]) -> Result<()> {
    let report = JsonReport {
        variants: reports
            .iter()
            .zip(saved)
            .map(|(r, paths)| JsonVariant {
                variant: r.flow.clone(),
                schedules: r.schedules,
                seconds: r.seconds,
                violations: r
                    .findings
                    .iter()
                    .zip(paths)
                    .map(|(f, p)| JsonViolation {
                        invariant: f.invariant.name().to_string(),
                        scenario: p.display().to_string(),
                        schedules_to_hit: f.schedules_to_hit,
                        seconds_to_hit: f.seconds_to_hit,
                        why: f.violation().why.clone(),
                    })
                    .collect(),
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&report)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}
