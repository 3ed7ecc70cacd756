//! `otpsim explore`: generated scenarios against each variant until the
//! budget, a matrix of what broke, and the minimal scenario of each break
//! saved as a file `otpsim check` replays.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use otpsim_core::Variant;
use otpsim_sim::explore::{search, Budget, Finding, Options, Round, SearchReport};
use otpsim_sim::sweep::replay;
use otpsim_sim::{Invariant, Scenario};
use serde::{Deserialize, Serialize};

use crate::cli::{ExploreArgs, Shard, TableFormat};
use crate::InvalidInput;

/// What `explore --json` writes, and what `otpsim merge` reads back: the
/// table's figures, and each round with its findings' files, so that the
/// shards of a search add up to the search.
#[derive(Serialize, Deserialize)]
pub struct JsonReport {
    /// Always "explore": how merge tells it from a check report.
    command: String,
    guide: String,
    seed: u64,
    budget: Budget,
    round: u64,
    shard: Shard,
    variants: Vec<JsonVariant>,
}

#[derive(Serialize, Deserialize)]
struct JsonVariant {
    variant: String,
    schedules: u64,
    /// Seconds of search summed over the rounds (over threads and shards).
    seconds: f64,
    /// Wall-clock seconds of this run (of a merge: its slowest shard's).
    #[serde(default)]
    wall_seconds: f64,
    violations: Vec<JsonViolation>,
    rounds: Vec<JsonRound>,
}

#[derive(Serialize, Deserialize)]
struct JsonViolation {
    invariant: String,
    scenario: String,
    schedules_to_hit: u64,
    seconds_to_hit: f64,
    why: String,
}

#[derive(Serialize, Deserialize)]
struct JsonRound {
    index: u64,
    schedules: u64,
    seconds: f64,
    findings: Vec<JsonFinding>,
}

#[derive(Serialize, Deserialize)]
struct JsonFinding {
    invariant: String,
    schedules_to_hit: u64,
    seconds_to_hit: f64,
    /// The minimal scenario file, as it would be saved.
    file: String,
}

/// Searches each variant in turn, each on every core.
pub fn run(args: &ExploreArgs) -> Result<ExitCode> {
    // "--budget 5" reads as seconds to many: say which reading holds.
    if let Budget::Schedules(n) = args.budget {
        if n < 1_000 {
            eprintln!(
                "warning: --budget {n} is {n} schedules per variant, not {n} seconds; for a time write --budget {n}s"
            );
        }
    }
    let variants = if args.variants.is_empty() {
        Variant::MAIN.to_vec()
    } else {
        args.variants.clone()
    };
    let options = Options {
        guide: args.guide,
        budget: args.budget,
        seed: args.seed,
        round: args.round,
        jobs: args.jobs,
        shard: args.shard,
    };
    crate::interrupt::catch_ctrl_c();
    let (reports, walls): (Vec<SearchReport>, Vec<f64>) = variants
        .iter()
        .map(|variant| search_with_progress(variant, &options))
        .unzip();
    let code = finish(&reports, &walls, &options, args)?;
    if crate::interrupt::caught() {
        eprintln!("interrupted: the table, the saved files and any --json or --report hold what was found until then");
        return Ok(ExitCode::from(130));
    }
    Ok(code)
}

