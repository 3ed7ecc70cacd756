//! A sweep: one scenario, one flow, many schedules. Runs the world under
//! one scheduler (see [`crate::schedule`]), checks every schedule as it
//! ends, and keeps only the first counterexample of each invariant, so
//! memory does not grow with the number of schedules.
//!
//! `otpsim check`, `replay`, `bugfind` and `ablate` are built on it;
//! `explore` runs its generated cases through [`run_cases`].

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use otpsim_core::platform::TASK_STACK_SIZE;
use otpsim_core::Flow;
use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};
use shuttle::{Config, FailurePersistence, Runner};

use crate::invariant::{self, Invariant, Limits, Violation};
use crate::scenario::{Expectation, FaultSpec, Scenario, StatementChoice};
use crate::schedule::{ChoiceScheduler, Recorder, Stoppable, Strategy, Taken};
use crate::trace::Trace;
use crate::world::{self, ActiveFault, RunOutcome, RunPlan};
pub use otpsim_model::counterexample::{Counterexample, Replay};

/// What sweeping one flow over one scenario found.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The flow's name.
    pub flow: String,
    /// Schedules run.
    pub schedules: u64,
    /// The first counterexample of each broken invariant.
    pub counterexamples: Vec<Counterexample>,
}

impl Sweep {
    /// Every invariant some schedule broke.
    pub fn violated(&self) -> BTreeSet<Invariant> {
        self.counterexamples
            .iter()
            .flat_map(|f| f.violations.iter().map(|v| v.invariant))
            .collect()
    }

    /// Whether the result meets `expectation`.
    pub fn meets(&self, expectation: Expectation) -> bool {
        expectation.met_by(&self.violated())
    }

    /// The first counterexample that shows `expectation`'s invariant, else
    /// the first at all.
    pub fn counterexample_for(&self, expectation: Expectation) -> Option<&Counterexample> {
        otpsim_model::counterexample::shown_for(&self.counterexamples, expectation)
    }
}

