//! Every flag of the command line, in one place (clap derive types); the
//! commands' own modules take these and do the work.

use std::path::PathBuf;

use otpsim_core::Variant;
use otpsim_sim::explore::{Budget, Guide};
pub use otpsim_sim::jobs::Shard;
use otpsim_sim::schedule::Strategy;

#[derive(clap::Parser)]
#[command(
    name = "otpsim",
    version,
    about = "Deterministic concurrency tests for signup and email-OTP flows"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Colour the verdicts: auto (on a terminal, unless NO_COLOR is set),
    /// always or never.
    #[arg(long, global = true, value_enum, default_value_t = crate::style::When::Auto)]
    pub color: crate::style::When,
    /// Print only results, warnings and errors: no progress, no notes.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Explores every scenario and compares what each variant does with
    /// what the file expects. Exits 1 when an expectation does not hold,
    /// 2 when a path or file is bad (the good ones still run).
    Check(CheckArgs),
    /// Prints the trace of one schedule: the one `--choices` pins (what
    /// `check` prints for every counterexample), else the first that the
    /// scheduler finds breaking an invariant. Exits 1 when the schedule it
    /// shows breaks an invariant
    Replay(ReplayArgs),
    /// Generates scenarios and schedules against each variant until the
    /// budget, shrinks every break to a minimal scenario file, and prints a
    /// matrix variant x invariant. Exits 1 when something broke. Ctrl-C
    /// stops the search at the next schedule, prints and saves what it
    /// found, and exits 130.
    Explore(ExploreArgs),
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
        /// Threads, each measuring one row at a time (default: every core).
        #[arg(long, default_value_t = otpsim_sim::jobs::available(), value_parser = parse_jobs)]
        jobs: usize,
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
        /// The generated search's budget, shared by the 16 combinations: a
        /// time (16s) or a number of schedules (16000); 0s: the corpus only.
        #[arg(long, default_value = "16s", value_parser = parse_search_budget)]
        budget: Budget,
        /// The search's seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Threads, each running one combination of switches at a time
        /// (default: every core). The verdict does not depend on it.
        #[arg(long, default_value_t = otpsim_sim::jobs::available(), value_parser = parse_jobs)]
        jobs: usize,
    },
    /// Joins the --json reports of `otpsim check --shard I/N` or
    /// `otpsim explore --shard I/N` runs and prints what one unsharded run
    /// prints, with its exit code; for explore, saves the minimal
    /// scenarios as it would.
    Merge {
        /// One report per shard.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// text, or markdown for a CI job summary.
        #[arg(long, value_enum, default_value_t = TableFormat::Text)]
        format: TableFormat,
        /// For explore's reports: where the minimal scenarios go (existing
        /// files are kept).
        #[arg(long, default_value = "otpsim-found")]
        save: PathBuf,
        /// For explore's reports: also write the merged report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also write the merged verdicts as JUnit XML.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Runs a variant as a real web app: one process is one worker; start
    /// several on one --db for several workers. Prints the address it
    /// listens on, then serves until stopped.
    Serve(ServeFlags),
    /// Writes a first draft: `otpsim init target -- COMMAND…` starts the app
    /// as a run would, reads its forms, lives one signup through them with
    /// a probe address, and writes a target file whose every guess is a
    /// comment, with the check to run first.
    Init {
        #[command(subcommand)]
        what: InitWhat,
    },
}

/// What `otpsim init` drafts.
#[derive(clap::Subcommand)]
pub enum InitWhat {
    /// A target file for a running app.
    Target(InitTargetFlags),
}

