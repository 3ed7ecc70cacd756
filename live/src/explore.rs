//! `otpsim explore --target`: the simulator's generator and learning
//! search ([`otpsim_sim::explore::Pool`]) over the live executor.
//!
//! A drawn case is fitted to the target first ([`for_target`]): no
//! statement faults (a real server has no statement hook; a mail fault,
//! the SMTP sink's, stays), a session mode and routes the target offers,
//! nothing vacuous against the app's own constants (see
//! [`run::vacuous`]), and no longer than `longest` in real time (its times
//! stretched to the app's lifetime and compressed by a controlled clock,
//! as `check --target` runs them). A case that only a lifetime of its own
//! would let fit, against an app that fixes its lifetime, runs with the
//! app's instead, its times compressed to `longest`. Coverage is what a
//! black box shows: the simulator's features of the run's trace, which
//! live hold the answers by kind, code and HTTP status with their
//! redirect chains, the order of answers, the mails and when they came,
//! and the observed rows (`otpsim_sim::explore::coverage`). What a run
//! shows also aims the next changes: a verify the server refused as
//! wrong is sent again in bursts (`otpsim_sim::explore::Aim::Refused`),
//! the way to an attempt limit that does not hold; an owner's signup it
//! accepted gets a stranger's signup for her address before she types
//! her code (`Aim::Pending`), the way to pre-account hijacking.
//!
//! The first break of each symptom (an invariant and the answer that
//! showed it, [`Symptom`]) is reduced by live reruns (a smaller case is
//! kept when two runs of it in a row, in the finding's delivery order,
//! show the same symptom), then checked as `check --target` checks a
//! file, several times over: the saved file says how many of those sweeps
//! showed the symptom again. A file that not every sweep reproduces, a
//! race inside the server lost on some, is tried with the requests that
//! share an instant sent two and four times over, and saved as the
//! version more sweeps reproduce.
//!
//! Not deterministic, as nothing live is: the server's inside is not
//! controlled, what it shows decides what the pool learns and so what it
//! draws next, and with several runs at once so does the order in which
//! they end. The seed fixes the draws made before any run has ended (the
//! first `jobs` cases) and nothing after.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use otpsim_core::Kind;
use otpsim_model::invariant::{Invariant, Symptom, Violation};
use otpsim_model::scenario::{Expectation, FaultKind, Scenario, SessionMode, Via};
use otpsim_sim::explore::{aims, coverage, generate, Budget, Pool};
use tokio::task::JoinSet;

use crate::check::{sweep, Order};
use crate::run::{self, LiveError, LiveRun};
use crate::target::Target;

/// How a live search runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// A time, or a number of live runs.
    pub budget: Budget,
    /// The seed of the cases drawn.
    pub seed: u64,
    /// Runs at once, each on its own instances and ports.
    pub jobs: usize,
    /// The longest a case may last in real time, in ms; longer ones are
    /// drawn again.
    pub longest_ms: u64,
    /// How many `check --target` sweeps of each reduced file count its
    /// reproductions.
    pub reruns: usize,
    /// Schedules each of those sweeps may run (`check --schedules`).
    pub schedules: usize,
}

/// A break found live, reduced and rerun.
#[derive(Debug, Clone)]
pub struct LiveFinding {
    /// What broke, and the answer that showed it.
    pub symptom: Symptom,
    /// The reduced case, as a file `check --target` runs.
    pub scenario: Scenario,
    /// The delivery order of the reduced run (`replay --deliveries`);
    /// empty when the file sends more copies than that run did.
    pub deliveries: Vec<u8>,
    /// Why it broke, from the reduced run (before any more copies).
    pub violation: Violation,
    /// Runs of the search up to the first hit, counting it.
    pub runs_to_hit: u64,
    /// Seconds of search up to the first hit.
    pub seconds_to_hit: f64,
    /// Live runs the reduction took.
    pub reduction_runs: u64,
    /// Sweeps of the saved file that showed the symptom, of `reruns`.
    pub reproduced: usize,
    /// Sweeps of the saved file run.
    pub reruns: usize,
    /// How many times over the file sends the reduced case's same-instant
    /// requests: more than 1 when the reduced case lost its race inside
    /// the server on some sweeps and the copies won it on more.
    pub copies: u32,
}

