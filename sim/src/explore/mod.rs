//! Searching generated scenarios: cases (a scenario and the choices of
//! its schedule) are drawn, the world runs each, and a violation of an
//! invariant not yet found is reduced to a minimal file. Two ways to draw,
//! one a file: [`learn`] keeps the cases that show new behaviour and
//! mutates them (the default), [`blind`] draws every case afresh.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use otpsim_core::{Flow, Variant};

use crate::invariant::{Invariant, Violation};
use crate::jobs::Shard;
use crate::scenario::{Deployment, Expectation, Scenario, SessionMode};
use crate::sweep::{replay, Counterexample, Replay};
use crate::world::RunOutcome;

mod blind;
pub mod coverage;
pub mod generate;
mod learn;
pub use learn::Pool;
mod mutate;
pub use mutate::{aims, remove_request, Aim};

/// proptest's generator for a round's fresh cases, from the round's seed.
pub(super) fn seeded(seed: u64) -> proptest::test_runner::TestRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &bytes)
}

/// One generated case's single schedule, with the choices it took.
pub(super) fn run_choices<F: Flow>(
    scenario: &Arc<Scenario>,
    flow: &F,
    choices: Vec<u8>,
) -> (RunOutcome, Vec<Violation>, Vec<u8>) {
    replay(scenario, flow, scenario.seed, &choices, 1)
}

/// A violation found and shrunk.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The invariant.
    pub invariant: Invariant,
    /// Schedules run before the first (unshrunk) hit, counting it.
    pub schedules_to_hit: u64,
    /// Seconds of search to the first hit: within its round, or, in a
    /// search's report, with every earlier round's seconds added.
    pub seconds_to_hit: f64,
    /// The minimal scenario, with its schedule pinned and the failure expected.
    pub scenario: Scenario,
    /// The minimal run: its choices, why it broke, its trace.
    pub counterexample: Counterexample,
}

impl Finding {
    /// The finding a saved file records: `scenario`, with its schedule
    /// pinned, replayed against `flow`; `None` if it does not break
    /// `invariant`. How a merge of shards gets back the findings each
    /// shard saved.
    pub fn replayed<F: Flow>(
        flow: &F,
        invariant: Invariant,
        scenario: Scenario,
        schedules_to_hit: u64,
        seconds_to_hit: f64,
    ) -> Option<Finding> {
        let choices = scenario.choices.clone()?;
        let (outcome, violations, _) = run_choices(&Arc::new(scenario.clone()), flow, choices.clone());
        violations.iter().any(|v| v.invariant == invariant).then(|| Finding {
            invariant,
            schedules_to_hit,
            seconds_to_hit,
            counterexample: Counterexample {
                replay: Replay::Schedule {
                    flow: flow.to_string(),
                    seed: scenario.seed,
                    schedule: 0,
                    position: 1,
                    choices,
                },
                violations,
                trace: outcome.trace,
            },
            scenario,
        })
    }

    /// Why it broke, in a sentence.
    pub fn violation(&self) -> &Violation {
        self.counterexample
            .violations
            .iter()
            .find(|v| v.invariant == self.invariant)
            .unwrap_or(&self.counterexample.violations[0])
    }
}

/// What one search of one flow found: its rounds, and what they add up to.
#[derive(Debug, Clone)]
pub struct SearchReport {
    /// The flow's name.
    pub flow: String,
    /// Schedules run, over every round: the cases and proptest's
    /// shrinking (the greedy reduction of each finding is not counted).
    pub schedules: u64,
    /// Seconds of search, over every round (on several threads, more
    /// than the wall-clock time).
    pub seconds: f64,
    /// One finding per invariant broken: the earliest round's, counted
    /// from the start of round 0 as if the rounds had run one after the
    /// other.
    pub findings: Vec<Finding>,
    /// The rounds run, in order.
    pub rounds: Vec<Round>,
}

impl SearchReport {
    /// What `rounds` add up to, whichever thread or machine ran each.
    pub fn from_rounds(flow: String, mut rounds: Vec<Round>) -> SearchReport {
        rounds.sort_by_key(|r| r.index);
        let (mut schedules, mut seconds) = (0, 0.0);
        let mut findings: Vec<Finding> = Vec::new();
        for round in &rounds {
            for f in &round.findings {
                if findings.iter().all(|known| known.invariant != f.invariant) {
                    findings.push(Finding {
                        schedules_to_hit: schedules + f.schedules_to_hit,
                        seconds_to_hit: seconds + f.seconds_to_hit,
                        ..f.clone()
                    });
                }
            }
            schedules += round.schedules;
            seconds += round.seconds;
        }
        SearchReport {
            flow,
            schedules,
            seconds,
            findings,
            rounds,
        }
    }
}