/// `otpsim init target`'s flags.
#[derive(clap::Args)]
pub struct InitTargetFlags {
    /// Where to write the draft (refused if it exists); its folder is
    /// `{target_dir}` for the command. Default: print it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The app's name in the draft.
    #[arg(long, default_value = "my app")]
    pub name: String,
    /// An environment variable for the app, KEY=VALUE, placeholders allowed
    /// ({port}, {smtp_port}, {db}, {run_dir}, {target_dir}); repeatable.
    #[arg(long = "env", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// A command run once before the app starts (a migration), its words
    /// separated by spaces.
    #[arg(long)]
    pub setup: Option<String>,
    /// The folder the commands run in (default: each run's own).
    #[arg(long)]
    pub cwd: Option<String>,
    /// The app's command, after `--`, with `{port}` where it takes its port.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// `otpsim serve`'s flags.
#[derive(clap::Args)]
pub struct ServeFlags {
    /// The variant, e.g. naive, seed_fix, idempotent.
    #[arg(long, value_parser = parse_variant)]
    pub variant: Variant,
    /// Where to listen (port 0: any free port; the line printed says which).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// The SQLite file every worker shares (created if missing; WAL mode).
    #[arg(long)]
    pub db: PathBuf,
    /// The SMTP server that mail goes to.
    #[arg(long)]
    pub smtp: std::net::SocketAddr,
    /// cookie: Flask-like signed cookie sessions; server: a session id in
    /// the cookie, the session in the database.
    #[arg(long, value_enum, default_value_t = SessionFlag::Cookie)]
    pub session: SessionFlag,
    /// Lifetime of a code, e.g. 10m, 8s.
    #[arg(long, default_value = "10m", value_parser = parse_budget)]
    pub otp_ttl: std::time::Duration,
    /// Wrong codes allowed per pending registration.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// The file holding the secret that signs cookies and keys code MACs
    /// (default: the environment variable OTPSIM_SECRET). Every worker of
    /// a deployment needs the same one.
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Wait this long before each step of a request (a statement, a mail,
    /// the worker's memory, a server session), e.g. 2ms: two requests that
    /// arrive together then meet between steps, where the simulator may
    /// switch them. For live runs (`--pause`, times the speed on a
    /// controlled clock); 0ms, the default, is a plain server.
    #[arg(long, default_value = "0ms", value_parser = parse_budget)]
    pub step_pause: std::time::Duration,
}

/// Where `serve` keeps sessions.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SessionFlag {
    Cookie,
    Server,
}

/// `otpsim stress`'s flags.
#[derive(clap::Args)]
pub struct StressFlags {
    /// The variant, e.g. naive, seed_fix-dedup, idempotent.
    #[arg(long, value_parser = parse_variant, required_unless_present = "target", conflicts_with = "target")]
    pub variant: Option<Variant>,
    /// Load a real server, described by this target file, over HTTP
    /// instead: --people stories through live mode's browsers and proxy,
    /// nothing held back, judged by the same checker (docs/targets.md).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["threads", "tokio", "duration", "db"])]
    pub target: Option<PathBuf>,
    /// With --target: people, each with her own address and story (a
    /// double-clicked signup, a stranger's two guesses, a double-clicked
    /// verify, a login).
    #[arg(long, requires = "target", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub people: u32,
    /// With --target: the spread of the people's starts, e.g. 2s.
    #[arg(long, requires = "target", default_value = "2s", value_name = "DURATION", value_parser = parse_live_length)]
    pub ramp: u64,
    /// With --target: run the app on a controlled clock this many times
    /// as fast (docs/targets.md).
    #[arg(long, requires = "target", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub speed: Option<u32>,
    /// Browsers, each on its own OS thread (or tokio task with --tokio).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Run the browsers as tokio tasks; handlers go to spawn_blocking.
    #[arg(long)]
    pub tokio: bool,
    /// Server workers, each with its own connection and memory.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// How long to run, e.g. 10s, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_budget)]
    pub duration: std::time::Duration,
    /// A new SQLite file to use (default: a scratch file, removed after).
    #[arg(long)]
    pub db: Option<PathBuf>,
}

/// A time zone the app's processes run in: a name under
/// /usr/share/zoneinfo, such as America/Los_Angeles or UTC.
fn parse_zone(s: &str) -> Result<String, String> {
    let named = !s.is_empty()
        && s.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
        && std::path::Path::new("/usr/share/zoneinfo").join(s).is_file();
    if named {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a time zone; expected a name under /usr/share/zoneinfo, e.g. UTC, Europe/Berlin, America/Los_Angeles"
        ))
    }
}

/// A duration for --longest, in milliseconds.
fn parse_live_length(s: &str) -> Result<u64, String> {
    otpsim_sim::scenario::parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration; expected e.g. 30s, 2m"))
}

pub fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=256).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: expected a number of threads from 1 to 256")),
    }
}

pub fn parse_search_budget(s: &str) -> Result<Budget, String> {
    s.parse()
}

/// A search budget that searches something: a CI job that explores
/// nothing must not pass.
pub fn parse_explore_budget(s: &str) -> Result<Budget, String> {
    match s.parse()? {
        Budget::Schedules(0) => Err(format!(
            "{s:?} explores no schedule; give a number of schedules (20000) or a time (30s)"
        )),
        Budget::Time(d) if d.is_zero() => Err(format!(
            "{s:?} explores for no time; give a time (30s) or a number of schedules (20000)"
        )),
        budget => Ok(budget),
    }
}

