//! `otpsim check --target` and `otpsim replay --target`: scenario files
//! against a real server (otpsim-live).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use otpsim_core::Variant;
use otpsim_live::check::{sweep, Order, Verdict};
use otpsim_live::clock::{FakeClock, DEFAULT_START_UNIX_MS};
use otpsim_live::pause;
use otpsim_live::run::{self, violations, LiveError, Options};
use otpsim_live::target::Target;
use otpsim_sim::render::{self, Diagram};
use otpsim_sim::schedule::Strategy;
use otpsim_sim::Scenario;

use crate::cli::{CheckArgs, ExploreArgs, ReplayArgs, RunFormat, StressFlags};
use crate::table::{Beside, Checked, Report, Row};
use crate::{report, InvalidInput};

/// Ctrl-C or SIGTERM during a live run: the command stops, and the app
/// instances its runs started go with it (exit 130).
#[derive(Debug)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped by a signal; the app instances of the run were stopped too")
    }
}

impl std::error::Error for Stopped {}

/// The runtime live runs go on, and whether Ctrl-C or SIGTERM came: one
/// listener for the whole command, so that a signal between two waits
/// (while the simulator compares, say) is not missed by the next.
struct Live {
    runtime: tokio::runtime::Runtime,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Live {
    fn new() -> Result<Live> {
        let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
        let (tx, stop) = tokio::sync::watch::channel(false);
        let mut term = runtime
            .block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) })
            .context("listening for SIGTERM")?;
        runtime.spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            let _ = tx.send(true);
        });
        Ok(Live { runtime, stop })
    }

    /// Runs `work` until it ends, or until a signal: then [`Stopped`], and
    /// the runtime, dropped on the caller's way out, drops every run's
    /// tasks and so kills their app instances (started to be killed on
    /// drop). Without this a signal ended otpsim and left the instances
    /// running in their own process group.
    fn until_stopped<T>(&self, work: impl std::future::Future<Output = T>) -> Result<T> {
        let mut stop = self.stop.clone();
        self.runtime.block_on(async {
            tokio::select! {
                done = work => Ok(done),
                _ = stop.wait_for(|stopped| *stopped) => Err(Stopped.into()),
            }
        })
    }
}

/// A scratch folder for the runs, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn setup(tz: Option<String>, last_byte_sync: bool) -> Result<(Options, Scratch, Live)> {
    let scratch = std::env::temp_dir().join(format!("otpsim-live-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let options = Options {
        otpsim: std::env::current_exe().context("finding the otpsim program")?,
        scratch: scratch.clone(),
        tz,
        last_byte_sync,
    };
    Ok((options, Scratch(scratch), Live::new()?))
}

/// What `scenario` expects of the target: its `[expect]` entry for the
/// target's key; with no key (an app of one's own), that nothing breaks.
fn expectation(target: &Target, scenario: &Scenario) -> Option<otpsim_sim::Expectation> {
    match target.expect {
        None => Some(otpsim_sim::Expectation::Pass),
        Some(key) => scenario
            .expect
            .iter()
            .find(|(variant, _)| *variant == key)
            .map(|(_, e)| *e),
    }
}

/// `target` on a controlled clock `speed` times as fast (`--speed`), from
/// its own `[time] start` or the default one, and its app waiting `pause`
/// before each step (`--pause`), which the target must take.
fn tuned(mut target: Target, speed: Option<u32>, pause: Option<Duration>) -> Result<Target> {
    if let Some(speed) = speed {
        target.clock = Some(FakeClock {
            start_unix_ms: target.clock.map_or(DEFAULT_START_UNIX_MS, |c| c.start_unix_ms),
            speed,
        });
    }
    match pause {
        Some(pause) => Ok(target.with_pause(pause).map_err(InvalidInput)?),
        None => Ok(target),
    }
}

/// The flags a saved file's command repeats: what the run was under.
fn run_flags(tz: Option<&str>, speed: Option<u32>, pause: Option<Duration>, no_sync: bool) -> String {
    tz.map_or(String::new(), |z| format!(" --tz {z}"))
        + &speed.map_or(String::new(), |s| format!(" --speed {s}"))
        + &pause.map_or(String::new(), |p| format!(" --pause {}", pause::as_flag(Some(p))))
        + if no_sync { " --no-sync" } else { "" }
}

