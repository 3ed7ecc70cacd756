//! The flows under loom: every interleaving of two concurrent signups.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::double_click;
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
fn loom_proves_idempotent_consistent_in_every_interleaving() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    loom::model(|| {
        RUNS.fetch_add(1, Ordering::SeqCst);
        let outcome = double_click::<Loom>(Variant::Idempotent, 2);
        assert!(outcome.is_consistent(), "{outcome:?}");
    });
    assert!(
        RUNS.load(Ordering::SeqCst) > 1,
        "loom explored a single interleaving: the model has no concurrency"
    );
}
