//! Checking a scenario's expectations: sweep each variant it names and
//! compare what was found with what the file expects.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use otpsim_core::{Flow, Variant};

use crate::agreement::{Agreement, Orders};
use crate::invariant::Invariant;
use crate::scenario::{Expectation, Scenario};
use crate::schedule::Strategy;
use crate::sweep::{run_schedules, sweep, Counterexample, Sweep};
use crate::world::RunPlan;

/// One row of `otpsim check`: a scenario and a variant.
#[derive(Debug, Clone)]
pub struct CheckRow {
    /// The variant.
    pub variant: Variant,
    /// What the file expects.
    pub expected: Expectation,
    /// What the sweep found.
    pub sweep: Sweep,
}

impl CheckRow {
    /// Whether the expectation holds.
    pub fn holds(&self) -> bool {
        self.sweep.meets(self.expected)
    }

    /// The counterexample to show or replay for this row, if any.
    pub fn counterexample(&self) -> Option<&Counterexample> {
        self.sweep.counterexample_for(self.expected)
    }

    /// Found, in the words of an expectation: `pass` or the broken invariants.
    pub fn found(&self) -> String {
        Expectation::found(&self.sweep.violated())
    }
}

/// Sweeps every variant `scenario` names; `seed` overrides the file's.
pub fn check(scenario: &Arc<Scenario>, strategy: Strategy, seed: Option<u64>) -> Vec<CheckRow> {
    scenario
        .expect
        .iter()
        .map(|&(variant, expected)| {
            let enough = move |found: &BTreeSet<Invariant>| match expected {
                // One violation already refutes a pass.
                Expectation::Pass => !found.is_empty(),
                Expectation::Fail => !found.is_empty(),
                Expectation::FailOn(i) => found.contains(&i),
            };
            let sweep = sweep(
                scenario,
                &variant,
                strategy,
                scenario.schedules,
                seed.unwrap_or(scenario.seed),
                enough,
            );
            CheckRow {
                variant,
                expected,
                sweep,
            }
        })
        .collect()
}

/// Every network order (see `Trace::network_order`) that `schedules`
/// schedules of `flow` on `scenario` produced, with the invariants the
/// schedules of each broke: what a live run of the same file is compared
/// with (`otpsim check --target T --compare`). Faults at a statement are
/// applied at their first position only; a live run has none.
pub fn network_orders<F: Flow>(
    scenario: &Arc<Scenario>,
    flow: &F,
    strategy: Strategy,
    schedules: u32,
    seed: u64,
) -> Orders {
    let plan = RunPlan {
        scenario: Arc::clone(scenario),
        flow: flow.clone(),
        faults: crate::sweep::fault_sets(&scenario.faults, 1),
        seed,
    };
    let orders: Arc<Mutex<Orders>> = Arc::default();
    let sink = Arc::clone(&orders);
    let pinned = scenario.choices.clone().unwrap_or_default();
    run_schedules(plan, strategy.scheduler(seed, schedules, &pinned), move |judged| {
        let broken = judged.violations.iter().map(|v| v.invariant);
        let mut orders = sink.lock().unwrap_or_else(|p| p.into_inner());
        orders
            .entry(judged.outcome.trace.network_order())
            .or_default()
            .extend(broken);
        true
    });
    let orders = std::mem::take(&mut *orders.lock().unwrap_or_else(|p| p.into_inner()));
    orders
}

/// Simulated schedules a live sweep is compared with, at least.
pub const COMPARED_SCHEDULES: u32 = 2_000;

/// The simulator's schedules of `scenario` on `variant` beside a live
/// sweep of it: `live` is each live run's network order and what it
/// broke, `not_observable` what the target cannot see. Uniform choices,
/// and more of them than a check takes: the point is every order the
/// simulator can make, not the likeliest bug.
pub fn beside_live(
    scenario: &Arc<Scenario>,
    variant: Variant,
    live: &[(Vec<String>, BTreeSet<Invariant>)],
    not_observable: &[Invariant],
) -> Agreement {
    let schedules = scenario.schedules.max(COMPARED_SCHEDULES);
    let orders = network_orders(scenario, &variant, Strategy::Random, schedules, scenario.seed);
    let expected = scenario.expect.iter().find(|(v, _)| *v == variant).map(|(_, e)| *e);
    Agreement::of(&orders, live, expected, not_observable)
}