/// How a target's rows and header name what it is judged as.
fn judged_as(target: &Target) -> String {
    target
        .expect
        .map_or("nothing broken (no expect key)".to_string(), |v| v.to_string())
}

/// `check --target`: each scenario swept live, as rows of `check`'s own
/// table (see `crate::check`).
pub fn check(target: &Path, args: &CheckArgs, scenarios: &[(usize, Arc<Scenario>)]) -> Result<Checked> {
    let (max, strategy, seed) = (args.schedules, args.strategy, args.seed);
    let order = match strategy {
        None | Some(Strategy::Dfs) => Order::DepthFirst,
        Some(Strategy::Random) => Order::Random(seed.unwrap_or(1)),
        Some(other) => bail!(InvalidInput(format!(
            "--strategy {other} with --target: a live run orders deliveries, not threads; use dfs or random"
        ))),
    };
    if seed.is_some() && order == Order::DepthFirst {
        bail!(InvalidInput(
            "--seed with --target is the seed of --strategy random".to_string()
        ));
    }
    let target = tuned(Target::load(target)?, args.speed, args.pause)?;
    // The simulator runs the variant the target is judged as.
    let compared: Option<Variant> = match args.compare {
        false => None,
        true => Some(target.expect.ok_or_else(|| {
            InvalidInput(format!(
                "--compare runs the simulator on the variant the target is judged as, and {} has no expect key",
                target.path.display()
            ))
        })?),
    };
    let (options, _scratch, live) = setup(None, !args.no_sync)?;
    let runtime = &live.runtime;
    let mut rows = Vec::new();
    let mut report_rows = Vec::new();
    // Sweeps run `--jobs` at a time (default one), each with its own
    // folder and ports: a live run mostly waits. Rows keep file order.
    let permits = Arc::new(tokio::sync::Semaphore::new(args.jobs.unwrap_or(1)));
    let mut started = Vec::new();
    let zones: Vec<Option<&String>> = match args.tz.is_empty() {
        true => vec![None],
        false => args.tz.iter().map(Some).collect(),
    };
    for ((index, scenario), zone) in scenarios.iter().flat_map(|s| zones.iter().map(move |z| (s, *z))) {
        let in_zone = run_flags(zone.map(String::as_str), args.speed, args.pause, args.no_sync);
        let expected = expectation(&target, scenario);
        let file = scenario.path.display().to_string();
        let mut row = Row {
            index: *index,
            file: file.clone(),
            name: scenario.name.clone(),
            variant: target.expect.map_or(target.name.clone(), |v| v.to_string())
                + &zone.map_or(String::new(), |z| format!(" TZ={z}")),
            expected: expected.map_or("-".to_string(), |e| e.to_string()),
            found: String::new(),
            schedules: 0,
            holds: true,
            violations: Vec::new(),
            replay: None,
            not_judged: None,
            notes: Vec::new(),
            beside: None,
        };
        // A live run lasts as long as its scenario, in real time (over the
        // speed of a controlled clock), stretched to the app's lifetime.
        if let Some((app, file)) = run::scale(&target, scenario) {
            row.notes.push(format!(
                "times stretched by {app}/{file} to the app's {} lifetime",
                otpsim_sim::scenario::format_duration(app)
            ));
        }
        let lasts = run::lasts_ms(&target, scenario);
        if let Some(longest) = args.longest.filter(|l| lasts > *l) {
            row.found = "-".to_string();
            row.not_judged = Some(format!(
                "lasts {} live, longer than --longest {}",
                otpsim_sim::scenario::format_duration(lasts),
                otpsim_sim::scenario::format_duration(longest)
            ));
            started.push((row, None));
            continue;
        }
        if let Some(why) = run::vacuous(&target, scenario) {
            row.found = "-".to_string();
            row.not_judged = Some(why);
            started.push((row, None));
            continue;
        }
        let mut options = options.clone();
        options.scratch = options.scratch.join(format!("{}-{}", index, started.len()));
        options.tz = zone.cloned();
        let (target, shared, permits) = (target.clone(), Arc::clone(scenario), Arc::clone(&permits));
        let task = runtime.spawn(async move {
            let _permit = permits.acquire_owned().await;
            sweep(&target, &shared, &options, max as usize, order).await
        });
        started.push((row, Some((Arc::clone(scenario), expected, in_zone, file, task))));
    }
    for (mut row, sweep) in started {
        let Some((scenario, expected, in_zone, file, task)) = sweep else {
            rows.push(row);
            continue;
        };
        let scenario = &scenario;
        let swept = match live.until_stopped(task)?.context("a live sweep's task")? {
            Ok(s) => s,
            Err(LiveError::NotRunnable(why)) => {
                row.found = "-".to_string();
                row.not_judged = Some(format!("not runnable live: {why}"));
                rows.push(row);
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("running {file} live")),
        };
        let verdict = expected.map(|e| swept.verdict(e));
        row.found = swept.found();
        row.schedules = swept.schedules as u64;
        row.holds = verdict != Some(Verdict::Unexpected);
        row.not_judged = match verdict {
            Some(Verdict::NotObservable) => Some("the target cannot observe it".to_string()),
            None => Some(format!("the file expects nothing of {}", judged_as(&target))),
            _ => None,
        };
        let all = if swept.exhausted { ", every order" } else { "" };
        row.notes.push(format!("{:.1} s live{all}", swept.seconds));
        if !swept.not_observable.is_empty() {
            let names: Vec<&str> = swept.not_observable.iter().map(|i| i.name()).collect();
            row.notes
                .push(format!("not observable by this target: {}", names.join(", ")));
        }
        let shown = expected.map_or(swept.counterexamples.first(), |e| swept.counterexample_for(e));
        if let Some(c) = shown {
            row.violations = c
                .violations
                .iter()
                .map(|v| (v.invariant.to_string(), v.why.clone()))
                .collect();
            row.replay = Some(c.command(scenario) + &in_zone);
        }
        // Every other order that first broke an invariant, with its own
        // replay.
        for c in swept
            .counterexamples
            .iter()
            .filter(|c| !shown.is_some_and(|s| std::ptr::eq(*c, s)))
        {
            let names: Vec<String> = c.violations.iter().map(|v| v.invariant.to_string()).collect();
            row.notes.push(format!(
                "also broke {} in another order: {}{in_zone}",
                names.join(", "),
                c.command(scenario)
            ));
        }
        row.beside = compared.map(|variant| {
            let a = otpsim_sim::check::beside_live(scenario, variant, &swept.orders, &swept.not_observable);
            if let Some(order) = &a.unseen {
                row.notes
                    .push(format!("a live order the simulator never made: {}", order.join(", ")));
            }
            Beside {
                simulator: otpsim_sim::Expectation::found(&a.simulated),
                seen: a.seen,
                runs: a.runs,
                agrees: a.agrees(),
            }
        });
        if args.report.is_some() {
            let example = shown.map(|c| (c, c.command(scenario) + &in_zone));
            report_rows.push(report::row(
                &file,
                &row.variant,
                &row.expected,
                &row.found,
                row.holds,
                example,
            ));
        }
        rows.push(row);
    }
    let strategy = match order {
        Order::DepthFirst => "dfs".to_string(),
        Order::Random(_) => "random".to_string(),
    };
    Ok(Checked {
        report: Report {
            shard: args.shard,
            strategy,
            target: Some(format!(
                "target {} ({}), judged as {}",
                target.path.display(),
                target.name,
                judged_as(&target)
            )),
            rows,
        },
        report_rows,
    })
}

