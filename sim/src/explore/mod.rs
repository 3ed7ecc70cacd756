//! Searching generated scenarios: proptest draws a scenario and a schedule
//! together, the world runs it, and a violation of an invariant not yet
//! found is a failing case that proptest shrinks, scenario and interleaving
//! at once, to a minimal file.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use otpsim_core::{Flow, Variant};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::invariant::{Invariant, Violation};
use crate::scenario::{Expectation, Scenario};
use crate::schedule::Strategy;
use crate::sweep::{replay, Counterexample};
use crate::world::RunOutcome;

pub mod generate;

use generate::scenario_and_choices;

/// One generated case's single schedule, with the choices it took.
fn run_choices<F: Flow>(scenario: &Arc<Scenario>, flow: &F, choices: Vec<u8>) -> (RunOutcome, Vec<Violation>, Vec<u8>) {
    replay(scenario, flow, scenario.seed, &choices, 1)
}

/// A violation found and shrunk.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The invariant.
    pub invariant: Invariant,
    /// Schedules run before the first (unshrunk) hit, counting it.
    pub schedules_to_hit: u64,
    /// Seconds from the start of the search to the first hit.
    pub seconds_to_hit: f64,
    /// The minimal scenario, with its schedule pinned and the failure expected.
    pub scenario: Scenario,
    /// The minimal run: its choices, why it broke, its trace.
    pub counterexample: Counterexample,
}

impl Finding {
    /// Why it broke, in a sentence.
    pub fn violation(&self) -> &Violation {
        self.counterexample
            .violations
            .iter()
            .find(|v| v.invariant == self.invariant)
            .unwrap_or(&self.counterexample.violations[0])
    }
}

/// What one search of one flow found.
#[derive(Debug, Clone)]
pub struct SearchReport {
    /// The flow's name.
    pub flow: String,
    /// Schedules run: the search's cases and proptest's shrinking (the
    /// greedy reduction of each finding after it is not counted).
    pub schedules: u64,
    /// Wall-clock seconds spent.
    pub seconds: f64,
    /// One finding per invariant broken.
    pub findings: Vec<Finding>,
}

/// How long a search runs: wall-clock time, or a number of schedules
/// (the cases and proptest's shrinking; the greedy reduction of each
/// finding runs on top, bounded by the finding's size). With a count, what the search finds is a pure
/// function of the seed and the count, whatever the machine's load: what
/// tests and CI should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Searches `flow` within `budget`, from `seed`. `progress` is told the
/// schedules run so far and the invariants found, now and then.
pub fn search<F: Flow>(flow: &F, budget: Budget, seed: u64, progress: &dyn Fn(u64, usize)) -> SearchReport {
    let start = Instant::now();
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases: 64,
        failure_persistence: None,
        max_shrink_iters: 4096,
        max_global_rejects: 1 << 20,
        ..Config::default()
    };
    // A runner counts its cases once; each batch gets a fresh runner whose
    // generator comes from the seeded master one, so batches stay determined
    // by the seed.
    let mut master = TestRunner::new_with_rng(config.clone(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let strategy = scenario_and_choices();
    let known: RefCell<BTreeSet<Invariant>> = RefCell::default();
    let schedules = Cell::new(0u64);
    let first_hit: Cell<Option<(u64, f64)>> = Cell::new(None);
    let mut findings = Vec::new();
    let spent = || match budget {
        Budget::Time(d) => start.elapsed() >= d,
        Budget::Schedules(n) => schedules.get() >= n,
    };
    while !spent() && known.borrow().len() < Invariant::ALL.len() {
        first_hit.set(None);
        let mut runner = TestRunner::new_with_rng(config.clone(), master.new_rng());
        let result = runner.run(&strategy, |(scenario, choices)| {
            // Once the budget is spent, pass the remaining cases unrun; a
            // shrink in progress still runs to its end.
            if first_hit.get().is_none() && spent() {
                return Ok(());
            }
            schedules.set(schedules.get() + 1);
            let (_, violations, _) = run_choices(&Arc::new(scenario), flow, choices);
            match violations.iter().find(|v| !known.borrow().contains(&v.invariant)) {
                None => Ok(()),
                Some(v) => {
                    if first_hit.get().is_none() {
                        first_hit.set(Some((schedules.get(), start.elapsed().as_secs_f64())));
                    }
                    Err(TestCaseError::fail(v.invariant.name()))
                }
            }
        });
        progress(schedules.get(), known.borrow().len());
        match result {
            Ok(()) => {}
            Err(TestError::Abort(_)) => break,
            Err(TestError::Fail(_, (scenario, choices))) => {
                let (schedules_to_hit, seconds_to_hit) = first_hit.get().unwrap_or((schedules.get(), 0.0));
                let known_now = known.borrow().clone();
                if let Some(finding) = minimal(
                    flow,
                    scenario,
                    choices,
                    &known_now,
                    seed,
                    schedules_to_hit,
                    seconds_to_hit,
                ) {
                    known.borrow_mut().insert(finding.invariant);
                    findings.push(finding);
                }
            }
        }
    }
    SearchReport {
        flow: flow.to_string(),
        schedules: schedules.get(),
        seconds: start.elapsed().as_secs_f64(),
        findings,
    }
}

/// Turns proptest's minimal case into a pinned, self-describing scenario.
fn minimal<F: Flow>(
    flow: &F,
    mut scenario: Scenario,
    choices: Vec<u8>,
    known: &BTreeSet<Invariant>,
    seed: u64,
    schedules_to_hit: u64,
    seconds_to_hit: f64,
) -> Option<Finding> {
    let invariant = {
        let (_, violations, _) = run_choices(&Arc::new(scenario.clone()), flow, choices.clone());
        violations
            .into_iter()
            .find(|v| !known.contains(&v.invariant))?
            .invariant
    };
    let (reduced, choices) = reduce(flow, invariant, scenario, choices);
    scenario = reduced;
    let shared = Arc::new(scenario.clone());
    let (outcome, violations, mut taken) = run_choices(&shared, flow, choices);
    let violation = violations.iter().find(|v| v.invariant == invariant)?.clone();
    while taken.last() == Some(&0) {
        taken.pop();
    }
    let requests: u32 = scenario.requests.iter().map(|r| r.repeat).sum();
    scenario.name = format!("{flow} breaks {}: found by otpsim explore", violation.invariant);
    scenario.description = format!(
        "Found by `otpsim explore --seed {seed}` after {schedules_to_hit} schedules, then shrunk to {requests} requests \
         and {} scheduling choices. {}",
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
    let counterexample = Counterexample {
        flow: flow.to_string(),
        strategy: Strategy::Pinned,
        seed: scenario.seed,
        schedule: 0,
        position: 1,
        choices: taken,
        violations,
        trace: outcome.trace,
    };
    Some(Finding {
        invariant: violation.invariant,
        schedules_to_hit,
        seconds_to_hit,
        scenario,
        counterexample,
    })
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
        if !scenario.faults.is_empty() {
            let mut s = scenario.clone();
            s.faults.clear();
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

fn sentence(why: &str) -> String {
    let mut s = why.to_string();
    if let Some(first) = s.get(..1) {
        s.replace_range(..1, &first.to_uppercase());
    }
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}