/// What a live search did and found.
#[derive(Debug, Clone, Default)]
pub struct LiveSearch {
    /// Live runs of the search (the reductions and reruns not counted).
    pub runs: u64,
    /// Cases drawn and not run: too long, vacuous or not runnable against
    /// the target.
    pub skipped: u64,
    /// Runs that failed to run (a port taken, an instance that did not
    /// start), with the first such error.
    pub failed: u64,
    /// The first failure.
    pub first_failure: Option<String>,
    /// Wall-clock seconds of the search, the reductions not counted.
    pub seconds: f64,
    /// Sum of the runs' own seconds (start-up included): with several jobs,
    /// more than `seconds`.
    pub run_seconds: f64,
    /// Behaviours seen.
    pub behaviours: usize,
    /// Cases kept for showing a new one.
    pub kept: usize,
    /// One per symptom (an invariant and the answer that showed it), in
    /// the order first hit.
    pub findings: Vec<LiveFinding>,
}

/// `scenario` as a live run against `target` can make it, or `None` when
/// it cannot, would test nothing there, or would last longer than
/// `longest_ms` in real time even compressed.
pub fn for_target(target: &Target, scenario: &Scenario, longest_ms: u64) -> Option<Scenario> {
    let mut s = scenario.clone();
    s.faults.retain(|f| f.kind == FaultKind::Mail);
    match s.deployment.session {
        SessionMode::Server if !target.server_sessions => s.deployment.session = SessionMode::Cookie,
        SessionMode::Cookie if !target.cookie_sessions => s.deployment.session = SessionMode::Server,
        _ => {}
    }
    if !target.routes.contains_key(&Kind::Login) {
        for i in (0..s.requests.len()).rev() {
            if s.requests[i].kind == Kind::Login {
                otpsim_sim::explore::remove_request(&mut s, i);
            }
        }
    }
    if s.requests.is_empty() {
        return None;
    }
    s.browsers = generate::browsers(&s.requests);
    s.expect.clear();
    s.choices = None;
    if run::not_runnable(target, &s).is_some() {
        return None;
    }
    if run::vacuous(target, &s).is_some() {
        return with_the_apps_lifetime(target, s, longest_ms);
    }
    // A lifetime under a second of real time is too short for a real
    // server's own work to stay out of the way (a controlled clock's speed
    // shortens it too): the checker cannot tell which side of its end
    // most sends fall on (`run::PRECISION_MS`).
    let speed = u64::from(target.clock.map_or(1, |c| c.speed));
    let ttl_from_case = target.app.otp_ttl_ms.is_none();
    if ttl_from_case && s.deployment.otp_ttl_ms / speed < MIN_TTL_MS {
        return None;
    }
    let lasts = run::lasts_ms(target, &s);
    if lasts <= longest_ms {
        return Some(s);
    }
    // Too long in real time: where the app takes its code lifetime from
    // the case, the whole case is compressed (every time, delay, latency
    // and the lifetime by one factor), so that each wait keeps its place
    // against the lifetime, down to the floor above.
    if !ttl_from_case {
        return with_the_apps_lifetime(target, s, longest_ms);
    }
    if longest_ms == 0 {
        return None;
    }
    let k = lasts.div_ceil(longest_ms);
    if s.deployment.otp_ttl_ms / k / speed < MIN_TTL_MS {
        return None;
    }
    run::retime(&mut s, |ms| ms / k);
    s.deployment.otp_ttl_ms /= k;
    (run::lasts_ms(target, &s) <= longest_ms).then_some(s)
}

/// `s` with the lifetime its app fixes, where its own would make it
/// vacuous or, stretched to the app's, too long: its times as drawn, its
/// crossings of its own lifetime given up. A drawn case is a shape of
/// requests more than a test of expiry, and skipping every case that
/// outlives its drawn lifetime left an app that fixes minutes (Django's
/// 10) only the cases whose whole timeline fits inside it.
fn with_the_apps_lifetime(target: &Target, mut s: Scenario, longest_ms: u64) -> Option<Scenario> {
    // A case drawn with the app's own lifetime (the generator's 10
    // minutes are Django's) and too long as drawn is compressed too.
    s.deployment.otp_ttl_ms = target.app.otp_ttl_ms?;
    if run::vacuous(target, &s).is_some() || longest_ms == 0 {
        return None;
    }
    let lasts = run::lasts_ms(target, &s);
    if lasts > longest_ms {
        // Rounding down may put two sends of one case at one instant: a
        // race the case as drawn did not have, which is a case too.
        let k = lasts.div_ceil(longest_ms);
        run::retime(&mut s, |ms| ms / k);
    }
    (run::lasts_ms(target, &s) <= longest_ms).then_some(s)
}

