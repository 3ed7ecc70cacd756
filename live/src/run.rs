//! The live executor: one scenario, one network schedule, against a real
//! server described by a [`Target`].
//!
//! What it controls, and what replays exactly: when each request is sent
//! and to which instance, the order in which held responses reach the
//! browsers, and the order in which mails reach the mailboxes. What it does
//! not control: anything inside the server (its threads, its locks, its
//! clock). Scenario time is real time: a request `at = "3s"` leaves 3 s
//! after the run starts, a `response_delay` holds its response that long.
//!
//! Each delivery has a scenario instant, by the one due rule the simulator
//! also uses (`otpsim_model::network`): a response is due when its server
//! answered, plus its `response_delay`; a mail when the mail server
//! accepted it, plus its `email_delay`. The answer's instant is the send
//! plus one SMTP latency per mail the request sent, unless the server took
//! longer than the target's `settle` time more (a lock held for seconds, a
//! recovering worker): then it is when the answer came. An instant
//! is delivered once real time has reached it and the server has answered
//! every request sent up to it (or the target's `settle` time is over);
//! deliveries of one instant go in the schedule's order: each choice picks
//! one of those not yet made, in a fixed order (responses by request
//! number, then mails by request and number). A run records every choice
//! it made and how many options each had, so that the next schedule of a
//! depth-first enumeration, or an exact replay, can be derived from it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use otpsim_core::{Code, Email, Kind, Otp};
use otpsim_model::invariant::{self, Invariant, Limits, Violation};
use otpsim_model::network::{self, mail_due, response_due, Mailboxes, Navigations, Sightings};
use otpsim_model::plan::{plan_requests, probe_logins, Planned};
use otpsim_model::recorder::{Recorder, Sending};
use otpsim_model::scenario::{FaultKind, RequestSpec, Scenario, SessionMode, Via};
use otpsim_model::trace::{Cookie, DbState, Http, Trace, What};
use reqwest::cookie::{CookieStore as _, Jar};
use tokio::sync::mpsc;

use crate::burst::Burst;
use crate::clock::{unix_ms_now, Clock, FakeClock};
use crate::proxy::{self, Held, Report};
use crate::smtp::{self, Received};
use crate::target::{hidden_inputs, Route, Target, Values};
use crate::wire::{self, REQUEST_HEADER};

/// How long a run waits, once nothing is in flight or due, for mail that
/// may still come.
const QUIET_MS: u64 = 300;

/// How long a run waits for the server before it gives up.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a live run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The scenario needs something a real server cannot be made to do.
    #[error("not runnable live: {0}")]
    NotRunnable(String),
    /// The target file does not match what the server does.
    #[error("{file}: {why}")]
    Target {
        /// The target file.
        file: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The machine refused (ports, processes, files).
    #[error("{0}")]
    Io(String),
}

/// Where and how runs happen.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `otpsim` program, for targets that start `otpsim serve`.
    pub otpsim: PathBuf,
    /// A folder for the runs' databases and the instances' logs.
    pub scratch: PathBuf,
    /// The time zone the app's processes run in (`TZ`), if not the
    /// harness's own.
    pub tz: Option<String>,
    /// Whether requests of one instant are released together by their
    /// last bytes (`crate::burst`), or each as it comes.
    pub last_byte_sync: bool,
}

/// One live run.
#[derive(Debug, Clone)]
pub struct LiveRun {
    /// What happened, in the simulator's terms.
    pub trace: Trace,
    /// The choices it made where more than one delivery was due.
    pub choices: Vec<u8>,
    /// How many deliveries each choice chose among.
    pub arities: Vec<u8>,
    /// Wall-clock length of the run, start-up included.
    pub seconds: f64,
    /// For each instant at which several requests were sent together, how
    /// far apart their last bytes went (the arrival spread the server saw).
    pub spreads: Vec<Duration>,
}

/// Why `scenario` cannot run against `target`, if it cannot.
pub fn not_runnable(target: &Target, scenario: &Scenario) -> Option<String> {
    if scenario
        .faults
        .iter()
        .any(|f| matches!(f.kind, FaultKind::Db(_) | FaultKind::Crash))
    {
        return Some("its db and crash faults strike at a statement, and a real server has no statement hook".into());
    }
    if scenario.deployment.session == SessionMode::Server && !target.server_sessions {
        return Some("it uses server sessions, which the target does not offer (server_sessions = false)".into());
    }
    if scenario.deployment.session == SessionMode::Cookie && !target.cookie_sessions {
        return Some("it uses cookie sessions, which the target does not offer (cookie_sessions = false)".into());
    }
    if scenario.requests.iter().any(|r| r.kind == Kind::Login) && !target.routes.contains_key(&Kind::Login) {
        return Some("it logs in, and the target has no login route".into());
    }
    None
}

/// The invariants a live run of `scenario` against `target` is judged on,
/// and those it checks but the target cannot observe.
pub fn judged(target: &Target, scenario: &Scenario) -> (Vec<Invariant>, Vec<Invariant>) {
    scenario.invariants.iter().partition(|i| target.observes(**i))
}

/// The violations of a live run.
pub fn violations(target: &Target, scenario: &Scenario, run: &LiveRun) -> Vec<Violation> {
    invariant::violations(&run.trace, limits(target, scenario), &judged(target, scenario).0)
}

/// What the checker holds the app to: its own `[app]` constants where it
/// fixes them, else the scenario's.
pub fn limits(target: &Target, scenario: &Scenario) -> Limits {
    let speed = u64::from(target.clock.map_or(1, |c| c.speed));
    Limits {
        otp_ttl_ms: target.app.otp_ttl_ms.unwrap_or(scenario.deployment.otp_ttl_ms),
        max_attempts: target.app.max_attempts.unwrap_or(scenario.deployment.max_attempts),
        precision_ms: PRECISION_MS * speed,
    }
}

/// How far apart, in real ms, what the harness sees of an instant (a send,
/// a mail's acceptance) may lie from what the server's clock read for it
/// (the request's arrival, the code's dating): a request crosses a socket
/// and waits for a thread, an app dates a code after its SMTP reply. The
/// generator draws sends 5 ms before a lifetime's end, half a millisecond
/// at x10, and CI's `explore --target` once reported idempotent refusing
/// a code within its lifetime, a break its rerun did not reproduce
/// (2026-12-02). The checker leaves a verify within this of its code's
/// expiry owed neither answer.
pub const PRECISION_MS: u64 = 100;

/// The factor `(app, file)` by which `scenario`'s times are stretched
/// against `target`: where the app fixes its own code lifetime, the file's
/// timeline crosses its own, and the app's clock is controlled (so that a
/// file of seconds stretched to an app's minutes still takes seconds). A
/// file scaled whole keeps its meaning: every wait, delay and mail latency
/// stands to the lifetime as the file wrote it.
pub fn scale(target: &Target, scenario: &Scenario) -> Option<(u64, u64)> {
    let d = &scenario.deployment;
    let ttl = target
        .app
        .otp_ttl_ms
        .filter(|t| *t != d.otp_ttl_ms && d.otp_ttl_ms > 0)?;
    let last = scenario.requests.iter().map(|r| r.at_ms).max().unwrap_or(0);
    (target.clock.is_some() && last >= ttl.min(d.otp_ttl_ms)).then_some((ttl, d.otp_ttl_ms))
}

/// `scenario` as it runs against `target`: its times stretched by
/// [`scale`], or as written.
pub fn fitted(target: &Target, scenario: &Scenario) -> Scenario {
    let mut fitted = scenario.clone();
    if let Some((app, file)) = scale(target, scenario) {
        retime(&mut fitted, |ms| {
            (u128::from(ms) * u128::from(app) / u128::from(file)) as u64
        });
        fitted.deployment.otp_ttl_ms = app;
    }
    fitted
}