/// Saves, prints and reports what the searches found: the same for one
/// run and for the merge of its shards. `walls`: each search's wall-clock
/// seconds.
fn finish(reports: &[SearchReport], walls: &[f64], options: &Options, args: &ExploreArgs) -> Result<ExitCode> {
    let mut saved: Vec<Vec<PathBuf>> = Vec::new();
    for report in reports {
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
        print_markdown(reports, walls, &saved);
    } else {
        print_matrix(reports, walls, &saved);
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
        if !crate::style::quiet() {
            eprintln!("report: {}", path.display());
        }
    }
    if args.check_determinism {
        check_determinism(reports, &saved)?;
    }
    if let Some(json) = &args.json {
        write_json(json, reports, walls, &saved, options)?;
    }
    if let Some(path) = &args.junit {
        // A testcase per variant and invariant: failed where the search
        // broke it, with the saved file that shows it.
        let mut cases = Vec::new();
        for (report, paths) in reports.iter().zip(&saved) {
            for i in Invariant::ALL {
                let found = report.findings.iter().zip(paths).find(|(f, _)| f.invariant == i);
                cases.push(crate::junit::Case {
                    class: report.flow.clone(),
                    name: i.name().to_string(),
                    skipped: None,
                    failure: found.map(|(f, p)| {
                        format!(
                            "{}\nsaved: {} (otpsim check {} replays it)",
                            f.violation().why,
                            p.display(),
                            p.display()
                        )
                    }),
                });
            }
        }
        crate::junit::write(path, "otpsim explore", &cases)?;
    }
    let found = reports.iter().any(|r| !r.findings.is_empty());
    Ok(if found { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// A search, with a progress bar on a terminal; and its wall-clock seconds.
fn search_with_progress(variant: &Variant, options: &Options) -> (SearchReport, f64) {
    let budget = options.budget;
    let began = std::time::Instant::now();
    let report = if std::io::stderr().is_terminal() && !crate::style::quiet() {
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
        // A round reports when it ends; with a budget in time the bar
        // moves with the clock in between, every quarter second.
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        let started = std::time::Instant::now();
        let done = std::sync::atomic::AtomicBool::new(false);
        let report = std::thread::scope(|scope| {
            if matches!(budget, Budget::Time(_)) {
                scope.spawn(|| {
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        bar.set_position(started.elapsed().as_millis() as u64);
                        std::thread::sleep(std::time::Duration::from_millis(250));
                    }
                });
            }
            let report = search(variant, options, &|schedules, found| {
                if matches!(budget, Budget::Schedules(_)) {
                    bar.set_position(schedules);
                }
                bar.set_message(format!("{length} {unit}  {schedules} schedules, {found} broken"));
            });
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            report
        });
        bar.finish_and_clear();
        report
    } else {
        search(variant, options, &|_, _| {})
    };
    let wall = began.elapsed().as_secs_f64();
    if crate::style::quiet() {
        return (report, wall);
    }
    // A round is one thread's: a budget of fewer rounds than --jobs leaves
    // threads idle, and the results must not depend on --jobs, so the
    // rounds are not cut to fit; the user is told how to.
    let rounds = report.rounds.len();
    let threads = match options.budget {
        Budget::Schedules(_) if rounds == 0 => "no thread: this shard has no round of the budget".to_string(),
        Budget::Schedules(budget) if rounds < options.jobs => {
            // Every shard's rounds on all its threads, down to a schedule a
            // round.
            let shards = options.shard.count as u64;
            let round = budget.div_ceil(options.jobs as u64 * shards).max(1);
            let spread = options.jobs.min(budget.div_ceil(round * shards) as usize);
            let idle = format!("{rounds} of {} threads; a round runs on one", options.jobs);
            if spread > rounds {
                format!("{idle}: --round {round} spreads the budget over {spread}, a different search")
            } else {
                idle
            }
        }
        _ => format!("{} thread(s)", options.jobs),
    };
    eprintln!(
        "{variant}: {} schedules in {rounds} round(s), {wall:.1} s wall clock ({:.1} s of search on {threads}), {} invariant(s) broken",
        report.schedules,
        report.seconds,
        report.findings.len()
    );
    (report, wall)
}

/// Writes `text` to DIR/STEM.toml, or STEM-2.toml and so on: a file that
/// exists is never overwritten, and one that already holds exactly `text`
/// is the answer (a rerun saves no duplicate).
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
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if std::fs::read(&path).is_ok_and(|held| held == text.as_bytes()) {
                    return Ok(path);
                }
            }
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    unreachable!("some file name is free")
}