/// A first break: the violation and its symptom, the case and the order
/// that broke it, the runs and seconds until then.
type Hit = (Violation, Symptom, Arc<Scenario>, Vec<u8>, u64, f64);

/// How many invariants `hits` break.
fn broken(hits: &[Hit]) -> usize {
    let invariants: BTreeSet<Invariant> = hits.iter().map(|h| h.1.invariant).collect();
    invariants.len()
}

/// The shortest code lifetime a case that sets it may have, in real ms
/// (after a controlled clock's speed).
const MIN_TTL_MS: u64 = 1000;

/// Most draws in a row that may fit nothing before the search says so.
const DRAWS: usize = 10_000;

/// Searches `target` live as `options` say. `progress` hears the runs so
/// far and the invariants broken.
pub async fn search(
    target: &Target,
    options: &Options,
    live: &run::Options,
    progress: &(dyn Fn(u64, usize) + Sync),
) -> Result<LiveSearch, LiveError> {
    let started = Instant::now();
    let target = Arc::new(target.clone());
    let limits = |s: &Scenario| run::limits(&target, s);
    let mut pool = Pool::new(options.seed);
    let mut report = LiveSearch::default();
    let mut hits: Vec<Hit> = Vec::new();
    let mut features = Vec::new();
    let mut in_flight: JoinSet<(Arc<Scenario>, Result<LiveRun, LiveError>)> = JoinSet::new();
    let mut sent = 0u64;
    let over = |sent: u64| match options.budget {
        Budget::Schedules(n) => sent >= n,
        Budget::Time(d) => started.elapsed() >= d,
    };
    loop {
        while in_flight.len() < options.jobs.max(1) && !over(sent) && broken(&hits) < Invariant::ALL.len() {
            let mut fitted = None;
            for _ in 0..DRAWS {
                let (case, choices) = pool.draw();
                if let Some(s) = for_target(&target, &case, options.longest_ms) {
                    fitted = Some((s, choices));
                    break;
                }
                report.skipped += 1;
            }
            let Some((case, choices)) = fitted else {
                return Err(LiveError::NotRunnable(format!(
                    "{DRAWS} drawn cases in a row were too long, vacuous, of a code lifetime under 1 s of real time, or not runnable against this target (a longer --longest, or --speed on a controlled clock, lets more run)"
                )));
            };
            let case = Arc::new(case);
            let (target, live, n) = (Arc::clone(&target), live.clone(), sent as usize);
            in_flight.spawn(async move {
                let result = run::run(&target, &case, &choices, &live, n).await;
                (case, result)
            });
            sent += 1;
        }
        let Some(done) = in_flight.join_next().await else {
            break;
        };
        let (case, result) = done.map_err(|e| LiveError::Io(format!("a live run's task: {e}")))?;
        let ran = match result {
            Ok(ran) => ran,
            Err(LiveError::NotRunnable(_)) => {
                report.skipped += 1;
                continue;
            }
            // An instance that did not start (gunicorn's workers racing to
            // set up one database file), a port taken: the run is lost,
            // not the search; a target or machine that fails most runs is
            // not searched.
            Err(e) => {
                report.failed += 1;
                report.first_failure.get_or_insert(e.to_string());
                if report.failed > 3 + report.runs {
                    return Err(e);
                }
                continue;
            }
        };
        report.runs += 1;
        report.run_seconds += ran.seconds;
        for v in run::violations(&target, &case, &ran) {
            let symptom = Symptom::of(&v, &ran.trace);
            if hits.iter().all(|h| h.1 != symptom) {
                hits.push((
                    v,
                    symptom,
                    Arc::clone(&case),
                    ran.choices.clone(),
                    report.runs,
                    started.elapsed().as_secs_f64(),
                ));
            }
        }
        coverage::features(&ran.trace, limits(&case).otp_ttl_ms, &mut features);
        // A real server has no statement hook, so its run names no write
        // to aim a fault at; it names the guesses it refused and the
        // owners' signups it accepted, numbered as the case ran (its times
        // scaled to the app's).
        let learned = || aims(&run::fitted(&target, &case), &ran.trace);
        pool.learn((Arc::clone(&case), ran.choices), &mut features, learned);
        progress(report.runs, broken(&hits));
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.behaviours = pool.behaviours();
    report.kept = pool.kept();
    // Each symptom's first hit reduced and rerun, `jobs` at a time: they
    // share no files or ports, but they share the machine, whose load
    // decides the server-side races they reproduce.
    let permits = Arc::new(tokio::sync::Semaphore::new(options.jobs.max(1)));
    let mut reductions = JoinSet::new();
    for (k, (hit, symptom, case, choices, runs, seconds)) in hits.into_iter().enumerate() {
        let (target, mut live, options) = (Arc::clone(&target), live.clone(), *options);
        live.scratch = live.scratch.join(format!("reduce-{k}"));
        let permits = Arc::clone(&permits);
        reductions.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let (scenario, deliveries, violation, reduction_runs) =
                reduce(&target, &live, hit, symptom, (*case).clone(), choices).await;
            // `described` may sweep the file in the simulator, a CPU-bound
            // while: off the runtime's threads, which the other
            // reductions' live runs need.
            let describe = |scenario: Scenario, deliveries: Vec<u8>| {
                let (t, v) = (Arc::clone(&target), violation.clone());
                tokio::task::spawn_blocking(move || described(&t, scenario, &v, symptom, runs, &deliveries))
            };
            let reduced = describe(scenario.clone(), deliveries.clone())
                .await
                .expect("describing a finding does not panic");
            let first = reproductions(&target, &reduced, &live, &options, symptom, "rerun").await;
            let mut reproduced = first;
            let (mut kept, mut copies) = (reduced.clone(), 1);
            // A race inside the server that the reduced file loses on some
            // sweeps is tried again with more copies of its same-instant
            // requests (Kettle's single-packet attack sends dozens): kept
            // when more sweeps reproduce it, and then counted again on
            // fresh sweeps, for the best of three tries overstates.
            for more in AMPLIFY {
                if reproduced == options.reruns {
                    break;
                }
                let Some(case) = amplified(&scenario, more).filter(|s| for_target(&target, s, u64::MAX).is_some())
                else {
                    break;
                };
                // The reduced run's delivery order names another schedule
                // once the copies are more.
                let case = describe(case, Vec::new())
                    .await
                    .expect("describing a finding does not panic");
                let again = reproductions(&target, &case, &live, &options, symptom, &format!("rerun-x{more}")).await;
                if again > reproduced {
                    (reproduced, kept, copies) = (again, case, more);
                }
            }
            if copies > 1 {
                // Kept only if fresh sweeps still reproduce it more often
                // than the reduced file's did: else the smaller file.
                let again = reproductions(&target, &kept, &live, &options, symptom, "rerun-kept").await;
                if again > first {
                    reproduced = again;
                } else {
                    (reproduced, kept, copies) = (first, reduced, 1);
                }
            }
            let mut scenario = kept;
            let sent = if copies > 1 {
                format!(
                    ", with the reduced case's same-instant requests sent {copies} times over (the request \
                     numbers above are the reduced case's)"
                )
            } else {
                String::new()
            };
            // A break found on a paused or sped-up app may need the same
            // to reproduce: the file says what its sweeps ran under.
            let under = target.clock.map_or(String::new(), |c| format!(" --speed {}", c.speed))
                + &target.pause.map_or(String::new(), |p| {
                    format!(" --pause {}", crate::pause::as_flag(Some(p)))
                });
            scenario.description = format!(
                "{} Reproduced by {reproduced} of {} sweeps of `check --target{under}`{sent}.",
                scenario.description, options.reruns
            );
            let deliveries = if copies > 1 { Vec::new() } else { deliveries };
            LiveFinding {
                symptom,
                scenario,
                deliveries,
                violation,
                runs_to_hit: runs,
                seconds_to_hit: seconds,
                reduction_runs,
                reproduced,
                reruns: options.reruns,
                copies,
            }
        });
    }
    while let Some(found) = reductions.join_next().await {
        report
            .findings
            .push(found.map_err(|e| LiveError::Io(format!("a reduction's task: {e}")))?);
    }
    report.findings.sort_by_key(|f| f.runs_to_hit);
    Ok(report)
}

