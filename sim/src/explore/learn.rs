//! The search that learns, as a coverage-guided fuzzer does: a case that
//! shows behaviour no earlier case showed (see [`super::coverage`]) is
//! kept, and most later cases are kept ones changed a little (see
//! [`super::mutate`]); one in four is drawn afresh, as the blind search
//! draws it. What counts as new includes which write each read saw
//! (reads-from), the signal that the RFF work (ASPLOS 2024) found to guide
//! concurrency testing far better than blind or PCT sampling.
//!
//! Deterministic: the fresh cases come from a seeded proptest runner, the
//! picks and mutations from a seeded generator, and the kept cases live in
//! ordered containers (the features seen are a set that is only asked
//! whether it holds one, never walked); with a budget in schedules the
//! findings are a pure function of the seed and the budget.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use foldhash::fast::FixedState;
use otpsim_core::Flow;
use proptest::strategy::{BoxedStrategy, Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};

use super::coverage::features;
use super::generate::scenario_and_choices;
use super::mutate::{aims, mutate, Aim, Rng, MAX_CHOICES};
use super::{minimal, seeded, Finding, Limit, Origin};
use crate::invariant::Invariant;
use crate::scenario::{FaultKind, Scenario, StatementChoice};
use crate::sweep::{run_cases, Case, Judged};
use crate::world::RunOutcome;

/// Kept cases at most: when full, a new one replaces one at random, so
/// memory stays flat however long the search runs.
const KEPT: usize = 4096;
/// One case in this many is drawn afresh.
const FRESH: usize = 4;
/// Of the picks from the kept cases, half come from the newest few: what
/// was just found new is where the next new thing most likely is.
const NEWEST: usize = 8;
/// A sweep after a fault tries one switch at each of this many scheduling
/// points after it: the faulted handler's next statements (a ROLLBACK, say)
/// come first, and the switch that matters lands a few points later.
const AFTER: usize = 6;
/// Cases queued by sweeps at most; a sweep that finds no room for all of
/// its cases is dropped whole (its first points are the ones that break
/// least often).
const QUEUED: usize = 64;

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
        let outcome = &judged.outcome;
        let kept = Arc::clone(&scenario);
        // Only the writes: a refused guess is reached here by the other
        // changes within a few hundred schedules, and aiming at it too
        // would take turns from the faults that find the hard pairs; so
        // would a stranger's signup after a pending one. A live run, which
        // shows no writes, aims at those two instead.
        // Each with where its statement started in the schedule.
        let writes = || {
            aims(&kept, &outcome.trace)
                .into_iter()
                .filter_map(|a| match a {
                    Aim::Write { request, statement, .. } => Some(Aim::Write {
                        request,
                        statement,
                        choice: outcome.choice_at(request, statement),
                    }),
                    Aim::Refused { .. } | Aim::Pending { .. } => None,
                })
                .collect()
        };
        // Only a case kept is swept, and a swept case is never kept (see
        // [`Pool::learn`]), so sweeps do not breed sweeps.
        let struck = struck(&scenario, outcome);
        let again = (!struck.is_empty()).then(|| (Arc::clone(&scenario), judged.choices.clone()));
        if self.pool.learn((scenario, judged.choices), &mut self.features, writes) {
            if let Some(case) = again {
                self.pool.sweep_after(&case, &judged.widths, &struck);
            }
        }
    }
}

/// Where in the schedule a database fault struck a request sent more than
/// once: right after it, the other copy may run into what the failure
/// left (seed_fix's hard pair: a double-clicked verify whose COMMIT fails
/// under Python's driver, and the other copy run before the first one's
/// clean-up).
fn struck(scenario: &Scenario, outcome: &RunOutcome) -> BTreeSet<usize> {
    scenario
        .faults
        .iter()
        .filter(|f| matches!(f.kind, FaultKind::Db(_)) && scenario.requests[f.request].repeat > 1)
        .filter_map(|f| match f.statement {
            StatementChoice::Nth(n) => outcome.choice_at(f.request, n),
            StatementChoice::Every => None,
        })
        .collect()
}