fn print_matrix(reports: &[SearchReport], walls: &[f64], saved: &[Vec<PathBuf>]) {
    let short = |i: Invariant| i.name().replace('_', " ");
    print!("{:<14}", "variant");
    for i in Invariant::ALL {
        print!(" {:>16}", short(i));
    }
    println!("  schedules   wall s");
    for (report, wall) in reports.iter().zip(walls) {
        print!("{:<14}", report.flow);
        for i in Invariant::ALL {
            let cell = match report.findings.iter().find(|f| f.invariant == i) {
                Some(f) => format!("{} @{:.2}s", f.schedules_to_hit, f.seconds_to_hit),
                None => "-".to_string(),
            };
            print!(" {cell:>16}");
        }
        println!("  {:>9}  {:>7.1}", report.schedules, wall);
    }
    println!("(each cell: schedules to the first hit, before shrinking, and the search's seconds until then, rounds counted one after another; wall s: wall-clock seconds)");
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

fn print_markdown(reports: &[SearchReport], walls: &[f64], saved: &[Vec<PathBuf>]) {
    print!("| variant |");
    for i in Invariant::ALL {
        print!(" {} |", i.name());
    }
    println!(" schedules | wall s |");
    println!("|---{}|---|---|", "|---".repeat(Invariant::ALL.len()));
    for ((report, paths), wall) in reports.iter().zip(saved).zip(walls) {
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
        println!(" {} | {wall:.1} |", report.schedules);
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

fn write_json(
    path: &Path,
    reports: &[SearchReport],
    walls: &[f64],
    saved: &[Vec<PathBuf>],
    options: &Options,
) -> Result<()> {
    let report = JsonReport {
        command: "explore".to_string(),
        guide: options.guide.to_string(),
        seed: options.seed,
        budget: options.budget,
        round: options.round,
        shard: options.shard,
        variants: reports
            .iter()
            .zip(saved)
            .zip(walls)
            .map(|((r, paths), wall)| JsonVariant {
                variant: r.flow.clone(),
                schedules: r.schedules,
                seconds: r.seconds,
                wall_seconds: *wall,
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
                rounds: r
                    .rounds
                    .iter()
                    .map(|round| JsonRound {
                        index: round.index,
                        schedules: round.schedules,
                        seconds: round.seconds,
                        findings: round
                            .findings
                            .iter()
                            .map(|f| JsonFinding {
                                invariant: f.invariant.name().to_string(),
                                schedules_to_hit: f.schedules_to_hit,
                                seconds_to_hit: f.seconds_to_hit,
                                file: f.scenario.to_toml(),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&report)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// Whether `text` is a report of `explore --json` (and not of `check`).
pub fn is_report(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v["command"] == "explore")
}

/// `otpsim merge` of explore's shards: every shard's rounds, replayed from
/// the files they carry, add up to the search one unsharded run makes;
/// saved, printed and reported as that run does.
pub fn merge(
    files: &[(PathBuf, String)],
    format: TableFormat,
    save: &Path,
    json: Option<&Path>,
    junit: Option<&Path>,
) -> Result<ExitCode> {
    let mut reports: Vec<(PathBuf, JsonReport)> = Vec::new();
    for (file, text) in files {
        let report: JsonReport = serde_json::from_str(text).map_err(|e| {
            InvalidInput(format!(
                "{}:{}:{}: not a report of `otpsim explore --json`: {e}",
                file.display(),
                e.line(),
                e.column()
            ))
        })?;
        reports.push((file.clone(), report));
    }
    let shards: Vec<(PathBuf, Shard)> = reports.iter().map(|(f, r)| (f.clone(), r.shard)).collect();
    crate::cli::shards_complete(&shards)?;
    let (first_file, first) = &reports[0];
    let same = |r: &JsonReport| {
        let variants: Vec<String> = r.variants.iter().map(|v| v.variant.clone()).collect();
        (r.guide.clone(), r.seed, r.budget, r.round, variants)
    };
    for (file, r) in &reports {
        if same(r) != same(first) {
            bail!(InvalidInput(format!(
                "{} is not a shard of the same search as {}: guide, seed, budget, round and variants must agree",
                file.display(),
                first_file.display()
            )));
        }
    }
    let mut merged = Vec::new();
    let mut walls = Vec::new();
    for (v, variant) in first.variants.iter().enumerate() {
        walls.push(
            reports
                .iter()
                .map(|(_, r)| r.variants[v].wall_seconds)
                .fold(0.0, f64::max),
        );
        let flow: Variant = variant
            .variant
            .parse()
            .map_err(|e| InvalidInput(format!("{}: {e}", first_file.display())))?;
        let mut rounds = Vec::new();
        for (file, r) in &reports {
            for round in &r.variants[v].rounds {
                let mut findings = Vec::new();
                for f in &round.findings {
                    findings.push(replayed(&flow, f, file)?);
                }
                rounds.push(Round {
                    index: round.index,
                    schedules: round.schedules,
                    seconds: round.seconds,
                    findings,
                });
            }
        }
        merged.push(SearchReport::from_rounds(flow.to_string(), rounds));
    }
    let options = Options {
        guide: first.guide.parse().map_err(InvalidInput)?,
        budget: first.budget,
        seed: first.seed,
        round: first.round,
        jobs: 1,
        shard: Shard::ALL,
    };
    let args = ExploreArgs {
        variants: Vec::new(),
        budget: options.budget,
        jobs: 1,
        seed: options.seed,
        round: options.round,
        shard: Shard::ALL,
        guide: options.guide,
        save: save.to_path_buf(),
        json: json.map(Path::to_path_buf),
        check_determinism: false,
        report: None,
        format,
        junit: junit.map(Path::to_path_buf),
        target: None,
        longest: 5_000,
        reruns: 3,
        schedules: 8,
        speed: None,
        tz: None,
        no_sync: false,
        pause: None,
    };
    finish(&merged, &walls, &options, &args)
}

/// A shard's finding, replayed from the file it carries.
fn replayed(flow: &Variant, f: &JsonFinding, file: &Path) -> Result<Finding> {
    let bad = |what: String| InvalidInput(format!("{}: a finding of {flow}: {what}", file.display()));
    let invariant: Invariant = f.invariant.parse().map_err(|e: String| bad(e))?;
    let scenario = Scenario::parse(Path::new("generated.toml"), &f.file).map_err(|e| bad(e.to_string()))?;
    Finding::replayed(flow, invariant, scenario, f.schedules_to_hit, f.seconds_to_hit)
        .ok_or_else(|| bad(format!("its file does not break {invariant} when replayed")).into())
}