/// Live runs a reduction may take, at most.
const REDUCTION_RUNS: u64 = 40;

/// The multiples of a reduced finding's same-instant copies tried when
/// its sweeps do not all reproduce it.
const AMPLIFY: [u32; 2] = [2, 4];

/// Sweeps of `scenario`, of `options.reruns`, that show `symptom`, as
/// `check --target` sweeps a file; each in its own folder named by `tag`.
/// The symptom, not its invariant: a file reduced for one flaw is not
/// reproduced by another that breaks the same invariant.
async fn reproductions(
    target: &Target,
    scenario: &Scenario,
    live: &run::Options,
    options: &Options,
    symptom: Symptom,
    tag: &str,
) -> usize {
    let mut reproduced = 0;
    for n in 0..options.reruns {
        let mut live = live.clone();
        live.scratch = live.scratch.join(format!("{tag}-{n}"));
        if let Ok(swept) = sweep(target, scenario, &live, options.schedules, Order::DepthFirst).await {
            reproduced += usize::from(swept.symptoms.contains(&symptom));
        }
    }
    reproduced
}

/// `scenario` with `copies` times the copies of each request sent at an
/// instant it shares with another copy; `None` when no two copies share
/// one, and no race between requests of one instant is there to win
/// more often. A double-clicked form's copies all reach the server (the
/// browser drops only the abandoned ones' answers), so they are
/// multiplied as a script's are; a form submitted once is left one
/// navigation, not made a double-click.
fn amplified(scenario: &Scenario, copies: u32) -> Option<Scenario> {
    let mut at: BTreeMap<u64, u32> = BTreeMap::new();
    for r in &scenario.requests {
        *at.entry(r.at_ms).or_default() += r.repeat;
    }
    let mut more = scenario.clone();
    let mut multiplied = false;
    for r in more
        .requests
        .iter_mut()
        .filter(|r| at[&r.at_ms] >= 2 && (r.via != Via::Form || r.repeat > 1))
    {
        // A file's `repeat` is at most 100.
        r.repeat = (r.repeat * copies).min(100);
        multiplied = true;
    }
    multiplied.then_some(more)
}

