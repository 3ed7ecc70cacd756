//! The blind search: proptest draws a scenario and a schedule together,
//! the world runs it, and a violation of an invariant not yet found is a
//! failing case that proptest shrinks, scenario and interleaving at once.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use otpsim_core::Flow;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use super::generate::scenario_and_choices;
use super::{minimal, run_choices, seeded, Finding, Limit, Origin};
use crate::invariant::Invariant;

/// One round: schedules run, and the findings. `progress` is told the
/// schedules run so far and the invariants found, now and then.
pub(super) fn round<F: Flow>(
    flow: &F,
    limit: Limit,
    seed: u64,
    origin: Origin,
    progress: &dyn Fn(u64, usize),
) -> (u64, Vec<Finding>) {
    let start = Instant::now();
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
    let mut master = TestRunner::new_with_rng(config.clone(), seeded(seed));
    let strategy = scenario_and_choices();
    let known: RefCell<BTreeSet<Invariant>> = RefCell::default();
    let schedules = Cell::new(0u64);
    let first_hit: Cell<Option<(u64, f64)>> = Cell::new(None);
    let mut findings = Vec::new();
    let spent = || limit.reached(schedules.get());
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
                // The first invariant not yet known that the shrunk case breaks.
                let (_, violations, _) = run_choices(&Arc::new(scenario.clone()), flow, choices.clone());
                let Some(invariant) = violations
                    .iter()
                    .map(|v| v.invariant)
                    .find(|i| !known.borrow().contains(i))
                else {
                    continue;
                };
                if let Some(finding) = minimal(
                    flow,
                    (scenario, choices),
                    invariant,
                    origin,
                    schedules_to_hit,
                    seconds_to_hit,
                ) {
                    known.borrow_mut().insert(finding.invariant);
                    findings.push(finding);
                }
            }
        }
    }
    (schedules.get(), findings)
}
