//! The flows on real std threads: the same code the model checkers run.

use crate::common::double_click;
use otpsim_core::platform::Std;
use otpsim_core::Variant;

#[test]
fn idempotent_stays_consistent_on_real_threads() {
    for run in 0..200 {
        let outcome = double_click::<Std>(Variant::Idempotent, 2);
        assert!(outcome.is_consistent(), "run {run}: {outcome:?}");
    }
}

#[test]
fn naive_on_real_threads_never_leaves_more_than_two_rows() {
    // Real threads seldom interleave two short handlers; what they can show
    // is only the bound, not the race (the loom and shuttle tests find it).
    for _ in 0..200 {
        let outcome = double_click::<Std>(Variant::Naive, 1);
        assert!((1..=2).contains(&outcome.pending), "{outcome:?}");
        assert_eq!(outcome.codes.len(), 2);
    }
}