/// One round of a search: an independent search of up to
/// [`Options::round`] schedules from a seed of its own.
#[derive(Debug, Clone)]
pub struct Round {
    /// Its place in the search, from 0.
    pub index: u64,
    /// Schedules run.
    pub schedules: u64,
    /// Seconds spent.
    pub seconds: f64,
    /// What it found, counted from its own start.
    pub findings: Vec<Finding>,
}

/// How a search runs. A search is a sequence of rounds, each an
/// independent search from its own seed (round 0 from the search's seed
/// itself): rounds run on every core and split across shards, and what
/// the search reports is what the rounds add up to in order, whoever ran
/// them, so neither `jobs` nor `shard` changes it.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How cases are drawn.
    pub guide: Guide,
    /// How long, for each flow: a time, or schedules over every round
    /// (and every shard).
    pub budget: Budget,
    /// The seed of round 0; every other round's comes from it.
    pub seed: u64,
    /// Schedules in a round. Smaller rounds spread over more threads and
    /// shards; larger ones let the learning search build on more.
    pub round: u64,
    /// Threads, each running one round at a time.
    pub jobs: usize,
    /// The rounds this machine runs: every N-th, from the I-th.
    pub shard: Shard,
}

/// The default [`Options::round`].
pub const ROUND: u64 = 20_000;

impl Options {
    /// The whole search on one thread, learning, rounds of [`ROUND`].
    pub fn new(budget: Budget, seed: u64) -> Options {
        Options {
            guide: Guide::default(),
            budget,
            seed,
            round: ROUND,
            jobs: 1,
            shard: Shard::ALL,
        }
    }

    /// The seed of round `index`.
    pub fn round_seed(&self, index: u64) -> u64 {
        if index == 0 {
            self.seed
        } else {
            otpsim_core::ports::SplitMix64::new(self.seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64()
        }
    }
}

/// Where one round stops: a number of schedules, or a time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limit {
    schedules: u64,
    deadline: Option<Instant>,
}

impl Limit {
    pub(super) fn reached(&self, schedules: u64) -> bool {
        schedules >= self.schedules || self.deadline.is_some_and(|d| Instant::now() >= d) || interrupted()
    }
}

/// Set by [`interrupt`]: every round stops at its next schedule.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks every search in the process to stop at its next schedule and
/// report what it found so far (the command line calls it on Ctrl-C).
/// It only stores to an atomic, so a signal handler may call it.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Whether [`interrupt`] was called.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Where a round's findings came from, for the saved file's description.
#[derive(Debug, Clone, Copy)]
pub(super) struct Origin {
    pub(super) seed: u64,
    pub(super) round: u64,
}

/// How long a search runs: wall-clock time, or a number of schedules
/// (the cases and proptest's shrinking; the greedy reduction of each
/// finding runs on top, bounded by the finding's size). With a count, what the search finds is a pure
/// function of the seed and the count, whatever the machine's load: what
/// tests and CI should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Budget {
    /// Until this much time has passed.
    Time(Duration),
    /// Until this many schedules have run.
    Schedules(u64),
}

impl Budget {
    /// One part in `parts` of the budget.
    pub fn split(self, parts: u32) -> Budget {
        match self {
            Budget::Time(d) => Budget::Time(d / parts.max(1)),
            Budget::Schedules(n) => Budget::Schedules(n / u64::from(parts.max(1))),
        }
    }
    /// Whether nothing is to be run at all.
    pub fn is_zero(self) -> bool {
        matches!(self, Budget::Time(d) if d.is_zero()) || self == Budget::Schedules(0)
    }
}

impl std::str::FromStr for Budget {
    type Err = String;
    /// "30s", "2m", "1500ms": a time; "20000": a number of schedules.
    fn from_str(s: &str) -> Result<Budget, String> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(Budget::Schedules).map_err(|e| format!("{s:?}: {e}"));
        }
        crate::scenario::parse_duration(s)
            .map(|ms| Budget::Time(Duration::from_millis(ms)))
            .ok_or_else(|| format!("{s:?} is neither a duration (30s, 1500ms, 2m) nor a number of schedules (20000)"))
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::Time(d) => write!(f, "{:.1} s", d.as_secs_f64()),
            Budget::Schedules(n) => write!(f, "{n} schedules"),
        }
    }
}

/// How the search draws its cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Guide {
    /// Keep every case that shows new behaviour (see [`coverage`]) and
    /// mutate the kept ones, drawing a fresh case one time in four.
    #[default]
    Coverage,
    /// Every case drawn afresh by proptest, each failure shrunk by it.
    Blind,
}

impl std::str::FromStr for Guide {
    type Err = String;
    fn from_str(s: &str) -> Result<Guide, String> {
        match s {
            "coverage" => Ok(Guide::Coverage),
            "blind" => Ok(Guide::Blind),
            _ => Err(format!("{s:?}: expected coverage or blind")),
        }
    }
}

