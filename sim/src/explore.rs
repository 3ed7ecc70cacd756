//! Explorers: run one scenario under many schedules with shuttle's seeded
//! Random and PCT schedulers or its DFS scheduler, and report the first
//! schedule that breaks each invariant, replayable from its seed.

use std::collections::BTreeSet;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use otpsim_core::platform::TASK_STACK_SIZE;
use otpsim_core::Variant;
use shuttle::scheduler::{DfsScheduler, PctScheduler, RandomScheduler, Scheduler};
use shuttle::{Config, FailurePersistence, Runner};

use crate::invariant::{self, Invariant, Limits, Violation};
use crate::scenario::{Expectation, FaultSpec, Scenario, StatementChoice};
use crate::trace::Trace;
use crate::world::{self, ActiveFault, RunOutcome, RunPlan};

/// How schedules are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Shuttle's uniformly random scheduler; schedule `i` uses seed + i.
    Random,
    /// Probabilistic concurrency testing with this bug depth.
    Pct(usize),
    /// Depth-first enumeration; the seed is the schedule's index.
    Dfs,
}

impl Default for Strategy {
    /// PCT at depth 3 finds these races in a handful of schedules.
    fn default() -> Self {
        Strategy::Pct(3)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Random => f.write_str("random"),
            Strategy::Pct(d) => write!(f, "pct{d}"),
            Strategy::Dfs => f.write_str("dfs"),
        }
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Strategy, String> {
        match s {
            "random" => Ok(Strategy::Random),
            "dfs" => Ok(Strategy::Dfs),
            _ => s
                .strip_prefix("pct")
                .and_then(|d| d.parse().ok())
                .filter(|d| (1..=10).contains(d))
                .map(Strategy::Pct)
                .ok_or_else(|| format!("unknown strategy {s:?}; expected random, dfs, or pct1 to pct10")),
        }
    }
}

/// A schedule that broke an invariant, with what it takes to replay it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The variant.
    pub variant: Variant,
    /// The scheduler.
    pub strategy: Strategy,
    /// The seed (or DFS index) that replays it.
    pub seed: u64,
    /// The faults it ran with.
    pub faults: Vec<ActiveFault>,
    /// The statement position a fault at `every` statement had (else 1).
    pub position: u32,
    /// What broke, each in a sentence.
    pub violations: Vec<Violation>,
    /// Every event.
    pub trace: Trace,
}

/// What exploring one variant found.
#[derive(Debug, Clone)]
pub struct Exploration {
    /// The variant.
    pub variant: Variant,
    /// Schedules run.
    pub schedules: u64,
    /// The first failing schedule of each broken invariant.
    pub failures: Vec<Failure>,
}

impl Exploration {
    /// Every invariant some schedule broke.
    pub fn violated(&self) -> BTreeSet<Invariant> {
        self.failures.iter().flat_map(|f| f.violations.iter().map(|v| v.invariant)).collect()
    }

    /// Whether the result meets `expectation`.
    pub fn meets(&self, expectation: Expectation) -> bool {
        let violated = self.violated();
        match expectation {
            Expectation::Pass => violated.is_empty(),
            Expectation::Fail => !violated.is_empty(),
            Expectation::FailOn(i) => violated.contains(&i),
        }
    }

    /// The first failure that shows `invariant`, else the first at all.
    pub fn failure_for(&self, expectation: Expectation) -> Option<&Failure> {
        let wanted = |f: &&Failure| match expectation {
            Expectation::FailOn(i) => f.violations.iter().any(|v| v.invariant == i),
            _ => true,
        };
        self.failures.iter().find(wanted).or(self.failures.first())
    }
}

/// The fault sets a scenario runs with: one, or one per position for a
/// fault with `statement = "every"`.
fn fault_sets(faults: &[FaultSpec], position: u32) -> Vec<ActiveFault> {
    faults
        .iter()
        .map(|f| ActiveFault {
            kind: f.kind,
            request: f.request,
            statement: match f.statement {
                StatementChoice::Nth(n) => n,
                StatementChoice::Every => position,
            },
        })
        .collect()
}

/// Runs one schedule with `scheduler` and checks the invariants.
fn run_with(plan: RunPlan, scheduler: impl Scheduler + 'static, limits: Limits, invariants: &[Invariant]) -> (RunOutcome, Vec<Violation>) {
    let outcomes = run_many(plan, scheduler);
    let outcome = outcomes.into_iter().next_back().expect("one execution ran");
    judge(outcome, limits, invariants)
}

fn judge(outcome: Result<RunOutcome, String>, limits: Limits, invariants: &[Invariant]) -> (RunOutcome, Vec<Violation>) {
    match outcome {
        Ok(outcome) => {
            let violations = invariant::check(&outcome.trace, limits, invariants);
            (outcome, violations)
        }
        Err(panic) => (
            RunOutcome { trace: Trace::default(), faults_fired: true },
            vec![Violation { invariant: Invariant::ClearErrors, why: format!("the run panicked: {panic}") }],
        ),
    }
}