/// Greedy reduction by live runs, as the simulator's explorer reduces:
/// drop a request, a copy, a form, a delay, a fault, a worker; keep each
/// change when two runs in a row, in the finding's delivery order, show
/// `symptom`. Returns the case, its delivery order, the violation
/// of its last breaking run (`hit` if none broke again), and the runs it
/// took.
async fn reduce(
    target: &Target,
    live: &run::Options,
    hit: Violation,
    symptom: Symptom,
    mut scenario: Scenario,
    mut choices: Vec<u8>,
) -> (Scenario, Vec<u8>, Violation, u64) {
    let mut runs = 0u64;
    let mut last: Option<(Violation, Vec<u8>)> = None;
    // Two runs of `s` in `choices`' order, both showing `symptom`: the
    // second's violation and the order it took. Both, because the
    // server's inside is not controlled: a change kept on one lucky run
    // leaves a file its reruns do not reproduce (found live: serve
    // naive's `attempts_limited`, kept on single runs, reproduced 0 of 3).
    // A first run that does not break ends the try.
    async fn breaks(
        target: &Target,
        live: &run::Options,
        symptom: Symptom,
        s: &Scenario,
        choices: &[u8],
        runs: &mut u64,
    ) -> Option<(Violation, Vec<u8>)> {
        if s.requests.is_empty() {
            return None;
        }
        let mut broke = None;
        let (mut breaking, mut lost) = (0, 0);
        while breaking < 2 {
            *runs += 1;
            let ran = match run::run(target, s, choices, live, *runs as usize).await {
                Ok(ran) => ran,
                // A run that failed to run (a port taken, an instance that
                // did not start) says nothing of the case: run it again,
                // once.
                Err(_) if lost == 0 => {
                    lost += 1;
                    continue;
                }
                Err(_) => return None,
            };
            let v = run::violations(target, s, &ran)
                .into_iter()
                .find(|v| Symptom::of(v, &ran.trace) == symptom)?;
            broke = Some((v, ran.choices));
            breaking += 1;
        }
        broke
    }
    loop {
        let mut smaller = false;
        let mut candidates: Vec<Scenario> = Vec::new();
        for i in (0..scenario.requests.len()).rev() {
            let mut s = scenario.clone();
            otpsim_sim::explore::remove_request(&mut s, i);
            s.browsers = generate::browsers(&s.requests);
            candidates.push(s);
        }
        for i in 0..scenario.requests.len() {
            let mut s = scenario.clone();
            let r = &mut s.requests[i];
            if r.repeat > 1 {
                r.repeat -= 1;
            } else if r.via == Via::Form {
                r.via = Via::Fetch;
            } else if r.response_delay_ms + r.email_delay_ms > 0 {
                (r.response_delay_ms, r.email_delay_ms) = (0, 0);
            } else {
                continue;
            }
            candidates.push(s);
        }
        for i in (0..scenario.faults.len()).rev() {
            let mut s = scenario.clone();
            s.faults.remove(i);
            candidates.push(s);
        }
        for simplify in [
            |s: &mut Scenario| s.deployment.workers = 1,
            |s: &mut Scenario| s.deployment.mail_latency_ms = 0,
        ] {
            let mut s = scenario.clone();
            simplify(&mut s);
            if s.deployment != scenario.deployment {
                candidates.push(s);
            }
        }
        for s in candidates {
            if runs >= REDUCTION_RUNS {
                break;
            }
            // A candidate must still be a case the target can run.
            if for_target(target, &s, u64::MAX).is_none() {
                continue;
            }
            if let Some(hit) = breaks(target, live, symptom, &s, &choices, &mut runs).await {
                choices.clone_from(&hit.1);
                last = Some(hit);
                scenario = s;
                smaller = true;
                break;
            }
        }
        if !smaller || runs >= REDUCTION_RUNS {
            break;
        }
    }
    // The reduced case's own run, for its violation and order, if no
    // reduction step ran one.
    let (violation, taken) = match last {
        Some(hit) => hit,
        None => match breaks(target, live, symptom, &scenario, &choices, &mut runs).await {
            Some(hit) => hit,
            None => (hit, choices),
        },
    };
    let mut deliveries = taken;
    while deliveries.last() == Some(&0) {
        deliveries.pop();
    }
    // The requests in the order they are sent, as a file lists them.
    let mut order: Vec<usize> = (0..scenario.requests.len()).collect();
    order.sort_by_key(|&i| scenario.requests[i].at_ms);
    let requests = order.iter().map(|&i| scenario.requests[i].clone()).collect();
    scenario.requests = requests;
    for fault in &mut scenario.faults {
        fault.request = order.iter().position(|&i| i == fault.request).unwrap_or(fault.request);
    }
    (scenario, deliveries, violation, runs)
}