impl std::fmt::Display for Guide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Guide::Coverage => "coverage",
            Guide::Blind => "blind",
        })
    }
}

/// Searches `flow` as `options` say. `progress` is told, now and then,
/// the schedules run so far and the most invariants one round has found.
pub fn search<F: Flow>(flow: &F, options: &Options, progress: &(dyn Fn(u64, usize) + Sync)) -> SearchReport {
    let start = Instant::now();
    let round_size = options.round.max(1);
    let (total, deadline) = match options.budget {
        Budget::Schedules(n) => (Some(n.div_ceil(round_size)), None),
        Budget::Time(d) => (None, Some(start + d)),
    };
    // This shard's k-th round.
    let mine = |k: u64| k * options.shard.count as u64 + options.shard.index as u64 - 1;
    let ran = AtomicU64::new(0);
    let found = AtomicUsize::new(0);
    let run = |&index: &u64| {
        let limit = Limit {
            schedules: match options.budget {
                Budget::Schedules(n) => round_size.min(n - index * round_size),
                Budget::Time(_) => round_size,
            },
            deadline,
        };
        let origin = Origin {
            seed: options.seed,
            round: index,
        };
        let last = std::cell::Cell::new(0);
        let tick = |schedules: u64, known: usize| {
            // This round's new schedules, added to every round's total.
            let new = schedules - last.replace(schedules);
            let all = ran.fetch_add(new, Ordering::Relaxed) + new;
            progress(all, found.fetch_max(known, Ordering::Relaxed).max(known));
        };
        let started = Instant::now();
        let seed = options.round_seed(index);
        let (schedules, findings) = match options.guide {
            Guide::Coverage => learn::round(flow, limit, seed, origin, &tick),
            Guide::Blind => blind::round(flow, limit, seed, origin, &tick),
        };
        Round {
            index,
            schedules,
            seconds: started.elapsed().as_secs_f64(),
            findings,
        }
    };
    let rounds = match total {
        // Every round known at the start: the threads take them in turn.
        Some(total) => {
            let rounds: Vec<u64> = (0..).map(mine).take_while(|r| *r < total).collect();
            crate::jobs::map(&rounds, options.jobs, run)
        }
        // Until the time is up: a wave of one round a thread at a time.
        None => {
            let mut rounds = Vec::new();
            for wave in 0.. {
                if deadline.is_some_and(|d| Instant::now() >= d) || interrupted() {
                    break;
                }
                let jobs = options.jobs.max(1) as u64;
                let indices: Vec<u64> = (wave * jobs..(wave + 1) * jobs).map(mine).collect();
                rounds.extend(crate::jobs::map(&indices, options.jobs, run));
            }
            rounds
        }
    };
    SearchReport::from_rounds(flow.to_string(), rounds)
}

/// Reduces a case that breaks `invariant` and turns it into a pinned,
/// self-describing scenario.
pub(super) fn minimal<F: Flow>(
    flow: &F,
    (mut scenario, choices): (Scenario, Vec<u8>),
    invariant: Invariant,
    origin: Origin,
    schedules_to_hit: u64,
    seconds_to_hit: f64,
) -> Option<Finding> {
    let (reduced, choices) = reduce(flow, invariant, scenario, choices);
    scenario = reduced;
    // Only the people who still act, and the requests in the order they
    // are sent (a stable sort: requests sent at the same instant keep
    // their order, and so the run is the same).
    scenario.browsers = generate::browsers(&scenario.requests);
    let mut order: Vec<usize> = (0..scenario.requests.len()).collect();
    order.sort_by_key(|&i| scenario.requests[i].at_ms);
    scenario.requests = order.iter().map(|&i| scenario.requests[i].clone()).collect();
    for fault in &mut scenario.faults {
        fault.request = order.iter().position(|&i| i == fault.request).unwrap_or(fault.request);
    }
    let shared = Arc::new(scenario.clone());
    let (_, violations, mut taken) = run_choices(&shared, flow, choices);
    let violation = violations.iter().find(|v| v.invariant == invariant)?.clone();
    while taken.last() == Some(&0) {
        taken.pop();
    }
    let requests: u32 = scenario.requests.iter().map(|r| r.repeat).sum();
    scenario.name = format!("{flow} breaks {}: found by otpsim explore", violation.invariant);
    let found = match origin.round {
        0 => format!(
            "Found by `otpsim explore --seed {}` after {schedules_to_hit} schedules",
            origin.seed
        ),
        r => format!(
            "Found by `otpsim explore --seed {}` after {schedules_to_hit} schedules of round {r}",
            origin.seed
        ),
    };
    scenario.description = format!(
        "{found}, then shrunk to {requests} requests and {} scheduling choices. {}",
        taken.len(),
        sentence(&violation.why)
    );
    scenario.choices = Some(taken.clone());
    // A file can expect a failure only of a flow its loader knows: the
    // project's variants. A user's own flow gets a file without [expect].
    scenario.expect = flow
        .to_string()
        .parse::<Variant>()
        .map(|v| vec![(v, Expectation::FailOn(violation.invariant))])
        .unwrap_or_default();
    Finding::replayed(flow, violation.invariant, scenario, schedules_to_hit, seconds_to_hit)
}

