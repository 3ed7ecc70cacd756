//! The search that learns, as a coverage-guided fuzzer does: a case that
//! shows behaviour no earlier case showed (see [`super::coverage`]) is
//! kept, and most later cases are kept ones changed a little (see
//! [`super::mutate`]); one in four is drawn afresh, as the blind search
//! draws it. What counts as new includes which write each read saw
//! (reads-from), the signal that the RFF work (ASPLOS 2024) found to guide
//! concurrency testing far better than blind or PCT sampling.
//!
//! Deterministic: the fresh cases come from a seeded proptest runner, the
//! picks and mutations from a seeded generator, and the kept cases and
//! features live in ordered containers; with a budget in schedules the
//! findings are a pure function of the seed and the budget.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use otpsim_core::Flow;
use proptest::strategy::{BoxedStrategy, Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};

use super::coverage::features;
use super::generate::scenario_and_choices;
use super::mutate::{aims, mutate, Aim, Rng};
use super::{minimal, seeded, Finding, Limit, Origin};
use crate::invariant::Invariant;
use crate::scenario::Scenario;
use crate::sweep::{run_cases, Case, Judged};

/// Kept cases at most: when full, a new one replaces one at random, so
/// memory stays flat however long the search runs.
const KEPT: usize = 4096;
/// One case in this many is drawn afresh.
const FRESH: usize = 4;
/// Of the picks from the kept cases, half come from the newest few: what
/// was just found new is where the next new thing most likely is.
const NEWEST: usize = 8;

/// One round: schedules run, and the findings. The cases run through
/// one runner (see [`run_cases`]); each first hit of an invariant is kept
/// and reduced once the round is over, so the round's clock counts
/// searching only.
pub(super) fn round<F: Flow>(
    flow: &F,
    limit: Limit,
    seed: u64,
    origin: Origin,
    progress: &dyn Fn(u64, usize),
) -> (u64, Vec<Finding>) {
    let learner = Rc::new(RefCell::new(Learner {
        limit,
        start: Instant::now(),
        pool: Pool::new(seed),
        features: Vec::new(),
        hits: Vec::new(),
        schedules: 0,
    }));
    let stream = Rc::clone(&learner);
    run_cases(flow, move |last| stream.borrow_mut().next(last));
    let learner = learner.borrow();
    let mut findings = Vec::new();
    for hit in &learner.hits {
        let case = ((*hit.scenario).clone(), hit.choices.clone());
        if let Some(finding) = minimal(flow, case, hit.invariant, origin, hit.schedules, hit.seconds) {
            findings.push(finding);
        }
    }
    progress(learner.schedules, findings.len());
    (learner.schedules, findings)
}

/// The first case that broke an invariant.
struct Hit {
    invariant: Invariant,
    scenario: Arc<Scenario>,
    choices: Vec<u8>,
    schedules: u64,
    seconds: f64,
}

/// The state of a round between cases.
struct Learner {
    limit: Limit,
    start: Instant,
    pool: Pool,
    features: Vec<u64>,
    hits: Vec<Hit>,
    schedules: u64,
}

impl Learner {
    /// Learns from the last case, then draws the next.
    fn next(&mut self, last: Option<(Arc<Scenario>, Judged)>) -> Option<Case> {
        if let Some((scenario, judged)) = last {
            self.learn(scenario, judged);
        }
        if self.limit.reached(self.schedules) || self.hits.len() == Invariant::ALL.len() {
            return None;
        }
        self.schedules += 1;
        Some(self.pool.draw())
    }

    fn learn(&mut self, scenario: Arc<Scenario>, judged: Judged) {
        for v in &judged.violations {
            if self.hits.iter().all(|h| h.invariant != v.invariant) {
                self.hits.push(Hit {
                    invariant: v.invariant,
                    scenario: Arc::clone(&scenario),
                    choices: judged.choices.clone(),
                    schedules: self.schedules,
                    seconds: self.start.elapsed().as_secs_f64(),
                });
            }
        }
        features(
            &judged.outcome.trace,
            scenario.deployment.otp_ttl_ms,
            &mut self.features,
        );
        let trace = &judged.outcome.trace;
        let kept = Arc::clone(&scenario);
        // Only the writes: a refused guess is reached here by the other
        // changes within a few hundred schedules, and aiming at it too
        // would take turns from the faults that find the hard pairs. A
        // live run, which shows no writes, aims at its refused guesses.
        let writes = || {
            aims(&kept, trace)
                .into_iter()
                .filter(|a| matches!(a, Aim::Write { .. }))
                .collect()
        };
        self.pool.learn((scenario, judged.choices), &mut self.features, writes);
    }
}