/// The reduced case as a file: named and described by what found it,
/// expecting the failure of the variant the target is judged as.
fn described(
    target: &Target,
    mut s: Scenario,
    violation: &Violation,
    symptom: Symptom,
    runs: u64,
    deliveries: &[u8],
) -> Scenario {
    s.path = std::path::PathBuf::from(format!("{}-{}.toml", target_stem(target), violation.invariant));
    s.name = format!("{} breaks {symptom}: found by otpsim explore --target", target.name);
    let order: Vec<String> = deliveries.iter().map(u8::to_string).collect();
    let replay = if order.is_empty() {
        String::new()
    } else {
        format!(" (the order that broke it: replay --deliveries {})", order.join(","))
    };
    s.description = format!(
        "Found live against {} by `otpsim explore --target` after {runs} runs, then reduced by live reruns{replay}. {}",
        target.path.display(),
        otpsim_sim::explore::sentence(&violation.why)
    );
    s.choices = None;
    s.expect = match target.expect {
        Some(v) => vec![(v, Expectation::FailOn(violation.invariant))],
        // An app of its own has no variant to name, and a file must name
        // one: it names the simulator's recommended design with what its
        // own sweep of the file finds, so that `otpsim check FILE` holds,
        // and `check --target` (which judges such a target as "nothing
        // broken") fails for as long as the app has the flaw.
        None => {
            let idempotent = otpsim_core::Variant::Idempotent;
            let file = Arc::new(s.clone());
            let found = otpsim_sim::sweep::sweep(
                &file,
                &idempotent,
                otpsim_sim::schedule::Strategy::default(),
                file.schedules,
                file.seed,
                |_| false,
            )
            .violated();
            let expected = match found.first() {
                None => Expectation::Pass,
                Some(i) => Expectation::FailOn(*i),
            };
            vec![(idempotent, expected)]
        }
    };
    s
}

/// The stems the findings of `symptoms` are saved under, in order: the
/// first of an invariant's as `TARGET-INVARIANT`, the name files had
/// before findings were told apart by their answers, and a later one's
/// as `TARGET-INVARIANT-ANSWER`.
pub fn file_stems(target: &Target, symptoms: impl IntoIterator<Item = Symptom>) -> Vec<String> {
    let stem = target_stem(target);
    let mut named: Vec<Invariant> = Vec::new();
    symptoms
        .into_iter()
        .map(|symptom| {
            let invariant = symptom.invariant;
            if named.contains(&invariant) {
                let answer = symptom.answer.map_or("unanswered", |c| c.as_str());
                format!("{stem}-{invariant}-{answer}")
            } else {
                named.push(invariant);
                format!("{stem}-{invariant}")
            }
        })
        .collect()
}

