//! Many live schedules of one scenario: a depth-first enumeration of the
//! delivery orders, capped, judged by the simulator's checker on the
//! invariants the target can observe.

use std::collections::BTreeSet;

use otpsim_model::counterexample::{Counterexample, Replay};
use otpsim_model::invariant::{Invariant, Symptom};
use otpsim_model::scenario::{Expectation, Scenario};

use crate::run::{self, judged, next_schedule, violations, LiveError, LiveRun, Options};
use crate::target::Target;

/// What the live schedules of one scenario found.
#[derive(Debug, Clone)]
pub struct LiveSweep {
    /// Schedules run.
    pub schedules: usize,
    /// Whether the enumeration ended before the cap (every order was run).
    pub exhausted: bool,
    /// Every symptom some schedule showed, in the order first shown: what
    /// counts a live finding's reproductions.
    pub symptoms: Vec<Symptom>,
    /// The first run that broke each invariant broken, in the order they
    /// were first broken: what it broke, and its delivery order.
    pub counterexamples: Vec<Counterexample>,
    /// The first run, failing or not (for a report of a passing scenario).
    pub first: LiveRun,
    /// Checked invariants the target cannot observe: never counted a pass.
    pub not_observable: Vec<Invariant>,
    /// Each run's network order (see `Trace::network_order`) and what it
    /// broke, in the order they ran.
    pub orders: Vec<(Vec<String>, BTreeSet<Invariant>)>,
    /// Wall-clock seconds of all runs.
    pub seconds: f64,
}

/// A live verdict against an expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// What was expected happened.
    Holds,
    /// It did not.
    Unexpected,
    /// The expectation is about an invariant the target cannot observe.
    NotObservable,
}

impl LiveSweep {
    /// Every observable invariant some schedule broke: those of its
    /// symptoms.
    pub fn violated(&self) -> BTreeSet<Invariant> {
        self.symptoms.iter().map(|s| s.invariant).collect()
    }

    /// `pass`, or `fail:` and the broken invariants.
    pub fn found(&self) -> String {
        Expectation::found(&self.violated())
    }

    /// The counterexample to show for `expectation` (see
    /// `counterexample::shown_for`).
    pub fn counterexample_for(&self, expectation: Expectation) -> Option<&Counterexample> {
        otpsim_model::counterexample::shown_for(&self.counterexamples, expectation)
    }

    /// Whether the sweep meets `expectation`.
    pub fn verdict(&self, expectation: Expectation) -> Verdict {
        match expectation.judged(&self.violated(), &self.not_observable) {
            None => Verdict::NotObservable,
            Some(true) => Verdict::Holds,
            Some(false) => Verdict::Unexpected,
        }
    }
}

/// How the orders of same-instant deliveries are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Every order in turn, the last choice varied first; a scenario with
    /// no choice runs once, and the sweep says when all orders were run.
    DepthFirst,
    /// Each schedule draws its choices from this seed: wider than
    /// depth-first when the budget is smaller than the number of orders.
    Random(u64),
}

/// Runs up to `max` schedules of `scenario` against `target`.
pub async fn sweep(
    target: &Target,
    scenario: &Scenario,
    options: &Options,
    max: usize,
    order: Order,
) -> Result<LiveSweep, LiveError> {
    let (_, not_observable) = judged(target, scenario);
    let mut choices = match order {
        Order::DepthFirst => Vec::new(),
        Order::Random(seed) => random_choices(seed, 0),
    };
    let mut schedules = 0;
    let mut symptoms: Vec<Symptom> = Vec::new();
    let mut counterexamples: Vec<Counterexample> = Vec::new();
    let mut first = None;
    let mut seconds = 0.0;
    let mut orders = Vec::new();
    let exhausted = loop {
        let run = run::run(target, scenario, &choices, options, schedules).await?;
        schedules += 1;
        seconds += run.seconds;
        let broken = violations(target, scenario, &run);
        // A run is kept if it is the first to break one of its invariants.
        let new = broken
            .iter()
            .any(|v| symptoms.iter().all(|s| s.invariant != v.invariant));
        for symptom in broken.iter().map(|v| Symptom::of(v, &run.trace)) {
            if !symptoms.contains(&symptom) {
                symptoms.push(symptom);
            }
        }
        orders.push((run.trace.network_order(), broken.iter().map(|v| v.invariant).collect()));
        let next = match order {
            Order::DepthFirst => next_schedule(&run),
            // Random orders never run out; a run with no choice to make
            // is the only schedule there is.
            Order::Random(_) if run.arities.is_empty() => None,
            Order::Random(seed) => Some(random_choices(seed, schedules as u64)),
        };
        if new {
            counterexamples.push(Counterexample {
                replay: Replay::Deliveries {
                    target: target.path.clone(),
                    choices: run.choices.clone(),
                },
                violations: broken,
                trace: run.trace.clone(),
            });
        }
        if first.is_none() {
            first = Some(run);
        }
        match next {
            Some(next) if schedules < max => choices = next,
            Some(_) => break false,
            None => break true,
        }
    };
    Ok(LiveSweep {
        schedules,
        exhausted,
        symptoms,
        counterexamples,
        first: first.expect("at least one run"),
        not_observable,
        orders,
        seconds,
    })
}

/// The choices of random schedule `n`: enough for any live run (a choice
/// is taken modulo the deliveries due, and extra ones are not used).
fn random_choices(seed: u64, n: u64) -> Vec<u8> {
    let mut rng = otpsim_core::ports::SplitMix64::new(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    (0..64).map(|_| (rng.next_u64() >> 56) as u8).collect()
}