/// Every time of `s` but its code lifetime, through `f`: each request's
/// send, response delay and mail delay, and the mail's latency. One list,
/// for stretching and compressing alike, so that a time added to the
/// format cannot be scaled by one and missed by the other.
pub fn retime(s: &mut Scenario, f: impl Fn(u64) -> u64) {
    for r in &mut s.requests {
        r.at_ms = f(r.at_ms);
        r.response_delay_ms = f(r.response_delay_ms);
        r.email_delay_ms = f(r.email_delay_ms);
    }
    s.deployment.mail_latency_ms = f(s.deployment.mail_latency_ms);
}

/// How long a run of `scenario` against `target` lasts at least, in real
/// ms: its last send with its response delay, mail delay and (for a
/// request that mails) the SMTP latency, stretched to the app
/// ([`fitted`]) and compressed by a controlled clock's speed.
pub fn lasts_ms(target: &Target, scenario: &Scenario) -> u64 {
    let speed = u64::from(target.clock.map_or(1, |c| c.speed));
    let fitted = fitted(target, scenario);
    let latency = fitted.deployment.mail_latency_ms;
    fitted
        .requests
        .iter()
        .map(|r| r.at_ms + r.response_delay_ms + r.email_delay_ms + if r.kind.mails() { latency } else { 0 })
        .max()
        .unwrap_or(0)
        / speed
}

/// Why `scenario` would test nothing against `target`, if it would: its
/// timeline crosses a code's lifetime (a request sent at or after it) or
/// it sends as many codes as would lock a registration (any verify may be
/// wrong: a stranger's, a stale one), and the app's own
/// constant there is not the file's. Run anyway, such a file passes
/// without testing what it was written for. A lifetime the app's
/// controlled clock lets the file be stretched to is no reason ([`scale`]).
pub fn vacuous(target: &Target, scenario: &Scenario) -> Option<String> {
    let d = &scenario.deployment;
    if let Some(ttl) = target
        .app
        .otp_ttl_ms
        .filter(|t| *t != d.otp_ttl_ms && scale(target, scenario).is_none())
    {
        let last = scenario.requests.iter().map(|r| r.at_ms).max().unwrap_or(0);
        if last >= ttl.min(d.otp_ttl_ms) {
            return Some(format!(
                "vacuous for this target: the file's timeline reaches {} and its codes live {}, but the app's live {} (on a controlled clock, --speed N, the file is stretched to the app's lifetime)",
                otpsim_model::scenario::format_duration(last),
                otpsim_model::scenario::format_duration(d.otp_ttl_ms),
                otpsim_model::scenario::format_duration(ttl)
            ));
        }
    }
    if let Some(max) = target.app.max_attempts.filter(|m| *m != d.max_attempts) {
        let wrong = scenario
            .requests
            .iter()
            .filter(|r| r.kind == Kind::Verify)
            .map(|r| r.repeat)
            .sum::<u32>();
        if wrong >= max.min(d.max_attempts) {
            return Some(format!(
                "vacuous for this target: the file sends {wrong} codes against a limit of {}, but the app locks after {max}",
                d.max_attempts
            ));
        }
    }
    None
}

/// The next schedule of a depth-first enumeration after `run`, if any.
pub fn next_schedule(run: &LiveRun) -> Option<Vec<u8>> {
    let last = (0..run.choices.len())
        .rev()
        .find(|&i| run.choices[i] + 1 < run.arities[i])?;
    let mut next = run.choices[..last].to_vec();
    next.push(run.choices[last] + 1);
    Some(next)
}

/// The observed database, read-only; `None` while the app has not made it
/// (one that makes it at its first request): nothing is in it yet.
fn observed_db(path: &str) -> rusqlite::Result<Option<rusqlite::Connection>> {
    if !Path::new(path).exists() {
        return Ok(None);
    }
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(Some(conn))
}

pub(crate) struct Instance {
    child: tokio::process::Child,
    /// The leader's pid, kept: once the child is reaped (an instance that
    /// exited during the run) `child.id()` is gone, and its forked workers
    /// and libfaketime's segments are not.
    pid: Option<i32>,
    pub(crate) addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Instance {
    /// Stops the instance and cleans up after it, once: its pid is
    /// forgotten, so that a later process given the same pid is not
    /// signalled in its name.
    fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            kill_group(pid);
            // Debian's libfaketime (0.9.10) leaves a shared-memory segment
            // named by the pid of every process it loaded in, and a later
            // process given that pid fails to start: a controlled clock's
            // instance cleans up after itself.
            for name in [format!("faketime_shm_{pid}"), format!("sem.faketime_sem_{pid}")] {
                let _ = std::fs::remove_file(Path::new("/dev/shm").join(name));
            }
        }
        let _ = self.child.start_kill();
    }
}

/// Kills the process group `leader` leads, the workers a server forked
/// (gunicorn's) too. The pid names the group while the leader is unreaped
/// or any member lives; once both are gone it may be reused, so call it
/// once per group (as `Instance::stop` does, taking the pid). Not SIGTERM:
/// a worker forked after a SIGTERM reached the group never sees it
/// (gunicorn's master forks its worker after installing its handlers; by
/// the likeliest reading, docs/findings.md): one outlived its killed
/// master by the rest of flask-fix's search (session 19). A SIGKILL leaves
/// the master no time to fork, and the kernel restarts a fork the signal
/// interrupts.
pub fn kill_group(leader: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; it
    // touches no memory of ours.
    unsafe {
        libc::kill(-leader, libc::SIGKILL);
    }
}

/// A target's command line, with its environment, run in `cwd`, writing
/// both its outputs to `log`.
fn command(
    args: &[String],
    env: impl Iterator<Item = (String, String)>,
    cwd: &Path,
    log: &Path,
) -> Result<tokio::process::Command, LiveError> {
    let out = std::fs::File::create(log).map_err(|e| LiveError::Io(format!("{}: {e}", log.display())))?;
    let err = out.try_clone().map_err(|e| LiveError::Io(e.to_string()))?;
    let mut command = tokio::process::Command::new(&args[0]);
    command
        .args(&args[1..])
        .envs(env)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    Ok(command)
}

