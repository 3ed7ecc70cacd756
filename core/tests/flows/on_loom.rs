//! The flows under loom: every interleaving of two concurrent signups.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::common::double_click;
use otpsim_core::platform::Loom;
use otpsim_core::Variant;

#[test]
fn loom_finds_two_pending_rows_for_naive() {
    static FOUND: AtomicBool = AtomicBool::new(false);
    loom::model(|| {
        if double_click::<Loom>(Variant::Naive, 1).pending == 2 {
            FOUND.store(true, Ordering::SeqCst);
        }
    });
    assert!(
        FOUND.load(Ordering::SeqCst),
        "no interleaving left two pending registrations"
    );
}

#[test]
fn loom_proves_idempotent_consistent_in_every_interleaving_up_to_three_preemptions() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    // Unbounded, the two signups' many lock acquisitions (each statement,
    // the outbox, the busy-wait yields) took loom 805 s here; three
    // preemptions already cover a signup preempted inside the other's
    // transaction, between COMMIT and the mail, and after it, in 0.2 s.
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        RUNS.fetch_add(1, Ordering::SeqCst);
        let outcome = double_click::<Loom>(Variant::Idempotent, 2);
        assert!(outcome.is_consistent(), "{outcome:?}");
    });
    assert!(
        RUNS.load(Ordering::SeqCst) > 1,
        "loom explored a single interleaving: the model has no concurrency"
    );
}