/// The fault sets a scenario runs with: one, or one per position for a
/// fault with `statement = "every"`.
pub(crate) fn fault_sets(faults: &[FaultSpec], position: u32) -> Vec<ActiveFault> {
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

/// One schedule, judged: its index, the choices it took, its outcome.
pub struct Judged {
    /// 0-based index in the scheduler's sequence.
    pub index: u64,
    /// The choices it took.
    pub choices: Vec<u8>,
    /// How many tasks could run at each of those points ([`Taken`]).
    pub widths: Vec<u8>,
    /// Its trace.
    pub outcome: RunOutcome,
    /// What it broke.
    pub violations: Vec<Violation>,
}

/// Runs schedules of `plan` with one scheduler until it has no more or
/// `on_schedule` says stop, handing each judged schedule to `on_schedule`
/// as it ends. A panic of the harness itself (shuttle's deadlock
/// detection, say) ends the run and is handed over as a `clear_errors`
/// violation.
pub fn run_schedules<F: Flow>(
    plan: RunPlan<F>,
    scheduler: Box<dyn Scheduler + Send>,
    on_schedule: impl FnMut(Judged) -> bool + Send + 'static,
) {
    let limits = limits(&plan.scenario);
    let halt = Arc::new(AtomicBool::new(false));
    let next_index = Arc::new(Mutex::new(0u64));
    let runner = Runner::new(Stoppable::new(Recorder::new(scheduler), Arc::clone(&halt)), config());
    let sink = Arc::new(Mutex::new(on_schedule));
    let (sink_in, flag, index_in) = (Arc::clone(&sink), Arc::clone(&halt), Arc::clone(&next_index));
    let ran = catch_unwind(AssertUnwindSafe(move || {
        runner.run(move || {
            let outcome = world::run(&plan);
            let violations = invariant::violations(&outcome.trace, limits, &plan.scenario.invariants);
            let Taken { choices, widths } = Taken::take();
            let index = {
                let mut next = index_in.lock().unwrap_or_else(|p| p.into_inner());
                *next += 1;
                *next - 1
            };
            let judged = Judged {
                index,
                choices,
                widths,
                outcome,
                violations,
            };
            if !(sink_in.lock().unwrap_or_else(|p| p.into_inner()))(judged) {
                flag.store(true, Ordering::SeqCst);
            }
        })
    }));
    if let Err(panic) = ran {
        let index = *next_index.lock().unwrap_or_else(|p| p.into_inner());
        let judged = panicked(index, panic);
        (sink.lock().unwrap_or_else(|p| p.into_inner()))(judged);
    }
}

/// shuttle's settings for every run: our task stacks, nothing persisted,
/// no warnings printed.
fn config() -> Config {
    let mut config = Config::new();
    config.stack_size = TASK_STACK_SIZE;
    config.failure_persistence = FailurePersistence::None;
    config.silence_warnings = true;
    config
}

/// A panic of the harness itself, judged as a `clear_errors` violation
/// with the choices the execution had taken so far: they replay it up to
/// the panic. Call it on the runner's thread.
fn panicked(index: u64, panic: Box<dyn std::any::Any + Send>) -> Judged {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".to_string());
    let Taken { choices, widths } = Taken::take();
    Judged {
        index,
        choices,
        widths,
        outcome: RunOutcome {
            trace: Trace::default(),
            faults_fired: true,
            statements: Vec::new(),
        },
        violations: vec![Violation {
            invariant: Invariant::ClearErrors,
            request: None,
            why: format!("the run panicked: {message}"),
        }],
    }
}

/// A case of [`run_cases`]: a scenario and the choices of its one schedule.
pub type Case = (Arc<Scenario>, Vec<u8>);

/// Runs many cases of `flow`, one schedule each, through one shuttle
/// runner: `next` is told how the last case went (its scenario and its
/// judged schedule) and gives the next case, or `None` to stop. What
/// [`replay`] does for one case, without a fresh runner, and so fresh task
/// stacks from the operating system, for each: a search of generated
/// cases spends much of a case there, and on several threads of one
/// process those calls contend.
pub fn run_cases<F: Flow>(flow: &F, next: impl FnMut(Option<(Arc<Scenario>, Judged)>) -> Option<Case> + 'static) {
    let next = Rc::new(RefCell::new(next));
    let mut last = None;
    loop {
        // The plan the scheduler sets for the execution it starts, and the
        // execution's verdict for the scheduler to hand on.
        let plan: Arc<Mutex<Option<RunPlan<F>>>> = Arc::default();
        let judged: Arc<Mutex<Option<Judged>>> = Arc::default();
        let stream = CaseStream {
            flow: flow.clone(),
            next: Rc::clone(&next),
            last: last.take(),
            plan: Arc::clone(&plan),
            judged: Arc::clone(&judged),
            running: None,
            scheduler: Recorder::new(ChoiceScheduler::new(Vec::new())),
        };
        let scenario_of = Arc::clone(&plan);
        let runner = Runner::new(stream, config());
        let (plan_in, judged_in) = (Arc::clone(&plan), Arc::clone(&judged));
        let ran = catch_unwind(AssertUnwindSafe(move || {
            runner.run(move || {
                let plan = plan_in.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let Some(plan) = plan else { return };
                let outcome = world::run(&plan);
                let violations =
                    invariant::violations(&outcome.trace, limits(&plan.scenario), &plan.scenario.invariants);
                let Taken { choices, widths } = Taken::take();
                *judged_in.lock().unwrap_or_else(|p| p.into_inner()) = Some(Judged {
                    index: 0,
                    choices,
                    widths,
                    outcome,
                    violations,
                });
            })
        }));
        match ran {
            Ok(_) => return,
            Err(panic) => {
                // The case that panicked is judged; the stream goes on in a
                // new runner.
                let scenario = scenario_of.lock().unwrap_or_else(|p| p.into_inner()).take();
                match scenario {
                    Some(plan) => last = Some((plan.scenario, panicked(0, panic))),
                    None => std::panic::resume_unwind(panic),
                }
            }
        }
    }
}

/// The scheduler of [`run_cases`]: each new execution is the next case,
/// followed through its choices.
struct CaseStream<F, N> {
    flow: F,
    next: Rc<RefCell<N>>,
    /// A case judged before this runner started (one that panicked).
    last: Option<(Arc<Scenario>, Judged)>,
    plan: Arc<Mutex<Option<RunPlan<F>>>>,
    judged: Arc<Mutex<Option<Judged>>>,
    running: Option<Arc<Scenario>>,
    scheduler: Recorder<ChoiceScheduler>,
}

impl<F: Flow, N: FnMut(Option<(Arc<Scenario>, Judged)>) -> Option<Case>> Scheduler for CaseStream<F, N> {
    fn new_execution(&mut self) -> Option<Schedule> {
        let judged = self.judged.lock().unwrap_or_else(|p| p.into_inner()).take();
        let last = self.last.take().or_else(|| Some((self.running.take()?, judged?)));
        let Some((scenario, choices)) = (self.next.borrow_mut())(last) else {
            *self.plan.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return None;
        };
        *self.plan.lock().unwrap_or_else(|p| p.into_inner()) = Some(RunPlan {
            scenario: Arc::clone(&scenario),
            flow: self.flow.clone(),
            faults: fault_sets(&scenario.faults, 1),
            seed: scenario.seed,
        });
        self.running = Some(scenario);
        self.scheduler = Recorder::new(ChoiceScheduler::new(choices));
        self.scheduler.new_execution()
    }
    fn next_task(&mut self, runnable: &[&Task], current: Option<TaskId>, is_yielding: bool) -> Option<TaskId> {
        self.scheduler.next_task(runnable, current, is_yielding)
    }
    fn next_u64(&mut self) -> u64 {
        self.scheduler.next_u64()
    }
}

/// Sweeps `flow` over `scenario`: `schedules` schedules per fault
/// position, stopping early once `enough` says the findings suffice.
pub fn sweep<F: Flow>(
    scenario: &Arc<Scenario>,
    flow: &F,
    strategy: Strategy,
    schedules: u32,
    seed: u64,
    enough: impl Fn(&BTreeSet<Invariant>) -> bool + Send + Sync + Clone + 'static,
) -> Sweep {
    let (strategy, schedules) = pinned_or(scenario, strategy, schedules);
    let every = scenario.faults.iter().any(|f| f.statement == StatementChoice::Every);
    let mut result = Sweep {
        flow: flow.to_string(),
        schedules: 0,
        counterexamples: Vec::new(),
    };
    for position in 1..=64u32 {
        let faults = fault_sets(&scenario.faults, position);
        let plan = RunPlan {
            scenario: Arc::clone(scenario),
            flow: flow.clone(),
            faults: faults.clone(),
            seed,
        };
        struct Tally {
            schedules: u64,
            fired: bool,
            found: BTreeSet<Invariant>,
            kept: Vec<Judged>,
        }
        let tally = Arc::new(Mutex::new(Tally {
            schedules: 0,
            fired: false,
            found: result.violated(),
            kept: Vec::new(),
        }));
        let (tally_in, enough_in) = (Arc::clone(&tally), enough.clone());
        let pinned = scenario.choices.clone().unwrap_or_default();
        run_schedules(plan, strategy.scheduler(seed, schedules, &pinned), move |judged| {
            let mut t = tally_in.lock().unwrap_or_else(|p| p.into_inner());
            t.schedules += 1;
            t.fired |= judged.outcome.faults_fired;
            if judged.violations.iter().any(|v| !t.found.contains(&v.invariant)) {
                let broken: Vec<Invariant> = judged.violations.iter().map(|v| v.invariant).collect();
                t.found.extend(broken);
                t.kept.push(judged);
            }
            !enough_in(&t.found)
        });
        let tally = std::mem::replace(
            &mut *tally.lock().unwrap_or_else(|p| p.into_inner()),
            Tally {
                schedules: 0,
                fired: false,
                found: BTreeSet::new(),
                kept: Vec::new(),
            },
        );
        result.schedules += tally.schedules;
        for judged in tally.kept {
            result.counterexamples.push(Counterexample {
                replay: Replay::Schedule {
                    flow: flow.to_string(),
                    seed,
                    schedule: judged.index,
                    position,
                    choices: judged.choices,
                },
                violations: judged.violations,
                trace: judged.outcome.trace,
            });
        }
        if !every || !tally.fired || enough(&result.violated()) {
            break;
        }
    }
    result
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
        precision_ms: 0,
    }
}