/// What a learning search knows between cases: every behaviour seen, the
/// cases that first showed one, and the generators that draw the next.
/// The simulator's rounds and the live search (`otpsim explore --target`)
/// both draw from one; each brings its own run and its own features.
pub struct Pool {
    fresh: TestRunner,
    strategy: BoxedStrategy<(Scenario, Vec<u8>)>,
    rng: Rng,
    /// Every feature any case showed.
    seen: BTreeSet<u64>,
    kept: Vec<Case>,
    /// Where each kept case's run invites an aimed change: its writes, to
    /// strike with a fault; its refused guesses, to repeat.
    aims: Vec<Vec<Aim>>,
    /// Where the newest kept cases are: the last `NEWEST` slots written.
    newest: Vec<usize>,
}

impl Pool {
    /// An empty pool whose draws are a pure function of `seed` and of
    /// what it is told.
    pub fn new(seed: u64) -> Pool {
        Pool {
            fresh: TestRunner::new_with_rng(Config::default(), seeded(seed)),
            strategy: scenario_and_choices().boxed(),
            rng: Rng::new(seed ^ 0x6c65_6172_6e73),
            seen: BTreeSet::new(),
            kept: Vec::new(),
            aims: Vec::new(),
            newest: Vec::new(),
        }
    }

    /// Keeps `case` if `features` (drained) hold one not seen before, and
    /// says whether it did; `aims`: where its run invites an aimed change
    /// (a write, a refused guess; live runs show no writes), asked only of
    /// a case kept, since most are not and a schedule is the hot
    /// path.
    pub fn learn(&mut self, case: Case, features: &mut Vec<u64>, aims: impl FnOnce() -> Vec<Aim>) -> bool {
        let mut new = false;
        for f in features.drain(..) {
            new |= self.seen.insert(f);
        }
        if !new {
            return false;
        }
        let rng = &mut self.rng;
        let aims = aims();
        let slot = if self.kept.len() < KEPT {
            self.kept.push(case);
            self.aims.push(aims);
            self.kept.len() - 1
        } else {
            let slot = rng.below(KEPT);
            self.kept[slot] = case;
            self.aims[slot] = aims;
            slot
        };
        self.newest.retain(|s| *s != slot);
        self.newest.push(slot);
        if self.newest.len() > NEWEST {
            self.newest.remove(0);
        }
        true
    }

    /// Behaviours seen so far: the search's coverage.
    pub fn behaviours(&self) -> usize {
        self.seen.len()
    }

    /// Cases kept.
    pub fn kept(&self) -> usize {
        self.kept.len()
    }

    /// A fresh case one time in [`FRESH`] (and until something is kept),
    /// otherwise a kept one, mutated.
    pub fn draw(&mut self) -> Case {
        let kept = &self.kept;
        let rng = &mut self.rng;
        if kept.is_empty() || rng.one_in(FRESH) {
            loop {
                if let Ok(tree) = self.strategy.new_tree(&mut self.fresh) {
                    let (scenario, choices) = tree.current();
                    return (Arc::new(scenario), choices);
                }
            }
        }
        let at = if rng.one_in(2) {
            self.newest[rng.below(self.newest.len())]
        } else {
            // Of two kept cases, the one with fewer requests: small cases
            // run faster and reduce faster, as fuzzers favour.
            let (a, b) = (rng.below(kept.len()), rng.below(kept.len()));
            if kept[b].0.requests.len() < kept[a].0.requests.len() {
                b
            } else {
                a
            }
        };
        let (parent, parent_choices) = &kept[at];
        let donor = &kept[rng.below(kept.len())].0;
        let (mut scenario, mut choices) = ((**parent).clone(), parent_choices.clone());
        mutate(rng, &mut scenario, &mut choices, donor, &self.aims[at]);
        (Arc::new(scenario), choices)
    }
}