/// The last lines a process wrote to its log: what a failed start says.
fn last_lines(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(8).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// How many times an instance whose port was taken under it starts again.
const PORT_RETRIES: u32 = 2;

/// Whether an instance's last lines say its port was taken, as every
/// server we know of says it: Python's and Rust's "Address already in
/// use", node's `EADDRINUSE`, gunicorn's "Connection in use", Django's
/// "That port is already in use".
fn port_taken(last_lines: &str) -> bool {
    let lines = last_lines.to_ascii_lowercase();
    ["already in use", "connection in use", "eaddrinuse"]
        .iter()
        .any(|said| lines.contains(said))
}

pub(crate) async fn start_instances(
    target: &Target,
    scenario: &Scenario,
    options: &Options,
    dir: &Path,
    db: &Path,
    smtp: SocketAddr,
) -> Result<(Vec<Instance>, Instant), LiveError> {
    // Absolute: the commands run in the run's own folder by default.
    let target_dir = target
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let target_dir = std::path::absolute(target_dir).unwrap_or_else(|_| target_dir.to_path_buf());
    // libfaketime shortens the app's sleeps by its speed, and the pause is
    // to outlast real arrival spreads: the app is asked for `speed` times it.
    let pause = target.pause.map(|p| p * target.clock.map_or(1, |c| c.speed));
    // Written only for a target that asks for the tracer, paused or not
    // (with no pause it installs nothing), and ahead of the harness's own
    // PYTHONPATH, which the target's line would otherwise replace.
    let python = target.names("{pause_python}");
    // An empty entry would put the app's folder ahead of the stdlib.
    let inherited_python = std::env::var("PYTHONPATH").ok().filter(|p| !p.is_empty());
    let pause_python = match python {
        true => {
            crate::pause::python_dir(dir)
                .map_err(|e| LiveError::Io(format!("{}: {e}", dir.display())))?
                .display()
                .to_string()
                + &inherited_python
                    .as_ref()
                    .map_or(String::new(), |inherited| format!(":{inherited}"))
        }
        false => String::new(),
    };
    // The tracer's pause, and the harness's path to count as installed.
    let python_env = |pause: Option<Duration>| -> Vec<(String, String)> {
        match python {
            true => std::iter::once((crate::pause::PYTHON_ENV.to_string(), crate::pause::as_ms(pause)))
                .chain(
                    inherited_python
                        .iter()
                        .map(|p| (crate::pause::INHERITED_ENV.to_string(), p.clone())),
                )
                .collect(),
            false => Vec::new(),
        }
    };
    let pause_env = python_env(pause);
    // The placeholders every command line shares; an instance's own are
    // `{port}` and `{instance}`.
    let fill_run = |arg: &str| {
        arg.replace("{smtp_port}", &smtp.port().to_string())
            .replace("{pause}", &crate::pause::as_flag(pause))
            .replace("{pause_ms}", &crate::pause::as_ms(pause))
            .replace("{pause_python}", &pause_python)
            .replace("{db}", &db.display().to_string())
            .replace("{run_dir}", &dir.display().to_string())
            .replace(
                "{session}",
                match scenario.deployment.session {
                    SessionMode::Cookie => "cookie",
                    SessionMode::Server => "server",
                },
            )
            .replace("{otp_ttl}", &format!("{}ms", scenario.deployment.otp_ttl_ms))
            .replace("{otp_ttl_ms}", &scenario.deployment.otp_ttl_ms.to_string())
            .replace("{max_attempts}", &scenario.deployment.max_attempts.to_string())
            .replace("{otpsim}", &options.otpsim.display().to_string())
            .replace("{target_dir}", &target_dir.display().to_string())
    };
    let cwd = target
        .cwd
        .as_deref()
        .map_or(dir.to_path_buf(), |c| PathBuf::from(fill_run(c)));
    let tz: Vec<(String, String)> = options.tz.iter().map(|z| ("TZ".to_string(), z.clone())).collect();
    if let Some(setup) = &target.setup {
        // The setup runs alone and on the real clock: unpaused.
        let unpaused = |arg: &str| fill_run(&arg.replace("{pause}", "0ms").replace("{pause_ms}", "0"));
        let args: Vec<String> = setup.iter().map(|a| unpaused(a)).collect();
        let log = dir.join("setup.log");
        let env = target
            .env
            .iter()
            .map(|(k, v)| (k.clone(), unpaused(v)))
            .chain(tz.clone())
            .chain(python_env(None));
        let status = command(&args, env, &cwd, &log)?
            .status()
            .await
            .map_err(|e| LiveError::Target {
                file: target.path.clone(),
                why: format!("cannot run the setup command {:?}: {e}", args[0]),
            })?;
        if !status.success() {
            return Err(LiveError::Target {
                file: target.path.clone(),
                why: format!(
                    "the setup command {args:?} {status}; its last lines:\n{}",
                    last_lines(&log)
                ),
            });
        }
    }
    // The run's clock starts once every instance is ready, on the app's
    // side as on the harness's. Until then a controlled clock runs on the
    // line of an origin no earlier than the real one can be (every
    // instance waited for to its ready timeout), so that the last writing
    // moves each clock forward, never back: libfaketime fakes the
    // monotonic clock with the same offset, and node's runtime aborts when
    // that clock goes back ("Assertion failed: (now) >= (timer_base())").
    // An instance whose port was taken starts again, with a ready timeout
    // of its own each time.
    let starts = u32::try_from(scenario.deployment.workers)
        .unwrap_or(u32::MAX)
        .saturating_mul(PORT_RETRIES + 1);
    let latest_origin_ms = i64::try_from(
        (target.ready_timeout + Duration::from_secs(1))
            .saturating_mul(starts)
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
    .min(86_400_000);
    let faked = match &target.clock {
        Some(clock) => Some((
            clock,
            FakeClock::library().map_err(|why| LiveError::Target {
                file: target.path.clone(),
                why,
            })?,
        )),
        None => None,
    };
    // Instance `n`, its `attempt`-th start: the instance, its clock file,
    // and when the library loaded in it.
    let spawn = |n: usize, attempt: u32| -> Result<(Instance, (PathBuf, i64)), LiveError> {
        let port = crate::port::for_instance().map_err(|e| LiveError::Io(format!("no free port: {e}")))?;
        let fill = |arg: &str| {
            fill_run(arg)
                .replace("{port}", &port.to_string())
                .replace("{instance}", &n.to_string())
        };
        let log = match attempt {
            0 => dir.join(format!("instance-{n}.log")),
            k => dir.join(format!("instance-{n}.start-{k}.log")),
        };
        let args: Vec<String> = target.command.iter().map(|a| fill(a)).collect();
        let clock_file = dir.join(format!("clock-{n}.rc"));
        let write_clock = |loaded: i64| -> Result<Vec<(String, String)>, LiveError> {
            let Some((clock, library)) = &faked else {
                return Ok(Vec::new());
            };
            clock
                .write(&clock_file, loaded + latest_origin_ms, loaded)
                .map_err(|e| LiveError::Io(format!("{}: {e}", clock_file.display())))?;
            Ok(FakeClock::env(library, &clock_file))
        };
        // Before the spawn, a second further ahead still: the writing after
        // it then moves the clock forward by that second less the spawn's
        // own time, not back by the spawn's time.
        let clock_env = write_clock(unix_ms_now() + 1000)?;
        let env = target
            .env
            .iter()
            .map(|(k, v)| (k.clone(), fill(v)))
            .chain(tz.clone())
            .chain(pause_env.clone())
            .chain(clock_env);
        let mut command = command(&args, env, &cwd, &log)?;
        command.process_group(0).kill_on_drop(true);
        let child = command.spawn().map_err(|e| LiveError::Target {
            file: target.path.clone(),
            why: format!("cannot start {:?}: {e}", args[0]),
        })?;
        // The program is exec'd now, and the library loads in it at once.
        let loaded = unix_ms_now();
        write_clock(loaded)?;
        let instance = Instance {
            pid: child.id().and_then(|p| i32::try_from(p).ok()),
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        };
        Ok((instance, (clock_file, loaded)))
    };
    let mut clocks: Vec<(PathBuf, i64)> = Vec::new();
    let mut instances = Vec::new();
    for n in 0..scenario.deployment.workers {
        let (instance, clock) = spawn(n, 0)?;
        instances.push(instance);
        clocks.push(clock);
    }
    let probe = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| LiveError::Io(e.to_string()))?;
    for (n, instance) in instances.iter_mut().enumerate() {
        let mut started = Instant::now();
        let mut attempt = 0;
        let url = |i: &Instance| format!("http://{}{}", i.addr, target.ready);
        loop {
            // An instance that accepts but never answers must not hang
            // the probe past the ready timeout.
            let probed = tokio::time::timeout(Duration::from_millis(500), probe.get(url(instance)).send()).await;
            // An answer counts when it came from the instance: another
            // process may hold the port while the app retries its bind.
            let mut answered_by_another = false;
            if let Ok(Ok(r)) = probed {
                if r.status().as_u16() < 500 {
                    let group = instance.pid;
                    let port = instance.addr.port();
                    let who = tokio::task::spawn_blocking(move || group.map(|g| crate::port::listener(port, g)))
                        .await
                        .ok()
                        .flatten();
                    if who != Some(crate::port::Listener::Other) {
                        break;
                    }
                    answered_by_another = true;
                }
            }
            let exited = instance.child.try_wait().ok().flatten();
            // The port was free when chosen and another process bound it
            // before the app did: the run is not lost, the instance starts
            // again on another.
            let taken = answered_by_another || (exited.is_some() && port_taken(&last_lines(&instance.log)));
            if taken && attempt < PORT_RETRIES {
                attempt += 1;
                // Before the spawn: the new process may be given the
                // reaped one's pid.
                instance.stop();
                let (again, clock) = spawn(n, attempt)?;
                *instance = again;
                clocks[n] = clock;
                started = Instant::now();
                continue;
            }
            if answered_by_another || exited.is_some() || started.elapsed() > target.ready_timeout {
                let how = match exited {
                    _ if answered_by_another => "was answered for by another process at its last start (the \
                                                 socket on its port is not its process group's; a server \
                                                 run outside the command's group, as in a container, \
                                                 cannot be a target's instance)"
                        .to_string(),
                    Some(status) => format!("exited ({status})"),
                    None => format!("was not ready within {:?}", target.ready_timeout),
                };
                return Err(LiveError::Target {
                    file: target.path.clone(),
                    why: format!(
                        "the instance on {} {how}; its last lines:\n{}",
                        instance.addr,
                        last_lines(&instance.log)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    let origin = Instant::now();
    if let Some((clock, _)) = faked {
        // The library reads its file at every call: from now on every
        // instance's clock reads `start` at the run's time 0.
        let origin_unix_ms = unix_ms_now();
        for (file, loaded) in &clocks {
            clock
                .write(file, origin_unix_ms, *loaded)
                .map_err(|e| LiveError::Io(format!("{}: {e}", file.display())))?;
        }
    }
    Ok((instances, origin))
}

enum Item {
    Response {
        id: usize,
        browser: String,
        release: proxy::Release,
    },
    Mail {
        number: usize,
        to: Email,
    },
}

struct Due {
    /// The scenario instant it is due at.
    instant: u64,
    /// The fixed order choices index: responses by request, then mails.
    key: (u8, usize, usize),
    item: Item,
}

/// A browser task's report: the request, and whether it was sent and its
/// response read.
type Finished = (usize, Result<(), String>);

struct Browser {
    client: reqwest::Client,
    jar: Arc<Jar>,
}

/// Runs `scenario` once against fresh instances of `target`, taking
/// `choices` where deliveries are due at one instant. `run` numbers the
/// run's folder under the scratch folder.
pub async fn run(
    target: &Target,
    scenario: &Scenario,
    choices: &[u8],
    options: &Options,
    run: usize,
) -> Result<LiveRun, LiveError> {
    if let Some(why) = not_runnable(target, scenario) {
        return Err(LiveError::NotRunnable(why));
    }
    let scenario = &fitted(target, scenario);
    let wall = Instant::now();
    let dir = options.scratch.join(format!("run-{run}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| LiveError::Io(format!("{}: {e}", dir.display())))?;
    let db = dir.join("app.sqlite");
    let (mail_tx, mail_rx) = mpsc::unbounded_channel();
    let speed = target.clock.map_or(1, |c| c.speed);
    // The mail server's latency is scenario time, as every delay is.
    let latency = Clock::new(Instant::now(), speed).real(scenario.deployment.mail_latency_ms);
    let sink = smtp::start(mail_tx, latency)
        .await
        .map_err(|e| LiveError::Io(format!("the SMTP sink: {e}")))?;
    let (mut instances, origin) = start_instances(target, scenario, options, &dir, &db, sink.addr).await?;
    let (proxy_tx, proxy_rx) = mpsc::unbounded_channel();
    let proxy = proxy::start(instances.iter().map(|i| i.addr).collect(), proxy_tx, target.redirects)
        .await
        .map_err(|e| LiveError::Io(format!("the proxy: {e}")))?;
    let planned = plan_requests(scenario);
    {
        let mut routes = proxy.routes.lock().unwrap_or_else(|p| p.into_inner());
        for p in &planned {
            routes.insert(p.id, p.worker);
        }
    }
    // Requests sent at one instant reach the instances together.
    let mut bursts: Vec<Arc<Burst>> = Vec::new();
    if options.last_byte_sync {
        let mut at: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        // A form submission the same browser's next one abandons still
        // reaches the proxy (`Executor::leaving`), and its instance: it is
        // part of the burst, as a double-click's first request is.
        for p in &planned {
            at.entry(p.at_ms).or_default().push(p.id);
        }
        let mut held = proxy.bursts.lock().unwrap_or_else(|p| p.into_inner());
        for ids in at.values().filter(|ids| ids.len() > 1) {
            let burst = Burst::new(ids.len());
            for id in ids {
                held.insert(*id, Arc::clone(&burst));
            }
            bursts.push(burst);
        }
    }
    let observe_db = target
        .observe
        .as_ref()
        .map(|o| o.db.replace("{db}", &db.display().to_string()));
    let mut executor = Executor {
        target,
        scenario,
        planned,
        requests: scenario.requests.clone(),
        routes: Arc::clone(&proxy.routes),
        probed: !scenario.probe || !target.routes.contains_key(&Kind::Login),
        probing: false,
        base: format!("http://{}", proxy.addr),
        instances: instances.iter().map(|i| i.addr).collect(),
        browsers: BTreeMap::new(),
        mailboxes: Mailboxes::default(),
        sightings: Sightings::default(),
        unseen: BTreeMap::new(),
        recorder: Recorder::default(),
        clock: Clock::new(origin, speed),
        in_flight: BTreeSet::new(),
        due: Vec::new(),
        choices: choices.to_vec(),
        taken: Vec::new(),
        arities: Vec::new(),
        observe_db,
        answers_since_snapshot: false,
        done: mpsc::unbounded_channel(),
        finished: BTreeSet::new(),
        failed: BTreeMap::new(),
        arrived: BTreeSet::new(),
        navigations: Navigations::default(),
        tasks: BTreeMap::new(),
        leaving: BTreeSet::new(),
        mailed: BTreeMap::new(),
        delivered_through: None,
    };
    let outcome = executor.drive(proxy_rx, mail_rx).await;
    drop(proxy);
    // A live run has no crash faults: an instance that exited took every
    // later request with it, and a run of unanswered requests breaks no
    // invariant. Judged, it would pass whatever the app does. A request
    // that died may have seen the socket close before the process could
    // be reaped: then the exit is waited for, briefly.
    let died = executor
        .recorder
        .events()
        .iter()
        .any(|e| matches!(e.what, What::DiedWithWorker));
    for instance in &mut instances {
        let exited = match instance.child.try_wait() {
            Ok(None) if died => tokio::time::timeout(Duration::from_millis(500), instance.child.wait())
                .await
                .ok()
                .and_then(Result::ok),
            status => status.ok().flatten(),
        };
        if let Some(status) = exited {
            return Err(LiveError::Target {
                file: target.path.clone(),
                why: format!(
                    "the instance on {} exited during the run ({status}); its last lines:\n{}",
                    instance.addr,
                    last_lines(&instance.log)
                ),
            });
        }
    }
    drop(instances);
    drop(sink);
    outcome?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(LiveRun {
        trace: executor.recorder.finish(),
        choices: executor.taken,
        arities: executor.arities,
        seconds: wall.elapsed().as_secs_f64(),
        spreads: bursts.iter().filter_map(|b| b.spread()).collect(),
    })
}

struct Executor<'a> {
    target: &'a Target,
    scenario: &'a Scenario,
    planned: Vec<Planned>,
    /// What each planned request is (`Planned::spec` indexes it): the
    /// file's requests, then the probe's logins.
    requests: Vec<RequestSpec>,
    /// The proxy's request-to-instance routes.
    routes: Arc<std::sync::Mutex<BTreeMap<usize, usize>>>,
    /// Whether the end-of-run probe was sent (or is not to be).
    probed: bool,
    /// Whether the probe's requests are the ones in flight now.
    probing: bool,
    base: String,
    /// Where each instance listens, for the pages a browser loads before
    /// it submits.
    instances: Vec<SocketAddr>,
    browsers: BTreeMap<String, Browser>,
    mailboxes: Mailboxes,
    /// What the browsers that see everything received.
    sightings: Sightings,
    /// What such a browser will see when a held response reaches it.
    unseen: BTreeMap<usize, Vec<(&'static str, String)>>,
    recorder: Recorder,
    clock: Clock,
    in_flight: BTreeSet<usize>,
    due: Vec<Due>,
    choices: Vec<u8>,
    taken: Vec<u8>,
    arities: Vec<u8>,
    observe_db: Option<String>,
    answers_since_snapshot: bool,
    /// Browser tasks report here when they finished a request.
    done: (mpsc::UnboundedSender<Finished>, mpsc::UnboundedReceiver<Finished>),
    finished: BTreeSet<usize>,
    /// Requests a browser could not send or read, and why.
    failed: BTreeMap<usize, String>,
    /// Requests the proxy has seen.
    arrived: BTreeSet<usize>,
    navigations: Navigations,
    /// The browser tasks of form submissions, to abandon them.
    tasks: BTreeMap<usize, tokio::task::JoinHandle<()>>,
    /// Abandoned form submissions not yet at the proxy: closed when they
    /// reach it.
    leaving: BTreeSet<usize>,
    /// How many mails each request has sent so far.
    mailed: BTreeMap<usize, u64>,
    /// The last scenario instant whose deliveries were made.
    delivered_through: Option<u64>,
}

impl Executor<'_> {
    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn record(&mut self, request: Option<usize>, browser: Option<&str>, worker: Option<usize>, what: What) {
        let at_ms = self.now();
        self.recorder.record(at_ms, request, browser, worker, what);
    }

    fn target_error(&self, why: String) -> LiveError {
        LiveError::Target {
            file: self.target.path.clone(),
            why,
        }
    }

    async fn drive(
        &mut self,
        mut proxy_rx: mpsc::UnboundedReceiver<Report>,
        mut mail_rx: mpsc::UnboundedReceiver<Received>,
    ) -> Result<(), LiveError> {
        // The server's own work is real time, whatever its clock reads.
        let settle = self.clock.scenario(self.target.settle);
        let quiet = self.clock.scenario(Duration::from_millis(QUIET_MS));
        let timeout = self.clock.scenario(ANSWER_TIMEOUT);
        let mut next_send = 0;
        let mut last_progress = self.now();
        // After the last delivery, a while for late mail.
        let mut quiet_since: Option<u64> = None;
        loop {
            let now = self.now();
            let next_at = self.planned.get(next_send).map(|p| p.at_ms);
            // The next instant with deliveries, if it comes before the next
            // send (at one instant, deliveries go first, as in the
            // simulator), once the server has answered everything that
            // could still add to it, or the settle time is over.
            if let Some(instant) = self.due.iter().map(|d| d.instant).min() {
                let before_sends = next_at.is_none_or(|at| instant <= at);
                // Asked last: under a load of thousands it is the costly one.
                let waiting = || self.in_flight.iter().any(|id| self.sent_at(*id) <= instant);
                if before_sends && now >= instant && (now >= instant + settle || !waiting()) {
                    self.deliver_instant(instant).await?;
                    last_progress = self.now();
                    continue;
                }
            }
            if let Some(at) = next_at.filter(|at| *at <= now) {
                let blocked = self.due.iter().any(|d| d.instant <= at);
                if !blocked {
                    let p = self.planned[next_send].clone();
                    next_send += 1;
                    self.send(&p).await?;
                    last_progress = now;
                    continue;
                }
            }
            let idle = next_send == self.planned.len() && self.in_flight.is_empty() && self.due.is_empty();
            if idle {
                match quiet_since {
                    Some(since) if now >= since + quiet && !self.probed => {
                        self.probe(now)?;
                        quiet_since = None;
                        continue;
                    }
                    Some(since) if now >= since + quiet => break,
                    Some(_) => {}
                    None => quiet_since = Some(now),
                }
            } else {
                quiet_since = None;
            }
            if let Some((id, why)) = self.failed.iter().find(|(id, _)| !self.navigations.is_abandoned(**id)) {
                return Err(LiveError::Io(format!(
                    "the browser could not send request #{id}: {why}"
                )));
            }
            // Only a server that owes answers can stall a run: waiting for
            // the scenario's next event is progress.
            if self.in_flight.is_empty() {
                last_progress = now;
            }
            if now > last_progress + timeout {
                let waiting: Vec<String> = self.in_flight.iter().map(|r| format!("#{r}")).collect();
                return Err(self.target_error(format!(
                    "no progress for {ANSWER_TIMEOUT:?}; requests without an answer: {}",
                    waiting.join(" ")
                )));
            }
            let wake = [
                next_at,
                self.due.iter().map(|d| d.instant).min().map(|i| i.max(now + 1)),
                self.due.iter().map(|d| d.instant + settle).min(),
                quiet_since.map(|s| s + quiet),
                Some(now + self.clock.scenario(Duration::from_secs(1))),
            ]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min()
            .unwrap_or(now + 1);
            let sleep = tokio::time::sleep(self.clock.real(wake - now));
            // Mail first: a request's mail reaches the sink before its
            // answer reaches the proxy, and must be seen first (it adds the
            // SMTP latency to the answer's instant and names its sender).
            tokio::select! {
                biased;
                Some(mail) = mail_rx.recv() => {
                    self.on_mail(mail)?;
                    last_progress = self.now();
                }
                Some(report) = proxy_rx.recv() => {
                    while let Ok(mail) = mail_rx.try_recv() {
                        self.on_mail(mail)?;
                    }
                    self.on_report(report)?;
                    last_progress = self.now();
                }
                Some((id, sent)) = self.done.1.recv() => self.finish(id, sent),
                _ = sleep => {}
            }
        }
        self.snapshot()?;
        self.signups_left_a_trace()
    }

    /// A signup read as `ok` that left no trace (no mail came for it, and
    /// `[observe] pending` never showed a registration or an account for
    /// its address) is a mapping mistake, not a verdict: the answer rules
    /// took a refusal for a success, and the checker would blame the flow
    /// for a signup that never happened.
    fn signups_left_a_trace(&self) -> Result<(), LiveError> {
        // Without accounts, a signup for an address that has one may answer
        // 200 and mail nothing (an app that hides who has an account).
        if self
            .target
            .observe
            .as_ref()
            .is_none_or(|o| o.pending.is_none() || o.accounts.is_none())
        {
            return Ok(());
        }
        let events = self.recorder.events();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for e in events {
            match &e.what {
                What::Quiescent(db) => {
                    seen.extend(db.pending.iter().map(|(email, _)| email.as_str()));
                    seen.extend(db.accounts.iter().map(String::as_str));
                }
                What::MailSent { to, .. } => {
                    seen.insert(to.as_str());
                }
                _ => {}
            }
        }
        for e in events {
            let (
                What::Answered {
                    code: Code::Ok, http, ..
                },
                Some(id),
            ) = (&e.what, e.request)
            else {
                continue;
            };
            let Some(spec) = self.planned.iter().find(|p| p.id == id).map(|p| &self.requests[p.spec]) else {
                continue;
            };
            if spec.kind.mails() && !seen.contains(spec.email.as_str()) {
                let status = http.as_ref().map_or(200, |h| h.status);
                return Err(self.target_error(format!(
                    "request #{id}, a {} for {}, answered {status}, which the answer rules read as ok, yet no mail came for {} and [observe] pending never showed a registration for it: the rules likely mistake a refusal for a success; give the {} route rules of its own",
                    spec.kind, spec.email, spec.email, spec.kind
                )));
            }
        }
        Ok(())
    }

    /// The end-of-run probe (`otpsim_model::plan::probe_logins`): on the
    /// accounts the observer reads, or, with no observer, on every address
    /// the file names (a login on one without an account is refused;
    /// `owner_logs_in` then asks for other evidence of the account).
    fn probe(&mut self, now: u64) -> Result<(), LiveError> {
        self.probed = true;
        self.probing = true;
        self.answers_since_snapshot = true;
        self.snapshot()?;
        let observes_accounts = self.target.observe.as_ref().is_some_and(|o| o.accounts.is_some());
        let observed = self.recorder.events().iter().rev().find_map(|e| match &e.what {
            What::Quiescent(db) if observes_accounts => Some(db.accounts.clone()),
            _ => None,
        });
        let guessed = observed.is_none();
        let accounts = observed.unwrap_or_else(|| {
            let mut named: Vec<String> = self.scenario.requests.iter().map(|r| r.email.to_string()).collect();
            named.sort();
            named.dedup();
            named
        });
        let logins = probe_logins(self.scenario, &accounts, self.planned.len(), now);
        if logins.is_empty() {
            return Ok(());
        }
        self.record(None, None, None, What::Probe { guessed });
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        for (mut p, spec) in logins {
            p.spec = self.requests.len();
            self.requests.push(spec);
            routes.insert(p.id, p.worker);
            self.planned.push(p);
        }
        Ok(())
    }

    /// When request `id` was sent, in scenario time.
    fn sent_at(&self, id: usize) -> u64 {
        self.planned.iter().find(|p| p.id == id).map_or(0, |p| p.at_ms)
    }

    /// The scenario instant of an answer to, or a mail accepted from,
    /// planned request `p`, observed at `at` (see
    /// `otpsim_model::network`): the send plus one SMTP latency per mail it
    /// has sent, unless the server took longer than the settle time more.
    fn scenario_instant(&self, p: &Planned, at: u64) -> u64 {
        let mails = self.mailed.get(&p.id).copied().unwrap_or(0);
        let latency = self.scenario.deployment.mail_latency_ms;
        let observed = network::Instant {
            modelled: network::Instant::modelled(p.at_ms, mails, latency),
            observed: at,
        };
        observed.observed(self.clock.scenario(self.target.settle))
    }

    /// The scenario instant of a delivery whose nominal instant is
    /// `nominal`: that one, unless an instant at or after it has already
    /// been delivered (the server answered later than the settle time);
    /// then as soon as it can, after what was delivered.
    fn instant(&self, nominal: u64) -> u64 {
        match self.delivered_through {
            Some(done) if nominal <= done => done.max(self.now()),
            _ => nominal,
        }
    }

    fn browser(&mut self, name: &str) -> Result<&Browser, LiveError> {
        if !self.browsers.contains_key(name) {
            let jar = Arc::new(Jar::default());
            let client = reqwest::Client::builder()
                .cookie_provider(Arc::clone(&jar))
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .map_err(|e| LiveError::Io(e.to_string()))?;
            self.browsers.insert(name.to_string(), Browser { client, jar });
        }
        Ok(&self.browsers[name])
    }

    /// What a browser's jar holds for the site, as the trace shows it.
    fn cookie_of(&self, browser: &str) -> Cookie {
        let Some(b) = self.browsers.get(browser) else {
            return Cookie::None;
        };
        let Ok(url) = reqwest::Url::parse(&self.base) else {
            return Cookie::None;
        };
        let Some(header) = b.jar.cookies(&url) else {
            return Cookie::None;
        };
        let header = header.to_str().unwrap_or("").to_string();
        self.read_cookie(&header)
    }

    /// A `name=value; …` list (a Cookie or Set-Cookie header) as the trace
    /// shows it: the session cookie's payload when it is readable.
    fn read_cookie(&self, header: &str) -> Cookie {
        let pairs: Vec<(&str, &str)> = header.split(';').filter_map(|p| p.trim().split_once('=')).collect();
        // The last: a redirect chain may set the session cookie again.
        match pairs.iter().rev().find(|(n, _)| *n == self.target.session_cookie) {
            Some((_, value)) => match wire::read(value) {
                Some(data) => Cookie::Session(data),
                None => Cookie::Opaque(format!("{}={value}", self.target.session_cookie)),
            },
            None => match pairs.first() {
                Some((n, v)) => Cookie::Opaque(format!("{n}={v}")),
                None => Cookie::None,
            },
        }
    }

    /// The hidden inputs of the page a browser loads before submitting to
    /// `route`, if it has one: loaded straight from the request's instance
    /// (the proxy gates only the scenario's requests), with the browser's
    /// jar, which keeps the page's cookies (a CSRF cookie, say).
    async fn load_form(
        &mut self,
        p: &Planned,
        route: &Route,
        values: Values<'_>,
    ) -> Result<Vec<(String, String)>, LiveError> {
        let Some(path) = route.form(values) else {
            return Ok(Vec::new());
        };
        let browser = self.requests[p.spec].browser.clone();
        let addr = self.instances.get(p.worker).or(self.instances.first()).copied();
        let url = format!("http://{}{path}", addr.map_or(String::new(), |a| a.to_string()));
        let mut request = self.browser(&browser)?.client.get(&url);
        for (name, value) in &self.target.headers {
            request = request.header(name, value);
        }
        let page = tokio::time::timeout(ANSWER_TIMEOUT, async move {
            let response = request.send().await?;
            let status = response.status().as_u16();
            response.text().await.map(|text| (status, text))
        })
        .await;
        match page {
            Ok(Ok((status, text))) if status < 400 => {
                let inputs = hidden_inputs(&text);
                if self.scenario.sees_everything(&browser) {
                    self.sightings.saw(&browser, "a page", text);
                }
                Ok(inputs)
            }
            Ok(Ok((status, _))) => Err(self.target_error(format!(
                "request #{}'s form page {path} answered {status}; expected the page with the form",
                p.id
            ))),
            Ok(Err(e)) => Err(LiveError::Io(format!("request #{}'s form page {path}: {e}", p.id))),
            Err(_) => Err(self.target_error(format!(
                "request #{}'s form page {path} gave no answer within {ANSWER_TIMEOUT:?}",
                p.id
            ))),
        }
    }

    async fn send(&mut self, p: &Planned) -> Result<(), LiveError> {
        let spec = self.requests[p.spec].clone();
        let owns = self.scenario.owns(&spec.browser);
        let owner = owns.contains(&spec.email);
        let sightings = self
            .scenario
            .sees_everything(&spec.browser)
            .then_some(&mut self.sightings);
        let (otp, source) = self.mailboxes.typed(&spec, &owns, sightings);
        let route = self
            .target
            .route(spec.kind)
            .cloned()
            .ok_or_else(|| LiveError::NotRunnable(format!("the target has no {} route", spec.kind)))?;
        let values = Values {
            email: spec.email.as_str(),
            password: &spec.password,
            otp: otp.as_ref().map(|o| o.digits()),
            n: p.id,
        };
        let hidden = self.load_form(p, &route, values).await?;
        let (path, filled) = route.request(values);
        // The page's hidden inputs, then what the person fills in.
        let mut fields: Vec<(String, String)> = hidden
            .into_iter()
            .filter(|(name, _)| !filled.iter().any(|(n, _)| n == name))
            .collect();
        fields.extend(filled);
        let cookie = self.cookie_of(&spec.browser);
        let browser_name = spec.browser.clone();
        let at = self.now();
        let sending = Sending {
            spec: &spec,
            owner,
            otp,
            source,
            cookie,
            route: Some(route.path.clone()),
        };
        self.recorder.sent(at, (p.id, Some(p.worker)), sending);
        self.in_flight.insert(p.id);
        let url = format!("{}{path}", self.base);
        let mut request = self
            .browser(&browser_name)?
            .client
            .post(url)
            .header(REQUEST_HEADER, p.id.to_string());
        for (name, value) in &self.target.headers {
            request = request.header(name, value);
        }
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&fields)
            .finish();
        let request = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        let done = self.done.0.clone();
        let id = p.id;
        let task = tokio::spawn(async move {
            // The browser reads the whole response, as a page load does; the
            // jar took its Set-Cookie when the headers came.
            let sent = match request.send().await {
                Ok(response) => response.bytes().await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let _ = done.send((id, sent));
        });
        // A form submission is a navigation: the browser abandons its
        // earlier one still in flight, closing that connection. A browser
        // sent that request when its form was submitted, as the
        // simulator's network has it (`Navigations`): it is closed once
        // it reached the proxy, never before, which the machine's load
        // would otherwise decide (found live: a double-clicked signup
        // whose first copy reached the server under four runs at once
        // and never alone).
        if self.requests[p.spec].via == Via::Form {
            if let Some(earlier) = self.navigations.submit(&browser_name, id) {
                if self.arrived.contains(&earlier) {
                    if let Some(t) = self.tasks.remove(&earlier) {
                        t.abort();
                    }
                } else if self.finished.contains(&earlier) {
                    // It could not be sent at all: no answer will come.
                    self.in_flight.remove(&earlier);
                } else {
                    self.leaving.insert(earlier);
                }
            }
            self.tasks.insert(id, task);
        }
        Ok(())
    }

    /// A browser finished a request: read its response, or failed.
    fn finish(&mut self, id: usize, sent: Result<(), String>) {
        self.finished.insert(id);
        // An abandoned submission that ended before it reached the proxy
        // (it could not be sent, or the proxy refused it) owes no answer.
        if self.leaving.remove(&id) {
            self.in_flight.remove(&id);
        }
        if let Err(why) = sent {
            self.failed.insert(id, why);
        }
    }

    fn on_report(&mut self, report: Report) -> Result<(), LiveError> {
        let held = match report {
            Report::Arrived(forwarded) => {
                self.arrived.insert(forwarded.id);
                if self.leaving.remove(&forwarded.id) {
                    if let Some(t) = self.tasks.remove(&forwarded.id) {
                        t.abort();
                    }
                }
                return Ok(());
            }
            Report::Answered(held) => held,
        };
        let Held {
            request,
            status,
            body,
            set_cookie,
            redirects,
            headers,
            release,
        } = held;
        let id = request.id;
        let Some(p) = self.planned.iter().find(|p| p.id == id).cloned() else {
            // Not a scenario's request (someone else's browser): let it go.
            tokio::spawn(release.deliver());
            return Ok(());
        };
        self.in_flight.remove(&id);
        let spec = &self.requests[p.spec];
        let browser = spec.browser.clone();
        match status {
            Err(_) => {
                self.record(Some(id), None, Some(p.worker), What::DiedWithWorker);
                tokio::spawn(release.deliver());
            }
            Ok(status) => {
                let (code, message) = self
                    .target
                    .read_answer(spec.kind, (status, &redirects), &body)
                    .map_err(|why| self.target_error(format!("request #{id}'s answer: {why}")))?;
                if spec.kind == Kind::Login && code == Code::Ok {
                    self.login_has_an_account(id, &spec.email, status)?;
                }
                if self.scenario.sees_everything(&browser) {
                    // All a browser gets: the page, the headers (a
                    // redirect's location among them), and the cookies.
                    let mut seen = vec![("a page", body.clone())];
                    seen.extend(headers.into_iter().map(|h| ("a header", h)));
                    seen.extend(redirects.iter().map(|(_, l)| ("a header", format!("location: {l}"))));
                    for c in &set_cookie {
                        let value = c
                            .split(';')
                            .next()
                            .and_then(|p| p.split_once('='))
                            .map_or("", |(_, v)| v);
                        seen.extend(wire::readable(value).into_iter().map(|t| ("a cookie", t)));
                    }
                    self.unseen.insert(id, seen);
                }
                let set = (!set_cookie.is_empty()).then(|| self.read_cookie(&set_cookie.join("; ")));
                let at = self.now();
                self.recorder.answered(
                    at,
                    (id, Some(p.worker)),
                    (code, Some(Http { redirects, status })),
                    message,
                    set,
                );
                let answered = self.scenario_instant(&p, at);
                let instant = self.instant(response_due(answered, spec));
                self.due.push(Due {
                    instant,
                    key: (0, id, 0),
                    item: Item::Response { id, browser, release },
                });
            }
        }
        self.answers_since_snapshot = true;
        if self.in_flight.is_empty() {
            self.snapshot()?;
        }
        Ok(())
    }

    fn on_mail(&mut self, mail: Received) -> Result<(), LiveError> {
        let address = mail
            .to
            .clone()
            .or_else(|| mail.recipients.first().cloned())
            .unwrap_or_default();
        let to = Email::parse(&address)
            .map_err(|e| self.target_error(format!("a mail went to {address:?}, which is {e}")))?;
        let found = self.target.mail_code.captures(&mail.body).and_then(|c| c.get(1));
        let Some(found) = found else {
            // Not every mail is a code's (a welcome, "account verified"):
            // shown in the trace, never fatal, never typed.
            let words: String = mail.body.split_whitespace().take(12).collect::<Vec<_>>().join(" ");
            let at = self.now();
            let request = mail.request.filter(|r| self.planned.iter().any(|p| p.id == *r));
            self.recorder
                .record(at, request, None, None, What::MailWithoutCode { to, words });
            return Ok(());
        };
        let otp = Otp::parse_mailed(found.as_str()).map_err(|e| {
            self.target_error(format!(
                "[mail] code took {:?} from a mail to {to}, which is not a code: {e}",
                found.as_str()
            ))
        })?;
        let named = self
            .target
            .mail_temp_id
            .as_ref()
            .and_then(|re| re.captures(&mail.body))
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_string());
        let temp_id = match named {
            Some(t) => t,
            None => self
                .registration_of(&to, &otp)?
                .unwrap_or_else(|| format!("(registration of mail {})", self.recorder.mails() + 1)),
        };
        // The label the app copied into the mail (`otpsim serve` does);
        // else the one request for the address in flight when the sink got
        // it; else nobody's: a worker's own work, or ambiguous, which the
        // checker reads conservatively (a mail of no request excuses, never
        // blames). An ambiguous mail whose candidates ask different
        // `email_delay`s cannot be delivered as the file says.
        let mut senders = Vec::new();
        let request = match mail.request.filter(|r| self.planned.iter().any(|p| p.id == *r)) {
            Some(labelled) => labelled,
            None => {
                // A code's mail is a signup's; another kind only when no
                // signup for the address is in flight.
                let for_address = |signups: bool| -> Vec<&Planned> {
                    self.planned
                        .iter()
                        .filter(|p| self.in_flight.contains(&p.id) && self.requests[p.spec].email == to)
                        .filter(|p| !signups || self.requests[p.spec].kind.mails())
                        .collect()
                };
                let mut candidates = for_address(true);
                if candidates.is_empty() {
                    candidates = for_address(false);
                }
                match candidates.as_slice() {
                    [] => 0,
                    [one] => one.id,
                    many => {
                        let delays: BTreeSet<u64> = many.iter().map(|p| self.requests[p.spec].email_delay_ms).collect();
                        if delays.len() > 1 {
                            let ids: Vec<String> = many.iter().map(|p| format!("#{}", p.id)).collect();
                            return Err(LiveError::NotRunnable(format!(
                                "a mail to {to} came while {} were in flight, which the file gives different email_delays, and the app's mail does not carry the request's X-Otpsim-Request label: its sender, and so its delay, is ambiguous",
                                ids.join(" and ")
                            )));
                        }
                        senders = many.iter().map(|p| p.id).collect();
                        0
                    }
                }
            }
        };
        // An ambiguous mail keeps the delay its candidates share, and their
        // instant if they were sent at one (a double-click's copies).
        let shared = match request {
            0 => {
                let candidates: Vec<Planned> = self
                    .planned
                    .iter()
                    .filter(|p| senders.contains(&p.id))
                    .cloned()
                    .collect();
                candidates
                    .first()
                    .filter(|first| candidates.iter().all(|p| p.at_ms == first.at_ms))
                    .cloned()
            }
            _ => None,
        };
        let planned = self.planned.iter().find(|p| p.id == request).cloned();
        let lost = planned.as_ref().is_some_and(|p| {
            p.first_copy
                && self
                    .scenario
                    .faults
                    .iter()
                    .any(|f| f.kind == FaultKind::Mail && f.request == p.spec)
        });
        let number = self.mailboxes.post(to.clone(), otp.clone());
        let at = self.now();
        let worker = planned.as_ref().map(|p| p.worker);
        self.recorder.mail_accepted(
            at,
            (request, worker),
            number,
            (to.clone(), otp, temp_id),
            (lost, senders),
        );
        if let Some(p) = &planned {
            *self.mailed.entry(p.id).or_default() += 1;
        }
        if !lost {
            // A mail no request sent (a worker's recovery) goes when it
            // came.
            let timing = planned.as_ref().or(shared.as_ref());
            let accepted = timing.map_or(at, |p| self.scenario_instant(p, at));
            let sender = timing.map(|p| &self.requests[p.spec]);
            let instant = self.instant(mail_due(accepted, sender));
            self.due.push(Due {
                instant,
                key: (1, request, number),
                item: Item::Mail { number, to },
            });
        }
        Ok(())
    }

    /// Makes every delivery of scenario instant `instant`, in the
    /// schedule's order.
    async fn deliver_instant(&mut self, instant: u64) -> Result<(), LiveError> {
        let (mut batch, later): (Vec<Due>, Vec<Due>) = std::mem::take(&mut self.due)
            .into_iter()
            .partition(|d| d.instant <= instant);
        self.due = later;
        self.delivered_through = Some(instant);
        batch.sort_by_key(|d| d.key);
        if batch.len() > usize::from(u8::MAX) {
            return Err(LiveError::NotRunnable(format!(
                "{} deliveries are due at one instant; a live schedule orders at most 255",
                batch.len()
            )));
        }
        while !batch.is_empty() {
            // The probe's deliveries take no choice, as in the simulator:
            // it is a reading of the outcome, not part of the schedule.
            let pick = if batch.len() > 1 && !self.probing {
                let choice = self.choices.get(self.taken.len()).copied().unwrap_or(0) % batch.len() as u8;
                self.taken.push(choice);
                self.arities.push(batch.len() as u8);
                choice as usize
            } else {
                0
            };
            match batch.remove(pick).item {
                Item::Response { id, browser, release } => {
                    let taken = self.navigations.arrives(&browser, id);
                    let delivered = release.deliver().await;
                    if !taken {
                        let at = self.now();
                        self.recorder.response_arrived(at, id, &browser, None);
                        continue;
                    }
                    if !delivered {
                        return Err(LiveError::Io(format!(
                            "browser {browser} closed its connection before response #{id} came"
                        )));
                    }
                    while !self.finished.contains(&id) {
                        let waited = tokio::time::timeout(ANSWER_TIMEOUT, self.done.1.recv()).await;
                        match waited {
                            Ok(Some((done, sent))) => self.finish(done, sent),
                            _ => {
                                return Err(LiveError::Io(format!(
                                    "browser {browser} never finished reading response #{id}"
                                )))
                            }
                        }
                    }
                    for (place, text) in self.unseen.remove(&id).unwrap_or_default() {
                        self.sightings.saw(&browser, place, text);
                    }
                    let cookie_now = self.cookie_of(&browser);
                    let at = self.now();
                    self.recorder.response_arrived(at, id, &browser, Some(cookie_now));
                }
                Item::Mail { number, to } => {
                    self.mailboxes.arrives(number, to.clone());
                    let at = self.now();
                    self.recorder.mail_arrived(at, number, to);
                }
            }
        }
        Ok(())
    }

    /// The registration holding `otp` for `to`, by `[observe]
    /// registration`, if the target has that query and the row exists.
    fn registration_of(&self, to: &Email, otp: &Otp) -> Result<Option<String>, LiveError> {
        let (Some(path), Some(sql)) = (
            &self.observe_db,
            self.target.observe.as_ref().and_then(|o| o.registration.as_ref()),
        ) else {
            return Ok(None);
        };
        let read = || -> rusqlite::Result<Option<String>> {
            let Some(conn) = observed_db(path)? else {
                return Ok(None);
            };
            let mut stmt = conn.prepare(sql)?;
            let mut rows = stmt.query_map([to.as_str(), otp.digits()], |r| r.get::<_, String>(0))?;
            rows.next().transpose()
        };
        read().map_err(|e| self.target_error(format!("[observe] registration on {path}: {e}")))
    }

    /// A login read as `ok` for an address the observer sees no account
    /// for is a mapping mistake, not a verdict: the answer rules took a
    /// refusal for a success (one app answers a signup and a login to an
    /// unverified account with the same redirect), and the checker would
    /// report a hijack that never happened.
    fn login_has_an_account(&self, id: usize, email: &Email, status: u16) -> Result<(), LiveError> {
        let (Some(path), Some(accounts)) = (
            &self.observe_db,
            self.target.observe.as_ref().and_then(|o| o.accounts.as_ref()),
        ) else {
            return Ok(());
        };
        let read = || -> rusqlite::Result<bool> {
            let Some(conn) = observed_db(path)? else {
                return Ok(false);
            };
            let mut stmt = conn.prepare(accounts)?;
            let accounts = stmt.query_map([], |r| r.get::<_, String>(0))?;
            for account in accounts {
                if account? == email.as_str() {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        match read() {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.target_error(format!(
                "request #{id}, a login for {email}, answered {status}, which the answer rules read as ok, yet [observe] accounts sees no account for {email}: the rules likely mistake a refusal for a success; give the login route rules of its own"
            ))),
            Err(e) => Err(self.target_error(format!("[observe] accounts on {path}: {e}"))),
        }
    }

    /// Records the database as the observer reads it, if one is set and
    /// something was answered since the last reading.
    fn snapshot(&mut self) -> Result<(), LiveError> {
        let (Some(path), Some(observer)) = (&self.observe_db, &self.target.observe) else {
            return Ok(());
        };
        if !self.answers_since_snapshot {
            return Ok(());
        }
        let read = || -> rusqlite::Result<DbState> {
            let Some(conn) = observed_db(path)? else {
                return Ok(DbState::default());
            };
            // A query the target leaves out reads as nothing: the
            // invariants that need it are not judged (`Target::observes`).
            let mut pending = Vec::new();
            if let Some(sql) = &observer.pending {
                let mut stmt = conn.prepare(sql)?;
                for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
                    pending.push(row?);
                }
            }
            pending.sort();
            let mut accounts = Vec::new();
            if let Some(sql) = &observer.accounts {
                let mut stmt = conn.prepare(sql)?;
                accounts = stmt
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
            }
            accounts.sort();
            Ok(DbState { pending, accounts })
        };
        let state = read().map_err(|e| self.target_error(format!("[observe] on {path}: {e}")))?;
        let at = self.now();
        self.recorder.quiescent(at, state);
        self.answers_since_snapshot = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// Whether `pid` is gone or dead (a zombie nobody reaped yet).
    fn dead(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat.rsplit(") ").next().is_some_and(|rest| rest.starts_with('Z')),
        }
    }

    /// A process the leader forked that ignores SIGTERM, as a server's
    /// worker forked after a SIGTERM reached the group never sees it, does
    /// not outlive its stopped instance.
    #[tokio::test]
    async fn a_stopped_instance_leaves_nothing_of_its_process_group() {
        let dir = std::env::temp_dir().join(format!("otpsim-stop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let forked_file = dir.join("forked");
        let script = format!("trap '' TERM; sleep 60 & echo $! > {}; wait", forked_file.display());
        let args = ["sh".to_string(), "-c".to_string(), script];
        let log = dir.join("log");
        let mut command = super::command(&args, std::iter::empty(), &dir, &log).unwrap();
        command.process_group(0).kill_on_drop(true);
        let child = command.spawn().unwrap();
        let pid = child.id().and_then(|p| i32::try_from(p).ok());
        let mut forked = None;
        for _ in 0..500 {
            forked = std::fs::read_to_string(&forked_file)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok());
            if forked.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let forked = forked.expect("the leader forked");
        assert!(!dead(forked));
        drop(super::Instance {
            child,
            pid,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 9)),
            log,
        });
        let mut gone = false;
        for _ in 0..200 {
            gone = dead(forked);
            if gone {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(gone, "process {forked} outlived its instance");
    }
}