pub fn replay(target: &Path, args: &ReplayArgs) -> Result<ExitCode> {
    let (file, choices, repeat, format) = (
        args.file.as_path(),
        args.deliveries.clone().unwrap_or_default(),
        args.repeat,
        args.format,
    );
    let target = tuned(Target::load(target)?, args.speed, args.pause)?;
    let scenario = crate::load(file)?;
    let (options, _scratch, live) = setup(args.tz.clone(), !args.no_sync)?;
    let mut runs = Vec::new();
    for n in 0..repeat {
        let run = live
            .until_stopped(run::run(&target, &scenario, &choices, &options, n as usize))?
            .with_context(|| format!("running {} live", file.display()))?;
        runs.push(run);
    }
    let first = &runs[0];
    // A choice the run had no use for means a different schedule than the
    // one asked for: say so rather than replay something else.
    if choices.len() > first.arities.len() {
        bail!(InvalidInput(format!(
            "--deliveries gives {} choices, but this schedule has only {} instants with more than one delivery",
            choices.len(),
            first.arities.len()
        )));
    }
    if let Some((i, (c, a))) = choices
        .iter()
        .zip(&first.arities)
        .enumerate()
        .find(|(_, (c, a))| c >= a)
    {
        bail!(InvalidInput(format!(
            "--deliveries: choice {} is {c}, but only {a} deliveries were due at that instant (0 to {})",
            i + 1,
            a - 1
        )));
    }
    let broken = violations(&target, &scenario, first);
    let same_invariants = |r: &run::LiveRun| {
        let a: Vec<_> = violations(&target, &scenario, r).iter().map(|v| v.invariant).collect();
        let b: Vec<_> = broken.iter().map(|v| v.invariant).collect();
        a == b
    };
    let reproduced = runs.iter().filter(|r| same_invariants(r)).count();
    let same_network = runs
        .iter()
        .filter(|r| r.trace.network_order() == first.trace.network_order())
        .count();
    let taken: Vec<String> = first.choices.iter().map(u8::to_string).collect();
    let title = format!(
        "{} | target {} | choices [{}]",
        scenario.name,
        target.name,
        taken.join(",")
    );
    // How close together requests of one instant reached the server.
    let spreads: Vec<std::time::Duration> = runs.iter().flat_map(|r| r.spreads.iter().copied()).collect();
    let together = match (spreads.iter().min(), spreads.iter().max()) {
        (Some(least), Some(most)) => format!(
            "; requests of one instant reached the server {:?} to {:?} apart (last-byte sync)",
            least, most
        ),
        _ => String::new(),
    };
    let summary = format!(
        "{reproduced} of {repeat} runs {}; {same_network} of {repeat} had the same network order; a run took {:.1} s{together}",
        if broken.is_empty() {
            "broke nothing, as the first did"
        } else {
            "broke the same invariants as the first"
        },
        runs.iter().map(|r| r.seconds).sum::<f64>() / runs.len() as f64
    );
    let diagram = || Diagram::of(&first.trace, &broken);
    match format {
        RunFormat::Text => {
            println!("# {title}");
            print!("{}", first.trace);
            if broken.is_empty() {
                println!("no invariant broken");
            }
            for v in &broken {
                println!("VIOLATED {}: {}", v.invariant, v.why);
            }
            let explanation = render::explain(&first.trace, &broken);
            if args.explain && !explanation.is_empty() {
                println!("EXPLANATION: {explanation}");
            }
            println!("{summary}");
        }
        RunFormat::Json => print!("{}", render::json(&title, &first.trace, &broken, &summary)),
        RunFormat::Mermaid => print!("{}", render::mermaid(&diagram())),
        RunFormat::Svg => print!("{}", render::svg(&diagram())),
        RunFormat::Html => print!(
            "{}",
            render::html_page(&title, &render::svg(&diagram()), &summary, &first.trace.to_string())
        ),
    }
    if format != RunFormat::Text {
        eprintln!("{summary}");
    }
    // The first run is the one shown: it decides, as in `replay`.
    Ok(if broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `explore --target`: generated cases run live, the breaks reduced by
/// live reruns and saved as files `check --target` runs (see
/// `otpsim_live::explore`).
pub fn explore(target_file: &Path, args: &ExploreArgs) -> Result<ExitCode> {
    let target = tuned(Target::load(target_file)?, args.speed, args.pause)?;
    let (options, _scratch, live) = setup(args.tz.clone(), !args.no_sync)?;
    let search = otpsim_live::explore::Options {
        budget: args.budget,
        seed: args.seed,
        jobs: args.jobs,
        longest_ms: args.longest,
        reruns: args.reruns,
        schedules: args.schedules,
    };
    let quiet = crate::style::quiet();
    let progress = |runs: u64, broken: usize| {
        if !quiet && runs % 10 == 0 {
            eprintln!("  {runs} live runs, {broken} invariant(s) broken");
        }
    };
    let report = live
        .until_stopped(otpsim_live::explore::search(&target, &search, &options, &progress))?
        .with_context(|| format!("exploring {} live", target_file.display()))?;
    let also = run_flags(args.tz.as_deref(), args.speed, args.pause, args.no_sync);
    println!(
        "explore --target {} ({}), judged as {}, seed {}: {} live runs in {:.1} s ({:.2} runs/s, {} at once; a run took {:.2} s on average), {} drawn cases skipped (too long, vacuous or not runnable here), {} behaviours seen, {} cases kept",
        target_file.display(),
        target.name,
        judged_as(&target),
        args.seed,
        report.runs,
        report.seconds,
        report.runs as f64 / report.seconds.max(1e-9),
        args.jobs,
        report.run_seconds / (report.runs.max(1) as f64),
        report.skipped,
        report.behaviours,
        report.kept
    );
    if report.failed > 0 {
        println!(
            "{} runs failed to run; the first: {}",
            report.failed,
            report.first_failure.as_deref().unwrap_or("")
        );
    }
    if report.findings.is_empty() {
        println!("no invariant broken");
        return Ok(ExitCode::SUCCESS);
    }
    let stems = otpsim_live::explore::file_stems(&target, report.findings.iter().map(|f| f.symptom));
    for (f, stem) in report.findings.iter().zip(stems) {
        let path = crate::explore::save_new(&args.save, &stem, &f.scenario.to_toml())?;
        let requests: u32 = f.scenario.requests.iter().map(|r| r.repeat).sum();
        println!(
            "BROKE {}: after {} runs ({:.1} s); reduced in {} live runs to a file of {requests} requests; reproduced by {} of {} checks{}",
            f.symptom,
            f.runs_to_hit,
            f.seconds_to_hit,
            f.reduction_runs,
            f.reproduced,
            f.reruns,
            if f.copies > 1 {
                format!(" with its same-instant requests sent {} times over", f.copies)
            } else {
                String::new()
            }
        );
        println!("  {}", f.violation.why);
        println!(
            "  saved: {}  (otpsim check --target {}{also} {})",
            path.display(),
            target_file.display(),
            path.display()
        );
    }
    Ok(ExitCode::from(1))
}

/// `stress --target`: people at once against a real server, over HTTP
/// (see `otpsim_live::load`).
pub fn stress(flags: &StressFlags) -> Result<ExitCode> {
    let file = flags.target.as_deref().expect("called with --target");
    let target = tuned(Target::load(file)?, flags.speed, None)?;
    let (options, _scratch, live) = setup(None, false)?;
    let load = otpsim_live::load::Load {
        people: flags.people as usize,
        ramp_ms: flags.ramp,
        workers: usize::from(flags.workers),
    };
    let report = match live.until_stopped(otpsim_live::load::stress(&target, &load, &options))? {
        Err(LiveError::NotRunnable(why)) => bail!(InvalidInput(format!("{}: {why}", file.display()))),
        done => done.with_context(|| format!("loading {} over HTTP", file.display()))?,
    };
    // Scenario time is whole milliseconds.
    let ms = |d: Option<std::time::Duration>| d.map_or("-".to_string(), |d| format!("{} ms", d.as_millis()));
    println!(
        "stress --target {} ({}), judged as {}: {} people on {} workers, {} requests sent, {} answered in {:.2} s ({:.0} requests/s); latency p50 {}, p99 {}, max {}",
        file.display(),
        target.name,
        judged_as(&target),
        report.people,
        flags.workers,
        report.sent,
        report.answered,
        report.seconds,
        report.per_second(),
        ms(report.percentile(50.0)),
        ms(report.percentile(99.0)),
        ms(report.latencies.last().copied())
    );
    let statuses: Vec<String> = report.statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    println!("answers by status: {}", statuses.join(", "));
    if report.breaks.is_empty() {
        println!("no invariant broken: every person's story held");
        return Ok(ExitCode::SUCCESS);
    }
    let breaks: Vec<String> = report
        .breaks
        .iter()
        .map(|(i, n)| format!("{i} {n} of {}", report.people))
        .collect();
    println!("people whose story broke: {}", breaks.join(", "));
    for (v, trace) in &report.examples {
        println!("\nVIOLATED {}: {}", v.invariant, v.why);
        print!("{trace}");
    }
    Ok(ExitCode::from(1))
}