/// What a learning search knows between cases: every behaviour seen, the
/// cases that first showed one, and the generators that draw the next.
/// The simulator's rounds and the live search (`otpsim explore --target`)
/// both draw from one; each brings its own run and its own features.
pub struct Pool {
    fresh: TestRunner,
    strategy: BoxedStrategy<(Scenario, Vec<u8>)>,
    rng: Rng,
    /// Every feature any case showed: a hash set with a fixed seed, only
    /// ever asked whether it holds one (1.05x a search against an ordered
    /// set, BENCHMARKS.md session 24).
    seen: HashSet<u64, FixedState>,
    kept: Vec<Case>,
    /// Where each kept case's run invites an aimed change: its writes, to
    /// strike with a fault; its refused guesses, to repeat.
    aims: Vec<Vec<Aim>>,
    /// Where the newest kept cases are: the last `NEWEST` slots written.
    newest: Vec<usize>,
    /// Cases drawn before any other (see [`Pool::sweep_after`]).
    queued: VecDeque<Case>,
}

impl Pool {
    /// An empty pool whose draws are a pure function of `seed` and of
    /// what it is told.
    pub fn new(seed: u64) -> Pool {
        Pool {
            fresh: TestRunner::new_with_rng(Config::default(), seeded(seed)),
            strategy: scenario_and_choices().boxed(),
            rng: Rng::new(seed ^ 0x6c65_6172_6e73),
            seen: HashSet::with_hasher(FixedState::default()),
            kept: Vec::new(),
            aims: Vec::new(),
            newest: Vec::new(),
            queued: VecDeque::new(),
        }
    }