/// Greedy reduction after proptest's shrinking, which can stall in a local
/// minimum: drop a request, a copy, a fault, a delay, a choice, for as long
/// as the same invariant still breaks.
fn reduce<F: Flow>(
    flow: &F,
    invariant: Invariant,
    mut scenario: Scenario,
    mut choices: Vec<u8>,
) -> (Scenario, Vec<u8>) {
    let breaks = |s: &Scenario, c: &[u8]| {
        !s.requests.is_empty()
            && run_choices(&Arc::new(s.clone()), flow, c.to_vec())
                .1
                .iter()
                .any(|v| v.invariant == invariant)
    };
    // A smaller scenario has other decision points, so the old choices may
    // no longer line up: look for a schedule that still breaks it.
    let rescheduled = |s: &Scenario, c: &[u8]| -> Option<Vec<u8>> {
        if breaks(s, c) {
            return Some(c.to_vec());
        }
        let mut rng = otpsim_core::ports::SplitMix64::new(0x5eed);
        (0..RESCHEDULE_TRIES)
            .map(|_| (0..48).map(|_| (rng.next_u64() % 4) as u8).collect::<Vec<u8>>())
            .find(|c| breaks(s, c))
    };
    loop {
        let mut smaller = false;
        for i in (0..scenario.requests.len()).rev() {
            let mut s = scenario.clone();
            s.requests.remove(i);
            s.faults.retain(|f| f.request != i);
            s.faults
                .iter_mut()
                .filter(|f| f.request > i)
                .for_each(|f| f.request -= 1);
            if let Some(c) = rescheduled(&s, &choices) {
                (scenario, choices) = (s, c);
                smaller = true;
            }
        }
        for i in 0..scenario.requests.len() {
            let mut s = scenario.clone();
            let r = &mut s.requests[i];
            if r.repeat > 1 {
                r.repeat -= 1;
            } else if r.via == crate::scenario::Via::Form {
                r.via = crate::scenario::Via::Fetch;
            } else if r.response_delay_ms + r.email_delay_ms > 0 {
                (r.response_delay_ms, r.email_delay_ms) = (0, 0);
            } else {
                continue;
            }
            if let Some(c) = rescheduled(&s, &choices) {
                (scenario, choices) = (s, c);
                smaller = true;
            }
        }
        // The plainest deployment a file can have, one setting at a time:
        // one worker, cookie sessions, instant mail, the default code
        // lifetime and attempt limit.
        for simplify in [
            |d: &mut Deployment| d.workers = 1,
            |d: &mut Deployment| d.session = SessionMode::Cookie,
            |d: &mut Deployment| d.mail_latency_ms = 0,
            |d: &mut Deployment| d.otp_ttl_ms = 600_000,
            |d: &mut Deployment| d.max_attempts = 5,
            |d: &mut Deployment| d.db_mode = otpsim_core::DbMode::Autocommit,
        ] {
            let mut s = scenario.clone();
            simplify(&mut s.deployment);
            if s.deployment != scenario.deployment && breaks(&s, &choices) {
                scenario = s;
                smaller = true;
            }
        }
        // Up to two faults and a crash: drop them one at a time.
        for i in (0..scenario.faults.len()).rev() {
            let mut s = scenario.clone();
            s.faults.remove(i);
            if let Some(c) = rescheduled(&s, &choices) {
                (scenario, choices) = (s, c);
                smaller = true;
            }
        }
        for i in (0..choices.len()).rev() {
            let mut c = choices.clone();
            c.remove(i);
            if breaks(&scenario, &c) {
                choices = c;
                smaller = true;
            } else if choices[i] > 0 {
                let mut c = choices.clone();
                c[i] = 0;
                if breaks(&scenario, &c) {
                    choices = c;
                    smaller = true;
                }
            }
        }
        if !smaller {
            return (scenario, choices);
        }
    }
}

/// Random schedules tried for a smaller scenario before giving it up.
const RESCHEDULE_TRIES: usize = 200;

/// `why` as a sentence: a capital first letter, a full stop last.
pub fn sentence(why: &str) -> String {
    let mut s = why.to_string();
    if let Some(first) = s.get(..1) {
        s.replace_range(..1, &first.to_uppercase());
    }
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}