/// Replays exactly one schedule: the one `choices` pin, with the world's
/// randomness from `seed` and the faults of `position` (1 unless the
/// scenario has a fault at `every` statement). Returns with its verdict
/// the choices it actually took: what a saved file must pin to replay it.
pub fn replay<F: Flow>(
    scenario: &Arc<Scenario>,
    flow: &F,
    seed: u64,
    choices: &[u8],
    position: u32,
) -> (RunOutcome, Vec<Violation>, Vec<u8>) {
    let judged = judge(scenario, flow, seed, choices, position);
    (judged.outcome, judged.violations, judged.choices)
}

/// [`replay`], judged whole: with how many tasks could run at each point.
pub fn judge<F: Flow>(scenario: &Arc<Scenario>, flow: &F, seed: u64, choices: &[u8], position: u32) -> Judged {
    let plan = RunPlan {
        scenario: Arc::clone(scenario),
        flow: flow.clone(),
        faults: fault_sets(&scenario.faults, position),
        seed,
    };
    let result: Arc<Mutex<Option<Judged>>> = Arc::default();
    let sink = Arc::clone(&result);
    run_schedules(plan, Box::new(ChoiceScheduler::new(choices.to_vec())), move |judged| {
        *sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(judged);
        false
    });
    let judged = result.lock().unwrap_or_else(|p| p.into_inner()).take();
    judged.expect("one schedule ran")
}

/// Replays a simulated counterexample (see [`replay`]); `None` for a live
/// one, which replays against its target.
pub fn rerun<F: Flow>(
    scenario: &Arc<Scenario>,
    flow: &F,
    counterexample: &Counterexample,
) -> Option<(RunOutcome, Vec<Violation>, Vec<u8>)> {
    match &counterexample.replay {
        Replay::Schedule {
            seed,
            position,
            choices,
            ..
        } => Some(replay(scenario, flow, *seed, choices, *position)),
        Replay::Deliveries { .. } => None,
    }
}