    /// Keeps `case` if `features` (drained) hold one not seen before, and
    /// says whether it did; `aims`: where its run invites an aimed change
    /// (a write, a refused guess; live runs show no writes), asked only of
    /// a case kept, since most are not and a schedule is the hot
    /// path.
    ///
    /// A case a sweep queued ([`Pool::sweep_after`]) adds what it showed
    /// to what was seen, but is not kept: in the first hundreds of
    /// schedules most kept cases with a fault swept up to twelve
    /// children each into the kept cases and the newest, and naive's
    /// `no_orphans`, a shape of requests with no fault, took four times
    /// the schedules (BENCHMARKS.md). A swept case shares its parent's
    /// scenario, which is how it is told apart: a mutated or fresh case
    /// has a scenario of its own.
    pub fn learn(&mut self, case: Case, features: &mut Vec<u64>, aims: impl FnOnce() -> Vec<Aim>) -> bool {
        let mut new = false;
        for f in features.drain(..) {
            new |= self.seen.insert(f);
        }
        if !new || self.kept.iter().any(|(kept, _)| Arc::ptr_eq(kept, &case.0)) {
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

    /// Queues `case` again with one switch at each of the [`AFTER`]
    /// scheduling points from each choice in `struck` on, to each of the
    /// next two tasks in the order a choice indexes: a preemption bound
    /// of one, spent where a fault just struck, instead of one switch
    /// drawn among all the points of a schedule. `widths`: how many tasks
    /// could run at each of the case's points (its run's
    /// [`Judged::widths`]); a choice counts modulo it. Each point is
    /// swept once however many faults struck near it, and a switch that
    /// would run the task the case ran there (2 where two could run and
    /// it ran the first), or that lands past the case's last point, is
    /// not queued: it would run an execution already run. Before, 1,148
    /// of the 2,372 cases naive's search queued in 30,000 schedules on
    /// seed 13 did.
    pub fn sweep_after(&mut self, case: &Case, widths: &[u8], struck: &BTreeSet<usize>) {
        let points = widths.len().min(case.1.len()).min(MAX_CHOICES);
        let window: BTreeSet<usize> = struck
            .iter()
            .flat_map(|at| *at..at + AFTER)
            .filter(|i| *i < points)
            .collect();
        let mut sweep = Vec::new();
        for i in window {
            let width = widths[i].max(1);
            let mut tried = vec![case.1[i] % width];
            for switch in 1..=2u8 {
                let runs = switch % width;
                if !tried.contains(&runs) {
                    tried.push(runs);
                    let mut choices = case.1.clone();
                    choices[i] = runs;
                    sweep.push((Arc::clone(&case.0), choices));
                }
            }
        }
        if self.queued.len() + sweep.len() <= QUEUED {
            self.queued.extend(sweep);
        }
    }

    /// Behaviours seen so far: the search's coverage.
    pub fn behaviours(&self) -> usize {
        self.seen.len()
    }

    /// Cases kept.
    pub fn kept(&self) -> usize {
        self.kept.len()
    }

    /// A queued case first; else a fresh case one time in [`FRESH`] (and
    /// until something is kept), otherwise a kept one, mutated.
    pub fn draw(&mut self) -> Case {
        if let Some(case) = self.queued.pop_front() {
            return case;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explore::mutate::tests::hard_pair;
    use crate::invariant::Invariant;

    /// The hard pair's case, run with no switch, has one struck fault;
    /// swept, one of its cases breaks `one_account`, and no two of its
    /// cases, nor any of them and the case itself, run the same
    /// execution. Only a case kept for new behaviour is swept; a swept
    /// case is never kept, however new what it shows; and a case whose
    /// faulted request is sent once has nothing to sweep.
    #[test]
    fn a_case_whose_fault_struck_a_double_click_is_swept_right_after_it() {
        let seed_fix = otpsim_core::Variant::SeedFix(otpsim_core::SeedFixSwitches::ALL_ON);
        let scenario = hard_pair();
        let parent = crate::sweep::judge(&scenario, &seed_fix, 1, &[], 1);
        assert!(parent.violations.iter().all(|v| v.invariant != Invariant::OneAccount));
        let places = struck(&scenario, &parent.outcome);
        let at: Vec<usize> = places.iter().copied().collect();
        assert_eq!(at.len(), 1);
        let mut pool = Pool::new(1);
        let case = (Arc::clone(&scenario), parent.choices.clone());
        pool.sweep_after(&case, &parent.widths, &places);
        let mut swept = Vec::new();
        while !pool.queued.is_empty() {
            swept.push(pool.draw());
        }
        let points = (at[0]..at[0] + AFTER).filter(|i| *i < parent.widths.len());
        let alternatives: usize = points.map(|i| if parent.widths[i] > 2 { 2 } else { 1 }).sum();
        assert_eq!(swept.len(), alternatives);
        assert!(
            swept.len() < 2 * AFTER,
            "a point where two tasks could run has one other choice"
        );
        let ran: Vec<crate::sweep::Judged> = swept
            .iter()
            .map(|(s, c)| crate::sweep::judge(s, &seed_fix, 1, c, 1))
            .collect();
        let mut executions: BTreeSet<&Vec<u8>> = ran.iter().map(|j| &j.choices).collect();
        assert_eq!(
            executions.len(),
            swept.len(),
            "each swept case runs an execution of its own"
        );
        assert!(executions.insert(&parent.choices), "none runs the case itself");
        assert!(ran
            .iter()
            .any(|j| j.violations.iter().any(|v| v.invariant == Invariant::OneAccount)));

        // Two faults that struck a point apart sweep each point once.
        let mut overlapping = Pool::new(1);
        overlapping.sweep_after(&case, &parent.widths, &BTreeSet::from([at[0], at[0] + 1]));
        let queued = &overlapping.queued;
        let distinct: BTreeSet<&Vec<u8>> = queued.iter().map(|(_, c)| c).collect();
        assert_eq!(distinct.len(), queued.len(), "no case queued twice");
        let one_more = usize::from(at[0] + AFTER < parent.widths.len());
        assert!((alternatives + one_more..=alternatives + 2 * one_more).contains(&queued.len()));

        // Learned from, a case with a struck fault that shows something new
        // is kept and swept; shown again, nothing new, it is not. A swept
        // case that shows something new is not kept, and sweeps nothing.
        let mut learner = Learner {
            limit: Limit {
                schedules: 1,
                deadline: None,
            },
            start: Instant::now(),
            pool,
            features: Vec::new(),
            hits: Vec::new(),
            schedules: 0,
        };
        let judged = |j: &crate::sweep::Judged| crate::sweep::Judged {
            index: 0,
            choices: j.choices.clone(),
            widths: j.widths.clone(),
            outcome: j.outcome.clone(),
            violations: Vec::new(),
        };
        learner.learn(Arc::clone(&scenario), judged(&parent));
        assert_eq!(learner.pool.kept(), 1);
        assert_eq!(learner.pool.queued.len(), alternatives);
        learner.pool.queued.clear();
        learner.learn(Arc::clone(&scenario), judged(&parent));
        assert!(learner.pool.queued.is_empty());
        let behaviours = learner.pool.behaviours();
        for child in &ran {
            learner.learn(Arc::clone(&scenario), judged(child));
        }
        assert!(
            learner.pool.behaviours() > behaviours,
            "the swept cases show something new"
        );
        assert_eq!(learner.pool.kept(), 1);
        assert!(learner.pool.queued.is_empty());

        let mut once = (*scenario).clone();
        once.requests[1].repeat = 1;
        let once = Arc::new(once);
        let (outcome, _, _) = crate::sweep::replay(&once, &seed_fix, 1, &[], 1);
        assert!(struck(&once, &outcome).is_empty());
    }
}