/// Runs every execution `scheduler` asks for; a panic ends the run and is
/// returned as the last outcome.
fn run_many(plan: RunPlan, scheduler: impl Scheduler + 'static) -> Vec<Result<RunOutcome, String>> {
    let results: Arc<Mutex<Vec<Result<RunOutcome, String>>>> = Arc::default();
    let sink = Arc::clone(&results);
    let mut config = Config::new();
    config.stack_size = TASK_STACK_SIZE;
    config.failure_persistence = FailurePersistence::None;
    config.silence_warnings = true;
    let runner = Runner::new(scheduler, config);
    let ran = catch_unwind(AssertUnwindSafe(move || {
        runner.run(move || {
            let outcome = world::run(&plan);
            sink.lock().expect("not poisoned").push(Ok(outcome));
        })
    }));
    let mut results = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    if let Err(panic) = ran {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".to_string());
        results.push(Err(message));
    }
    results
}

/// Explores `variant` on `scenario`: `schedules` schedules per fault
/// position, stopping early once `enough` says the findings suffice.
pub fn explore(
    scenario: &Arc<Scenario>,
    variant: Variant,
    strategy: Strategy,
    schedules: u32,
    seed: u64,
    enough: impl Fn(&BTreeSet<Invariant>) -> bool,
) -> Exploration {
    let limits = limits(scenario);
    let every = scenario.faults.iter().any(|f| f.statement == StatementChoice::Every);
    let mut exploration = Exploration { variant, schedules: 0, failures: Vec::new() };
    for position in 1..=64u32 {
        let faults = fault_sets(&scenario.faults, position);
        let plan = |seed| RunPlan { scenario: Arc::clone(scenario), variant, faults: faults.clone(), seed };
        let mut fired_anywhere = false;
        let mut record = |exploration: &mut Exploration, schedule_seed: u64, outcome: RunOutcome, violations: Vec<Violation>| {
            exploration.schedules += 1;
            fired_anywhere |= outcome.faults_fired;
            let known = exploration.violated();
            if violations.iter().any(|v| !known.contains(&v.invariant)) {
                exploration.failures.push(Failure {
                    variant,
                    strategy,
                    seed: schedule_seed,
                    faults: faults.clone(),
                    position,
                    violations,
                    trace: outcome.trace,
                });
            }
        };
        match strategy {
            Strategy::Dfs => {
                let outcomes = run_many(plan(seed), DfsScheduler::new(Some(schedules as usize), false));
                for (i, outcome) in outcomes.into_iter().enumerate() {
                    let (outcome, violations) = judge(outcome, limits, &scenario.invariants);
                    record(&mut exploration, i as u64, outcome, violations);
                }
            }
            Strategy::Random | Strategy::Pct(_) => {
                for i in 0..u64::from(schedules) {
                    let s = seed.wrapping_add(i);
                    let (outcome, violations) = run_with(plan(s), scheduler(strategy, s), limits, &scenario.invariants);
                    record(&mut exploration, s, outcome, violations);
                    if enough(&exploration.violated()) {
                        return exploration;
                    }
                }
            }
        }
        if !every || !fired_anywhere || enough(&exploration.violated()) {
            break;
        }
    }
    exploration
}

fn scheduler(strategy: Strategy, seed: u64) -> Box<dyn Scheduler + Send> {
    match strategy {
        Strategy::Random => Box::new(RandomScheduler::new_from_seed(seed, 1)),
        Strategy::Pct(depth) => Box::new(PctScheduler::new_from_seed(seed, depth, 1)),
        Strategy::Dfs => Box::new(DfsScheduler::new(Some(1), false)),
    }
}

fn limits(scenario: &Scenario) -> Limits {
    Limits { otp_ttl_ms: scenario.deployment.otp_ttl_ms, max_attempts: scenario.deployment.max_attempts }
}

/// Runs the one schedule that `strategy` and `seed` name, with the faults
/// of `position` (1 unless the scenario has a fault at `every` statement).
pub fn replay(scenario: &Arc<Scenario>, variant: Variant, strategy: Strategy, seed: u64, position: u32) -> (RunOutcome, Vec<Violation>) {
    let faults = fault_sets(&scenario.faults, position);
    let limits = limits(scenario);
    match strategy {
        Strategy::Dfs => {
            let plan = RunPlan { scenario: Arc::clone(scenario), variant, faults, seed: scenario.seed };
            let outcomes = run_many(plan, DfsScheduler::new(Some(seed as usize + 1), false));
            let outcome = outcomes.into_iter().nth(seed as usize).unwrap_or_else(|| Err(format!("DFS has fewer than {} schedules", seed + 1)));
            judge(outcome, limits, &scenario.invariants)
        }
        _ => {
            let plan = RunPlan { scenario: Arc::clone(scenario), variant, faults, seed };
            run_with(plan, scheduler(strategy, seed), limits, &scenario.invariants)
        }
    }
}
