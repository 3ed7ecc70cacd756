//! The otpsim command line: a thin layer over `otpsim-sim`.
//!
//! Exit codes: 0 when every expectation holds, 1 when one does not, 2 on
//! invalid input (a scenario file, a flag).

mod ablate;
mod explore;
mod report;
mod stress;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use otpsim_core::Variant;
use otpsim_sim::check::{check, CheckRow};
use otpsim_sim::schedule::Strategy;
use otpsim_sim::sweep::{replay, sweep};
use otpsim_sim::{Counterexample, Scenario, ScenarioError};

#[derive(Parser)]
#[command(
    name = "otpsim",
    version,
    about = "Deterministic concurrency tests for signup and email-OTP flows"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Explores every scenario and compares what each variant does with
    /// what the file expects.
    Check {
        /// Scenario files, or folders of them (*.toml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Overrides each file's [explore] seed.
        #[arg(long)]
        seed: Option<u64>,
        /// The scheduler: pct1..pct10, random or dfs.
        #[arg(long, default_value = "pct3", value_parser = parse_strategy)]
        strategy: Strategy,
        /// Also write an HTML report, with each counterexample's diagram, to
        /// DIR/index.html.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
        /// text, or markdown for a CI job summary.
        #[arg(long, value_enum, default_value_t = TableFormat::Text)]
        format: TableFormat,
    },
    /// Prints the trace of one schedule: the one `--choices` pins (what
    /// `check` prints for every counterexample), else the first that the
    /// scheduler finds breaking an invariant.
    Replay {
        /// The scenario file.
        file: PathBuf,
        /// The variant, e.g. naive, seed_fix-dedup, idempotent.
        #[arg(long, value_parser = parse_variant)]
        variant: Variant,
        /// The seed of the run's randomness and of the scheduler (default:
        /// the file's seed).
        #[arg(long)]
        seed: Option<u64>,
        /// The schedule to run, as the choices it takes where more than one
        /// task can run (e.g. 0,1,1); runs exactly that one schedule.
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        choices: Option<Vec<u8>>,
        /// Without --choices, the scheduler that looks for a failing
        /// schedule: pct1..pct10, random or dfs.
        #[arg(long, default_value = "pct3", value_parser = parse_strategy)]
        strategy: Strategy,
        /// For a fault at statement = "every": the position to replay.
        #[arg(long, default_value_t = 1)]
        position: u32,
        /// text, json, mermaid (a sequenceDiagram), svg or html (one
        /// self-contained page).
        #[arg(long, value_enum, default_value_t = RunFormat::Text)]
        format: RunFormat,
        /// Explain the violation in a few sentences (always in json and html).
        #[arg(long)]
        explain: bool,
    },
    /// Generates scenarios and schedules against each variant until the
    /// budget, shrinks every break to a minimal scenario file, and prints a
    /// matrix variant x invariant. Exits 1 when something broke.
    Explore(explore::ExploreArgs),
    /// Measures schedules to the first violation over many seeds for each
    /// scheduler, on each failing variant of the given scenarios.
    Bugfind {
        /// Scenario files (default: the seed incident, the one-worker and
        /// the two-worker double-click).
        paths: Vec<PathBuf>,
        /// Seeds per scheduler.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// Give up on a seed after this many schedules.
        #[arg(long, default_value_t = 1000)]
        max: u32,
    },
    /// Real concurrency: browsers on threads or tokio double-click signup,
    /// verify and guess against a SQLite file in WAL mode; the same
    /// invariant checker judges every run. Exits 1 when something broke.
    Stress(StressFlags),
    /// Explores all 16 on/off combinations of seed_fix's switches on the
    /// scenario corpus and generated scenarios, and says which switch is
    /// load-bearing for which invariant.
    Ablate {
        /// Scenario files or folders (default: scenarios/).
        paths: Vec<PathBuf>,
        /// Time for the generated search, shared by the 16 combinations
        /// (0s: the corpus only).
        #[arg(long, default_value = "16s", value_parser = parse_budget)]
        budget: std::time::Duration,
        /// The search's seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// `otpsim stress`'s flags.
#[derive(clap::Args)]
struct StressFlags {
    /// The variant, e.g. naive, seed_fix-dedup, idempotent.
    #[arg(long, value_parser = parse_variant)]
    variant: Variant,
    /// Browsers, each on its own OS thread (or tokio task with --tokio).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Run the browsers as tokio tasks; handlers go to spawn_blocking.
    #[arg(long)]
    tokio: bool,
    /// Server workers, each with its own connection and memory.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// How long to run, e.g. 10s, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_budget)]
    duration: std::time::Duration,
    /// A new SQLite file to use (default: a scratch file, removed after).
    #[arg(long)]
    db: Option<PathBuf>,
}

fn parse_budget(s: &str) -> Result<std::time::Duration, String> {
    otpsim_sim::scenario::parse_duration(s)
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is not a duration; expected e.g. 30s, 1500ms, 2m"))
}

/// How `replay` shows a run.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RunFormat {
    Text,
    Json,
    Mermaid,
    Svg,
    Html,
}