/// A pause before each of the app's steps: whole milliseconds, at most a
/// second (a longer one is a stalled server, not a widened window).
pub fn parse_pause(s: &str) -> Result<std::time::Duration, String> {
    match otpsim_sim::scenario::parse_duration(s) {
        Some(ms) if ms <= 1000 => Ok(std::time::Duration::from_millis(ms)),
        Some(_) => Err(format!("{s:?} is longer than 1s; a pause is e.g. 2ms")),
        None => Err(format!("{s:?} is not a duration; expected e.g. 2ms")),
    }
}

pub fn parse_budget(s: &str) -> Result<std::time::Duration, String> {
    otpsim_sim::scenario::parse_duration(s)
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is not a duration; expected e.g. 30s, 1500ms, 2m"))
}

/// How `replay` shows a run.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunFormat {
    Text,
    Json,
    Mermaid,
    Svg,
    Html,
}

/// How `check` and `explore` print their table.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TableFormat {
    Text,
    /// A Markdown table, fit for a CI job summary.
    Markdown,
}

pub fn parse_shard(s: &str) -> Result<Shard, String> {
    s.parse()
}

pub fn parse_guide(s: &str) -> Result<Guide, String> {
    s.parse()
}

pub fn parse_db_mode(s: &str) -> Result<otpsim_core::DbMode, String> {
    s.parse()
}

pub fn parse_strategy(s: &str) -> Result<Strategy, String> {
    s.parse()
}

pub fn parse_variant(s: &str) -> Result<Variant, String> {
    s.parse().map_err(|e: otpsim_core::flows::VariantError| e.to_string())
}

/// What `explore` was asked.
/// `otpsim replay`'s flags.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The scenario file.
    pub file: PathBuf,
    /// The variant, e.g. naive, seed_fix-dedup, idempotent (not with
    /// --target: the target says what runs).
    #[arg(long, value_parser = parse_variant, required_unless_present = "target", conflicts_with = "target")]
    pub variant: Option<Variant>,
    /// The seed of the run's randomness and of the scheduler (default:
    /// the file's seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The schedule to run, as the choices it takes where more than one
    /// task can run (e.g. 0,1,1); runs exactly that one schedule.
    #[arg(long, value_delimiter = ',', num_args = 0.., conflicts_with = "target")]
    pub choices: Option<Vec<u8>>,
    /// With --target: the network order to run, as the delivery taken at
    /// each instant where several were due (e.g. 0,1); a live run's
    /// counterpart of --choices, which picks threads.
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    pub deliveries: Option<Vec<u8>>,
    /// Without --choices, the scheduler that looks for a failing
    /// schedule: pct1..pct10, random or dfs.
    #[arg(long, default_value = "pct3", value_parser = parse_strategy)]
    pub strategy: Strategy,
    /// For a fault at statement = "every": the position to replay.
    #[arg(long, default_value_t = 1)]
    pub position: u32,
    /// text, json, mermaid (a sequenceDiagram), svg or html (one
    /// self-contained page).
    #[arg(long, value_enum, default_value_t = RunFormat::Text)]
    pub format: RunFormat,
    /// Explain the violation in a few sentences (always in json and html).
    #[arg(long)]
    pub explain: bool,
    /// With --target: the time zone the app runs in (its TZ), e.g.
    /// America/Los_Angeles.
    #[arg(long, requires = "target", value_name = "ZONE", value_parser = parse_zone)]
    pub tz: Option<String>,
    /// With --target: run the app on a controlled clock (libfaketime)
    /// this many times as fast, and the scenario with it; the clock reads
    /// the target's [time] start at the run's time 0 (docs/targets.md).
    #[arg(long, requires = "target", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub speed: Option<u32>,
    /// With --target: send requests of one instant each as it comes,
    /// instead of holding their last bytes and releasing them together.
    #[arg(long, requires = "target")]
    pub no_sync: bool,
    /// With --target: the app waits this long before each of its steps
    /// (e.g. 2ms), so that requests released together meet inside it;
    /// for a target whose [start] takes a pause (docs/targets.md).
    #[arg(long, requires = "target", value_name = "DURATION", value_parser = parse_pause)]
    pub pause: Option<std::time::Duration>,
    /// Replay against a real server, described by this target file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["seed", "strategy", "position"])]
    pub target: Option<PathBuf>,
    /// With --target: run the schedule this many times and say how many
    /// runs broke the same invariants as the first.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
}