/// A file name's stem for the target: its file's.
pub fn target_stem(target: &Target) -> String {
    target
        .path
        .file_stem()
        .map_or("target".to_string(), |s| s.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use otpsim_core::Variant;

    use super::*;

    fn target(file: &str) -> Target {
        Target::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets").join(file)).unwrap()
    }

    /// A finding written to a file loads again, and says what to expect.
    fn saved(target: &Target, scenario: &str) -> Scenario {
        let case = Scenario::parse(Path::new("case.toml"), scenario).unwrap();
        let violation = Violation {
            invariant: Invariant::VerifySucceeds,
            request: Some(2),
            why: "verify #2 was refused.".into(),
        };
        let symptom = Symptom {
            invariant: violation.invariant,
            answer: Some(otpsim_core::Code::InvalidOtp),
        };
        let text = described(target, case, &violation, symptom, 7, &[1]).to_toml();
        Scenario::parse(Path::new("found.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    const SIGNUP_THEN_VERIFY: &str = "format = 2\nname = \"n\"\n[[request]]\nat = \"0s\"\nkind = \"signup\"\nemail = \"ana@example.com\"\n[[request]]\nat = \"1s\"\nkind = \"verify\"\nemail = \"ana@example.com\"\n[expect]\nnaive = \"pass\"\n";

    #[test]
    fn a_finding_on_an_app_of_its_own_names_the_recommended_design_and_what_it_does() {
        // An app nobody here wrote has no variant: the file once came out
        // with an empty [expect], which no command could load.
        let found = saved(&target("express.toml"), SIGNUP_THEN_VERIFY);
        assert_eq!(found.expect, vec![(Variant::Idempotent, Expectation::Pass)]);
        let on_serve = saved(&target("otpsim-naive.toml"), SIGNUP_THEN_VERIFY);
        assert_eq!(
            on_serve.expect,
            vec![(Variant::Naive, Expectation::FailOn(Invariant::VerifySucceeds))]
        );
    }

    #[test]
    fn a_later_finding_of_an_invariant_is_saved_under_its_answer_too() {
        use otpsim_core::Code;
        let symptom = |invariant, answer| Symptom { invariant, answer };
        let stems = file_stems(
            &target("django.toml"),
            [
                symptom(Invariant::VerifySucceeds, Some(Code::ServerError)),
                symptom(Invariant::NoOrphans, None),
                symptom(Invariant::VerifySucceeds, Some(Code::NoRegistration)),
                symptom(Invariant::VerifySucceeds, None),
            ],
        );
        assert_eq!(
            stems,
            [
                "django-verify_succeeds",
                "django-no_orphans",
                "django-verify_succeeds-no_registration",
                "django-verify_succeeds-unanswered",
            ]
        );
    }

    /// `target` on a clock `speed` times as fast, as `--speed` sets it.
    fn at_speed(mut target: Target, speed: u32) -> Target {
        target.clock = Some(crate::clock::FakeClock {
            start_unix_ms: crate::clock::DEFAULT_START_UNIX_MS,
            speed,
        });
        target
    }

    /// Ana's signup, a verify at `verify_at`, a login at `login_at`, codes
    /// that live `ttl`.
    fn case(ttl: &str, verify_at: &str, login_at: &str) -> Scenario {
        let text = format!(
            "format = 2\nname = \"n\"\n[deployment]\notp_ttl = \"{ttl}\"\n[[request]]\nat = \"0s\"\nkind = \"signup\"\nemail = \"ana@example.com\"\n[[request]]\nat = \"{verify_at}\"\nkind = \"verify\"\nemail = \"ana@example.com\"\n[[request]]\nat = \"{login_at}\"\nkind = \"login\"\nemail = \"ana@example.com\"\n[expect]\nnaive = \"pass\"\n"
        );
        Scenario::parse(Path::new("case.toml"), &text).unwrap()
    }

    #[test]
    fn a_case_that_outlives_its_drawn_lifetime_runs_with_the_lifetime_the_app_fixes() {
        // Django fixes 10 minutes. A case whose login comes after its own
        // 4 s would be vacuous there, and stretched to 10 minutes it lasts
        // 300 s even at x10: it used to be skipped.
        let django = at_speed(target("django.toml"), 10);
        let drawn = case("4s", "2s", "20s");
        let fitted = for_target(&django, &drawn, 5_000).expect("runs with Django's lifetime");
        assert_eq!(fitted.deployment.otp_ttl_ms, 600_000);
        let at: Vec<u64> = fitted.requests.iter().map(|r| r.at_ms).collect();
        assert_eq!(at, vec![0, 2_000, 20_000], "2 s of real time at x10: as drawn");
        assert!(run::vacuous(&django, &fitted).is_none());

        // Too long as drawn (120 s is 12 s of real time at x10): compressed
        // to the longest, the lifetime left at the app's.
        let fitted = for_target(&django, &case("4s", "30s", "120s"), 5_000).expect("compressed");
        assert_eq!(fitted.deployment.otp_ttl_ms, 600_000);
        let at: Vec<u64> = fitted.requests.iter().map(|r| r.at_ms).collect();
        assert_eq!(at, vec![0, 10_000, 40_000]);
        assert!(run::lasts_ms(&django, &fitted) <= 5_000);

        // On the real clock nothing is stretched: the case was vacuous.
        let real = for_target(&target("django.toml"), &drawn, 5_000);
        let real = real.expect("runs with Django's lifetime on the real clock too");
        assert_eq!(real.deployment.otp_ttl_ms, 600_000);
        let at: Vec<u64> = real.requests.iter().map(|r| r.at_ms).collect();
        assert_eq!(at, vec![0, 500, 5_000], "20 s of real time, compressed 4 times");

        // Drawn with Django's own lifetime and too long: compressed, not
        // skipped.
        let own = for_target(&django, &case("10m", "30s", "120s"), 5_000).expect("compressed");
        assert_eq!(own.deployment.otp_ttl_ms, 600_000);
        assert!(run::lasts_ms(&django, &own) <= 5_000);

        // A case that fits stretched keeps its crossing of the lifetime:
        // at x100, 20 s stretched by 600/4 is 30 s of real time.
        let fast = at_speed(target("django.toml"), 100);
        let stretched = for_target(&fast, &drawn, 30_000).expect("fits stretched");
        assert_eq!(stretched.deployment.otp_ttl_ms, 4_000, "stretched when it runs");
        assert!(run::scale(&fast, &stretched).is_some());

        // Where the app takes its lifetime from the case, nothing changes:
        // the case keeps its own, compressed with its times.
        let flask = at_speed(target("flask-original.toml"), 10);
        let own = for_target(&flask, &case("20s", "30s", "120s"), 5_000);
        assert!(
            own.is_none(),
            "a 20 s lifetime compressed 3 times is under a second of real time"
        );
        let own = for_target(&flask, &case("40s", "30s", "120s"), 5_000).expect("compressed");
        assert_eq!(own.deployment.otp_ttl_ms, 13_333, "40 s over 3");
    }

    #[test]
    fn copies_are_multiplied_only_where_they_share_an_instant() {
        let lone = Scenario::parse(Path::new("lone.toml"), SIGNUP_THEN_VERIFY).unwrap();
        assert!(amplified(&lone, 2).is_none(), "no two copies share an instant");
        let text = "format = 2\nname = \"n\"\n[[request]]\nat = \"0s\"\nkind = \"signup\"\nemail = \"ana@example.com\"\n[[request]]\nat = \"2s\"\nkind = \"signup\"\nemail = \"ana@example.com\"\nrepeat = 2\n[[request]]\nat = \"2s\"\nkind = \"verify\"\nemail = \"ana@example.com\"\nvia = \"form\"\nrepeat = 3\n[[request]]\nat = \"5s\"\nkind = \"verify\"\nemail = \"ana@example.com\"\nrepeat = 2\n[expect]\nnaive = \"pass\"\n";
        let race = Scenario::parse(Path::new("race.toml"), text).unwrap();
        let more = amplified(&race, 4).unwrap();
        let copies: Vec<u32> = more.requests.iter().map(|r| r.repeat).collect();
        // The lone signup at 0 s is not multiplied; the form's copies are,
        // for every one of them reaches the server.
        assert_eq!(copies, vec![1, 8, 12, 8]);
        let mut one_form = race.clone();
        one_form.requests.retain(|r| r.at_ms == 2_000);
        one_form.requests[1].repeat = 1;
        let more = amplified(&one_form, 2).unwrap();
        // A form submitted once stays one navigation.
        assert_eq!((more.requests[0].repeat, more.requests[1].repeat), (4, 1));
    }
}