/// How `check` and `explore` print their table.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TableFormat {
    Text,
    /// A Markdown table, fit for a CI job summary.
    Markdown,
}

fn parse_strategy(s: &str) -> Result<Strategy, String> {
    s.parse()
}

fn parse_variant(s: &str) -> Result<Variant, String> {
    s.parse().map_err(|e: otpsim_core::flows::VariantError| e.to_string())
}

/// Bad input: reported, exit code 2.
#[derive(Debug)]
struct InvalidInput(String);

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

fn main() -> ExitCode {
    // clap exits with 2 on a bad flag, as the project's convention asks.
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Check {
            paths,
            seed,
            strategy,
            report,
            format,
        } => run_check(&paths, seed, strategy, report.as_deref(), format),
        Command::Replay {
            file,
            variant,
            seed,
            choices,
            strategy,
            position,
            format,
            explain,
        } => run_replay(&file, variant, seed, choices, strategy, position, format, explain),
        Command::Explore(args) => explore::run(&args),
        Command::Bugfind { paths, seeds, max } => {
            let paths = if paths.is_empty() {
                ["seed_incident", "double_click_signup", "double_click_two_workers"]
                    .iter()
                    .map(|n| PathBuf::from(format!("scenarios/{n}.toml")))
                    .collect()
            } else {
                paths
            };
            scenario_files(&paths)
                .and_then(|files| files.iter().map(|f| load(f)).collect::<Result<Vec<_>>>())
                .map(|scenarios| bugfind(&scenarios, seeds, max))
        }
        Command::Stress(f) => stress::run(&stress::StressArgs {
            variant: f.variant,
            runtime: if f.tokio {
                otpsim_sim::stress::Runtime::Tokio
            } else {
                otpsim_sim::stress::Runtime::Threads
            },
            browsers: usize::from(f.threads),
            workers: usize::from(f.workers),
            duration: f.duration,
            db: f.db,
        }),
        Command::Ablate { paths, budget, seed } => {
            let paths = if paths.is_empty() {
                vec![PathBuf::from("scenarios")]
            } else {
                paths
            };
            scenario_files(&paths)
                .and_then(|files| files.iter().map(|f| load(f)).collect::<Result<Vec<_>>>())
                .map(|scenarios| {
                    ablate::run(&scenarios, budget, seed);
                    ExitCode::SUCCESS
                })
        }
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<InvalidInput>().is_some() || e.downcast_ref::<ScenarioError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// The scenario files under `paths`, sorted, folders searched one level
/// deep and recursively.
fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            collect_toml(path, &mut found)?;
            if found.is_empty() {
                bail!(InvalidInput(format!(
                    "{}: no *.toml scenario files in this folder",
                    path.display()
                )));
            }
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            bail!(InvalidInput(format!("{}: no such file or folder", path.display())));
        }
    }
    Ok(files)
}

fn collect_toml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_toml(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    Ok(())
}

fn load(path: &Path) -> Result<Arc<Scenario>> {
    Ok(Arc::new(Scenario::load(path)?))
}