/// `otpsim check`'s flags.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// Scenario files, or folders of them (*.toml).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Overrides each file's [schedules] seed (with --target: the seed
    /// of the random order).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The scheduler: pct1..pct10 (default pct3), random or dfs. With
    /// --target it orders same-instant deliveries: dfs (default, every
    /// order in turn) or random.
    #[arg(long, value_parser = parse_strategy)]
    pub strategy: Option<Strategy>,
    /// Also write an HTML report, with each counterexample's diagram, to
    /// DIR/index.html.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// text, or markdown for a CI job summary.
    #[arg(long, value_enum, default_value_t = TableFormat::Text)]
    pub format: TableFormat,
    /// Threads, each sweeping a scenario at a time (default: every
    /// core). The table does not depend on it. With --target: live sweeps
    /// at once, each on its own ports (default 1); verdicts that depend
    /// only on the network order are the same.
    #[arg(long, value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// Run only this shard of the scenarios: I/N takes every N-th file
    /// from the I-th (1-based). `otpsim merge` joins the shards' --json.
    #[arg(long, default_value = "1/1", value_parser = parse_shard)]
    pub shard: Shard,
    /// Also write the table as JSON to this file (what merge reads).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Overrides every scenario's [deployment] db_mode: autocommit, or
    /// python (Python sqlite3's implicit transactions, as the seed's app).
    #[arg(long, value_parser = parse_db_mode)]
    pub db_mode: Option<otpsim_core::DbMode>,
    /// Run the scenarios against a real server, described by this
    /// target file, instead of the simulator (docs/targets.md).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["db_mode", "variants"])]
    pub target: Option<PathBuf>,
    /// With --target: at most this many network schedules per scenario
    /// (each costs real seconds; one with no same-instant choice runs once).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub schedules: u32,
    /// Only these variants' expectations (repeatable); a file that names
    /// none of them is skipped.
    #[arg(long = "variant", value_parser = parse_variant)]
    pub variants: Vec<Variant>,
    /// Only the files whose path or scenario name contains this text.
    #[arg(long)]
    pub name: Option<String>,
    /// Also write the verdicts as JUnit XML: a testcase per scenario and
    /// variant.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// With --target: also run each file in the simulator, on the variant
    /// the target is judged as, and show per file whether the two
    /// verdicts agree and how many live network orders the simulator
    /// also produced (docs/targets.md, "The simulator beside a target").
    #[arg(long, requires = "target")]
    pub compare: bool,
    /// With --target: do not run a file whose requests and delays last
    /// longer than this (a live run is real time: a file with a
    /// 20-minute wait takes 20 minutes a network order); its row is not
    /// judged.
    #[arg(long, requires = "target", value_name = "DURATION", value_parser = parse_live_length)]
    pub longest: Option<u64>,
    /// With --target: run every file under each of these time zones (the
    /// app's TZ), a row per zone: a verdict that depends on the server's
    /// zone shows under the zone that exposes it.
    #[arg(long, requires = "target", value_name = "ZONE,…", value_delimiter = ',', value_parser = parse_zone)]
    pub tz: Vec<String>,
    /// With --target: run the app on a controlled clock (libfaketime)
    /// this many times as fast, and the scenarios with it; the clock reads
    /// the target's [time] start at each run's time 0 (docs/targets.md).
    #[arg(long, requires = "target", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub speed: Option<u32>,
    /// With --target: send requests of one instant each as it comes,
    /// instead of holding their last bytes and releasing them together.
    #[arg(long, requires = "target")]
    pub no_sync: bool,
    /// With --target: the app waits this long before each of its steps
    /// (e.g. 2ms), so that requests released together meet inside it;
    /// for a target whose [start] takes a pause (docs/targets.md).
    #[arg(long, requires = "target", value_name = "DURATION", value_parser = parse_pause)]
    pub pause: Option<std::time::Duration>,
}

