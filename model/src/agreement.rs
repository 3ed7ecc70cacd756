//! A live sweep of a scenario beside the simulator's schedules of it: the
//! check that the two engines share one model of the network (`otpsim
//! check --target T --compare`, and the agreement test in `tests/live.rs`).
//!
//! Rows are compared on two things. Every network order a live run took
//! (see `Trace::network_order`) must be one the simulator also produced:
//! the due rule, navigation and the probe are the same in both. And the
//! verdicts must agree: both meet the file's expectation, or both miss
//! it. A verdict may still differ where it depends on what happens inside
//! the server (a race between two threads of one process), which the
//! simulator schedules on purpose and a real server rarely shows.

use std::collections::{BTreeMap, BTreeSet};

use crate::invariant::Invariant;
use crate::scenario::Expectation;

/// Network orders, each with the invariants the runs that took it broke.
pub type Orders = BTreeMap<Vec<String>, BTreeSet<Invariant>>;

/// One scenario, one variant: the simulator beside a live target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// What the simulator's schedules broke, together.
    pub simulated: BTreeSet<Invariant>,
    /// Whether the two verdicts both meet the expectation or both miss it
    /// (with no expectation, or one the target cannot observe: whether
    /// they broke the same invariants, counting only what the target
    /// observes).
    pub verdicts_agree: bool,
    /// Live runs whose network order the simulator also produced.
    pub seen: usize,
    /// Live runs.
    pub runs: usize,
    /// The first live network order the simulator never produced.
    pub unseen: Option<Vec<String>>,
}

impl Agreement {
    /// Compares the simulator's `simulated` orders with the `live` runs
    /// (each one's order and what it broke), against `expected`; the
    /// target cannot observe `not_observable`.
    pub fn of(
        simulated: &Orders,
        live: &[(Vec<String>, BTreeSet<Invariant>)],
        expected: Option<Expectation>,
        not_observable: &[Invariant],
    ) -> Agreement {
        let all_simulated: BTreeSet<Invariant> = simulated.values().flatten().copied().collect();
        let all_live: BTreeSet<Invariant> = live.iter().flat_map(|(_, broken)| broken).copied().collect();
        let verdicts_agree = match expected.map(|e| (e, e.judged(&all_live, not_observable))) {
            Some((e, Some(live_holds))) => e.met_by(&all_simulated) == live_holds,
            _ => {
                let seen: BTreeSet<Invariant> = all_simulated
                    .iter()
                    .filter(|i| !not_observable.contains(i))
                    .copied()
                    .collect();
                seen == all_live
            }
        };
        let unseen: Vec<&Vec<String>> = live
            .iter()
            .map(|(order, _)| order)
            .filter(|order| !simulated.contains_key(*order))
            .collect();
        Agreement {
            simulated: all_simulated,
            verdicts_agree,
            seen: live.len() - unseen.len(),
            runs: live.len(),
            unseen: unseen.first().map(|o| (*o).clone()),
        }
    }

    /// The verdicts agree and the simulator produced every live order.
    pub fn agrees(&self) -> bool {
        self.verdicts_agree && self.seen == self.runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn a_live_order_the_simulator_never_made_is_a_disagreement_though_the_verdicts_agree() {
        let a = order(&["send #1 signup", "response #1"]);
        let b = order(&["send #1 signup", "mail for ana@example.com", "response #1"]);
        let simulated: Orders = [(a.clone(), BTreeSet::new())].into();
        let live = vec![(a, BTreeSet::new()), (b.clone(), BTreeSet::new())];
        let agreement = Agreement::of(&simulated, &live, Some(Expectation::Pass), &[]);
        assert!(agreement.verdicts_agree);
        assert_eq!((agreement.seen, agreement.runs), (1, 2));
        assert_eq!(agreement.unseen, Some(b));
        assert!(!agreement.agrees());
    }

    #[test]
    fn verdicts_agree_when_both_miss_and_differ_when_one_meets() {
        let a = order(&["send #1 signup"]);
        let broke: BTreeSet<Invariant> = [Invariant::VerifySucceeds].into();
        let simulated: Orders = [(a.clone(), broke.clone())].into();
        let expect = Some(Expectation::FailOn(Invariant::SinglePending));
        let both_miss = Agreement::of(&simulated, &[(a.clone(), broke.clone())], expect, &[]);
        assert!(both_miss.agrees(), "neither found single_pending");
        let expect = Some(Expectation::FailOn(Invariant::VerifySucceeds));
        let one_meets = Agreement::of(&simulated, &[(a, BTreeSet::new())], expect, &[]);
        assert!(!one_meets.verdicts_agree);
    }
}