fn run_check(
    paths: &[PathBuf],
    seed: Option<u64>,
    strategy: Strategy,
    report: Option<&Path>,
    format: TableFormat,
) -> Result<ExitCode> {
    let files = scenario_files(paths)?;
    // Load everything first: one bad file stops the run before any work.
    let scenarios = files.iter().map(|f| load(f)).collect::<Result<Vec<_>>>()?;
    let (mut passed, mut failed) = (0, 0);
    let mut report_rows = Vec::new();
    if format == TableFormat::Markdown {
        println!("| scenario | variant | expected | found | schedules | |\n|---|---|---|---|---|---|");
    }
    for scenario in &scenarios {
        if format == TableFormat::Text {
            println!("{}  ({})", scenario.path.display(), scenario.name);
        }
        for row in check(scenario, strategy, seed) {
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
fn replay_command(scenario: &Scenario, c: &Counterexample) -> String {
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

fn bugfind(scenarios: &[Arc<Scenario>], seeds: u64, max: u32) -> ExitCode {
    use otpsim_sim::bugfind::{schedules_to_first, summary, FINDERS};
    println!("schedules to the first violation, over {seeds} seeds (DFS: one run; >{max}: not found)");
    println!(
        "{:<34} {:<10} {:<8} {:>7} {:>7} {:>7}",
        "scenario", "variant", "finder", "median", "p90", "max"
    );
    for scenario in scenarios {
        let failing = scenario
            .expect
            .iter()
            .filter(|(_, e)| *e != otpsim_sim::Expectation::Pass);
        for (variant, _) in failing {
            for finder in FINDERS {
                let found = schedules_to_first(scenario, *variant, finder, seeds, max);
                let (median, p90, worst) = summary(&found, max);
                let file = scenario
                    .path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                println!(
                    "{file:<34} {:<10} {:<8} {median:>7} {p90:>7} {worst:>7}",
                    variant.to_string(),
                    finder.to_string()
                );
            }
        }
    }
    ExitCode::SUCCESS
}

#[allow(clippy::too_many_arguments)]
fn run_replay(
    file: &Path,
    variant: Variant,
    seed: Option<u64>,
    choices: Option<Vec<u8>>,
    strategy: Strategy,
    position: u32,
    format: RunFormat,
    explain: bool,
) -> Result<ExitCode> {
    use otpsim_sim::render::{self, Diagram};
    let scenario = load(file)?;
    if position == 0 {
        bail!(InvalidInput("--position counts from 1".to_string()));
    }
    let seed = seed.unwrap_or(scenario.seed);
    let pinned = choices.or_else(|| scenario.choices.clone());
    // One schedule runs: the pinned one, or the first counterexample the
    // sweep finds, shown as it was recorded (not run again).
    let (trace, violations, choices) = match pinned {
        Some(choices) => {
            let (outcome, violations, taken) = replay(&scenario, &variant, seed, &choices, position);
            (outcome.trace, violations, taken)
        }
        None => {
            let found = sweep(&scenario, &variant, strategy, scenario.schedules, seed, |found| {
                !found.is_empty()
            });
            match found.counterexamples.into_iter().next() {
                Some(c) => (c.trace, c.violations, c.choices),
                None => {
                    let note = format!(
                        "no schedule of {} ({strategy}, seed {seed}) broke a checked invariant; here is the one with no preemption",
                        found.schedules
                    );
                    if format == RunFormat::Text {
                        println!("{note}");
                    } else {
                        eprintln!("{note}");
                    }
                    let (outcome, violations, taken) = replay(&scenario, &variant, seed, &[], position);
                    (outcome.trace, violations, taken)
                }
            }
        }
    };
    let choices: Vec<String> = choices.iter().map(u8::to_string).collect();
    let schedule = format!("seed {seed} choices [{}]", choices.join(","));
    let title = format!("{} | variant {variant} | {schedule}", scenario.name);
    let explanation = render::explain(&trace, &violations);
    let diagram = || Diagram::of(&trace, &violations);
    match format {
        RunFormat::Text => {
            println!("# {title}");
            print!("{trace}");
            if violations.is_empty() {
                println!("no invariant broken");
            }
            for v in &violations {
                println!("VIOLATED {}: {}", v.invariant, v.why);
            }
            if explain && !explanation.is_empty() {
                println!("EXPLANATION: {explanation}");
            }
        }
        RunFormat::Json => print!("{}", render::json(&title, &trace, &violations, &explanation)),
        RunFormat::Mermaid => print!("{}", render::mermaid(&diagram())),
        RunFormat::Svg => print!("{}", render::svg(&diagram())),
        RunFormat::Html => {
            print!(
                "{}",
                render::html_page(&title, &render::svg(&diagram()), &explanation, &trace.to_string())
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}
