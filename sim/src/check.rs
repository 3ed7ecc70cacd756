//! Checking a scenario's expectations: sweep each variant it names and
//! compare what was found with what the file expects.

use std::collections::BTreeSet;
use std::sync::Arc;

use otpsim_core::Variant;

use crate::invariant::Invariant;
use crate::scenario::{Expectation, Scenario};
use crate::schedule::Strategy;
use crate::sweep::{sweep, Counterexample, Sweep};

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
        let violated = self.sweep.violated();
        if violated.is_empty() {
            "pass".to_string()
        } else {
            let names: Vec<&str> = violated.iter().map(|i| i.name()).collect();
            format!("fail:{}", names.join(","))
        }
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