#[derive(clap::Args)]
pub struct ExploreArgs {
    /// Variants to explore (repeatable); default naive, seed_fix, idempotent.
    #[arg(long = "variant", value_parser = parse_variant)]
    pub variants: Vec<Variant>,
    /// Per variant: a time (30s, 2m) or a number of schedules (20000). A
    /// number makes the results a pure function of it and the seed.
    #[arg(long, default_value = "30s", value_parser = parse_explore_budget)]
    pub budget: Budget,
    /// Threads, each running one round of the search at a time (default:
    /// every core). With a budget in schedules the results do not depend
    /// on it.
    #[arg(long, default_value_t = otpsim_sim::jobs::available(), value_parser = parse_jobs)]
    pub jobs: usize,
    /// The search's seed: the same seed draws the same cases.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Schedules in a round: the search runs rounds, each from a seed of
    /// its own, on every core and across shards. Smaller rounds spread
    /// wider; larger ones let the search build on more of what it learnt.
    #[arg(long, default_value_t = otpsim_sim::explore::ROUND, value_parser = clap::value_parser!(u64).range(1..))]
    pub round: u64,
    /// Run only this shard of the rounds: I/N takes every N-th round from
    /// the I-th (1-based). `otpsim merge` joins the shards' --json.
    #[arg(long, default_value = "1/1", value_parser = parse_shard)]
    pub shard: Shard,
    /// coverage: keep the cases that show new behaviour (statement
    /// outcomes, answers, which write each read saw) and mutate them;
    /// blind: draw every case afresh.
    #[arg(long, default_value = "coverage", value_parser = parse_guide)]
    pub guide: Guide,
    /// Where the minimal scenarios go (existing files are kept).
    #[arg(long, default_value = "otpsim-found")]
    pub save: PathBuf,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Rerun each failure from its saved file and compare the traces.
    #[arg(long)]
    pub check_determinism: bool,
    /// Also write an HTML report, with each minimal counterexample's
    /// diagram, to DIR/index.html.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// text, or markdown for a CI job summary.
    #[arg(long, value_enum, default_value_t = TableFormat::Text)]
    pub format: TableFormat,
    /// Also write the verdicts as JUnit XML: a testcase per variant and
    /// invariant, failed where the search broke it.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Search a real server, described by this target file, instead of
    /// the simulator: generated cases run live, --budget counts live runs
    /// or time, --jobs runs at once (docs/targets.md).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["variants", "round", "shard", "guide", "json", "check_determinism", "report", "junit", "format"]
    )]
    pub target: Option<PathBuf>,
    /// With --target: the longest a generated case may last in real time
    /// (after a controlled clock's speed); longer ones are drawn again.
    #[arg(long, requires = "target", value_name = "DURATION", default_value = "5s", value_parser = parse_live_length)]
    pub longest: u64,
    /// With --target: how many times `check --target` is run on each
    /// reduced file to count how often it reproduces.
    #[arg(long, requires = "target", default_value_t = 3)]
    pub reruns: usize,
    /// With --target: the schedules (network orders) each of those checks
    /// may run.
    #[arg(long, requires = "target", default_value_t = 8)]
    pub schedules: usize,
    /// With --target: run the app on a controlled clock (libfaketime)
    /// this many times as fast, and the cases with it (docs/targets.md).
    #[arg(long, requires = "target", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub speed: Option<u32>,
    /// With --target: the time zone the app runs in (its TZ).
    #[arg(long, requires = "target", value_name = "ZONE", value_parser = parse_zone)]
    pub tz: Option<String>,
    /// With --target: send requests of one instant each as it comes,
    /// instead of holding their last bytes and releasing them together.
    #[arg(long, requires = "target")]
    pub no_sync: bool,
    /// With --target: the app waits this long before each of its steps
    /// (e.g. 2ms), so that requests released together meet inside it;
    /// for a target whose [start] takes a pause (docs/targets.md).
    #[arg(long, requires = "target", value_name = "DURATION", value_parser = parse_pause)]
    pub pause: Option<std::time::Duration>,
}

/// Every shard of one split given once: exit 2 otherwise.
pub fn shards_complete(shards: &[(PathBuf, Shard)]) -> anyhow::Result<()> {
    for (file, shard) in shards {
        if !shard.is_valid() {
            anyhow::bail!(crate::InvalidInput(format!(
                "{}: shard {}/{} is not a shard (expected I/N with 1 <= I <= N <= 1000)",
                file.display(),
                shard.index,
                shard.count
            )));
        }
    }
    let total = shards.first().map_or(1, |(_, s)| s.count);
    let mut seen = vec![None; total];
    for (file, shard) in shards {
        if shard.count != total {
            anyhow::bail!(crate::InvalidInput(format!(
                "{} is shard {} of {}, the others are of {total}",
                file.display(),
                shard.index,
                shard.count
            )));
        }
        if let Some(other) = seen[shard.index - 1].replace(file.clone()) {
            anyhow::bail!(crate::InvalidInput(format!(
                "shard {}/{total} is given twice: {} and {}",
                shard.index,
                other.display(),
                file.display()
            )));
        }
    }
    let missing: Vec<String> = (1..=total)
        .filter(|i| seen[i - 1].is_none())
        .map(|i| format!("{i}/{total}"))
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(crate::InvalidInput(format!("shard(s) {} missing", missing.join(", "))));
    }
    Ok(())
}
