//! Explorers: run one scenario under many schedules with shuttle's seeded
//! Random and PCT schedulers or its DFS scheduler, and report the first
//! schedule that breaks each invariant, replayable from its seed.

use std::collections::BTreeSet;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use otpsim_core::platform::TASK_STACK_SIZE;
use otpsim_core::Variant;
use shuttle::scheduler::{DfsScheduler, PctScheduler, Schedule, Scheduler, Task, TaskId};
use shuttle::{Config, FailurePersistence, Runner};

use crate::choice::ChoiceScheduler;
use crate::invariant::{self, Invariant, Limits, Violation};
use crate::scenario::{Expectation, FaultSpec, Scenario, StatementChoice};
use crate::trace::Trace;
use crate::uniform::UniformRandom;
use crate::world::{self, ActiveFault, RunOutcome, RunPlan};

/// How schedules are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Uniformly random choices ([`UniformRandom`], shuttle's algorithm).
    Random,
    /// Probabilistic concurrency testing with this bug depth.
    Pct(usize),
    /// Depth-first enumeration of schedules.
    Dfs,
    /// The one schedule pinned by the file's `[explore] choices`.
    Pinned,
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
            Strategy::Pinned => f.write_str("pinned"),
        }
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Strategy, String> {
        match s {
            "random" => Ok(Strategy::Random),
            "dfs" => Ok(Strategy::Dfs),
            "pinned" => Ok(Strategy::Pinned),
            _ => s
                .strip_prefix("pct")
                .and_then(|d| d.parse().ok())
                .filter(|d| (1..=10).contains(d))
                .map(Strategy::Pct)
                .ok_or_else(|| format!("unknown strategy {s:?}; expected pct1 to pct10, random, dfs or pinned")),
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
    /// The scheduler's seed.
    pub seed: u64,
    /// The schedule's 0-based index in the scheduler's sequence.
    pub schedule: u64,
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
        self.failures
            .iter()
            .flat_map(|f| f.violations.iter().map(|v| v.invariant))
            .collect()
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

/// Ends a run of schedules early once the findings suffice, so that one
/// scheduler (which learns as it goes, as PCT does) serves them all.
struct Stoppable<S> {
    inner: S,
    stop: Arc<AtomicBool>,
}

impl<S: Scheduler> Scheduler for Stoppable<S> {
    fn new_execution(&mut self) -> Option<Schedule> {
        if self.stop.load(Ordering::SeqCst) {
            return None;
        }
        self.inner.new_execution()
    }
    fn next_task(&mut self, runnable: &[&Task], current: Option<TaskId>, is_yielding: bool) -> Option<TaskId> {
        self.inner.next_task(runnable, current, is_yielding)
    }
    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
}

/// One schedule's result: its index, outcome and violations.
type Judged = (u64, RunOutcome, Vec<Violation>);

/// Runs up to `schedules` schedules of `plan` with one scheduler, checking
/// each; `stop` is asked after each whether to go on. A panic ends the run
/// and is reported as the last schedule's `clear_errors` violation.
fn run_schedules(
    plan: RunPlan,
    scheduler: Box<dyn Scheduler + Send>,
    stop: impl Fn(&[Violation]) -> bool + Send + Sync + 'static,
) -> Vec<Judged> {
    let limits = limits(&plan.scenario);
    let results: Arc<Mutex<Vec<Judged>>> = Arc::default();
    let halt = Arc::new(AtomicBool::new(false));
    let mut config = Config::new();
    config.stack_size = TASK_STACK_SIZE;
    config.failure_persistence = FailurePersistence::None;
    config.silence_warnings = true;
    let runner = Runner::new(
        Stoppable {
            inner: scheduler,
            stop: Arc::clone(&halt),
        },
        config,
    );
    let (sink, flag) = (Arc::clone(&results), Arc::clone(&halt));
    let ran = catch_unwind(AssertUnwindSafe(move || {
        runner.run(move || {
            let outcome = world::run(&plan);
            let violations = invariant::check(&outcome.trace, limits, &plan.scenario.invariants);
            if stop(&violations) {
                flag.store(true, Ordering::SeqCst);
            }
            let mut sink = sink.lock().expect("not poisoned");
            let index = sink.len() as u64;
            sink.push((index, outcome, violations));
        })
    }));
    let mut results = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    if let Err(panic) = ran {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".to_string());
        let why = format!("the run panicked: {message}");
        results.push((
            results.len() as u64,
            RunOutcome {
                trace: Trace::default(),
                faults_fired: true,
            },
            vec![Violation {
                invariant: Invariant::ClearErrors,
                request: None,
                why,
            }],
        ));
    }
    results
}

/// The scheduler for `n` schedules of `strategy` from `seed`.
fn scheduler_for(strategy: Strategy, seed: u64, n: u32, scenario: &Scenario) -> Box<dyn Scheduler + Send> {
    let n = n as usize;
    match strategy {
        Strategy::Random => Box::new(UniformRandom::new(seed, n)),
        Strategy::Pct(depth) => Box::new(PctScheduler::new_from_seed(seed, depth, n)),
        Strategy::Dfs => Box::new(DfsScheduler::new(Some(n), false)),
        Strategy::Pinned => Box::new(ChoiceScheduler::new(
            scenario.choices.clone().unwrap_or_default(),
            Arc::default(),
        )),
    }
}

/// Runs the one schedule `choices` pin, and returns with its verdict the
/// choices it actually took (what a saved file must pin to replay it).
pub fn run_choices(
    scenario: &Arc<Scenario>,
    variant: Variant,
    choices: Vec<u8>,
) -> (RunOutcome, Vec<Violation>, Vec<u8>) {
    let taken: Arc<Mutex<Vec<u8>>> = Arc::default();
    let plan = RunPlan {
        scenario: Arc::clone(scenario),
        variant,
        faults: fault_sets(&scenario.faults, 1),
        seed: scenario.seed,
    };
    let scheduler = Box::new(ChoiceScheduler::new(choices, Arc::clone(&taken)));
    let (_, outcome, violations) = run_schedules(plan, scheduler, |_| false)
        .pop()
        .expect("one schedule ran");
    let taken = std::mem::take(&mut *taken.lock().unwrap_or_else(|p| p.into_inner()));
    (outcome, violations, taken)
}

/// Explores `variant` on `scenario`: `schedules` schedules per fault
/// position, stopping early once `enough` says the findings suffice.
pub fn explore(
    scenario: &Arc<Scenario>,
    variant: Variant,
    strategy: Strategy,
    schedules: u32,
    seed: u64,
    enough: impl Fn(&BTreeSet<Invariant>) -> bool + Send + Sync + Clone + 'static,
) -> Exploration {
    let (strategy, schedules) = pinned_or(scenario, strategy, schedules);
    let every = scenario.faults.iter().any(|f| f.statement == StatementChoice::Every);
    let mut exploration = Exploration {
        variant,
        schedules: 0,
        failures: Vec::new(),
    };
    for position in 1..=64u32 {
        let faults = fault_sets(&scenario.faults, position);
        let plan = RunPlan {
            scenario: Arc::clone(scenario),
            variant,
            faults: faults.clone(),
            seed,
        };
        let found = Arc::new(Mutex::new(exploration.violated()));
        let (found_in, enough_in) = (Arc::clone(&found), enough.clone());
        let scheduler = scheduler_for(strategy, seed, schedules, scenario);
        let judged = run_schedules(plan, scheduler, move |violations| {
            let mut found = found_in.lock().expect("not poisoned");
            found.extend(violations.iter().map(|v| v.invariant));
            enough_in(&found)
        });
        let mut fired_anywhere = false;
        for (schedule, outcome, violations) in judged {
            exploration.schedules += 1;
            fired_anywhere |= outcome.faults_fired;
            let known = exploration.violated();
            if violations.iter().any(|v| !known.contains(&v.invariant)) {
                exploration.failures.push(Failure {
                    variant,
                    strategy,
                    seed,
                    schedule,
                    faults: faults.clone(),
                    position,
                    violations,
                    trace: outcome.trace,
                });
            }
        }
        if !every || !fired_anywhere || enough(&exploration.violated()) {
            break;
        }
    }
    exploration
}

/// A file with a pinned schedule runs that one schedule, whatever asked.
fn pinned_or(scenario: &Scenario, strategy: Strategy, schedules: u32) -> (Strategy, u32) {
    match scenario.choices {
        Some(_) => (Strategy::Pinned, 1),
        None => (strategy, schedules),
    }
}

fn limits(scenario: &Scenario) -> Limits {
    Limits {
        otp_ttl_ms: scenario.deployment.otp_ttl_ms,
        max_attempts: scenario.deployment.max_attempts,
    }
}

/// Runs schedule `schedule` (0-based) of the sequence that `strategy` and
/// `seed` produce, with the faults of `position` (1 unless the scenario has
/// a fault at `every` statement).
pub fn replay(
    scenario: &Arc<Scenario>,
    variant: Variant,
    strategy: Strategy,
    seed: u64,
    schedule: u64,
    position: u32,
) -> Option<(RunOutcome, Vec<Violation>)> {
    let (strategy, _) = pinned_or(scenario, strategy, 1);
    let faults = fault_sets(&scenario.faults, position);
    let plan = RunPlan {
        scenario: Arc::clone(scenario),
        variant,
        faults,
        seed,
    };
    let runs = run_schedules(
        plan,
        scheduler_for(strategy, seed, schedule as u32 + 1, scenario),
        |_| false,
    );
    runs.into_iter()
        .nth(schedule as usize)
        .map(|(_, outcome, violations)| (outcome, violations))
}
