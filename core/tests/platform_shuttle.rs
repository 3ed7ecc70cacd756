//! The flows under shuttle's random and PCT schedulers.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::double_click;
use otpsim_core::platform::Shuttle;
use otpsim_core::Variant;

#[test]
fn shuttle_pct_finds_two_pending_rows_for_naive() {
    static FOUND: AtomicUsize = AtomicUsize::new(0);
    shuttle::check_pct(
        || {
            if double_click::<Shuttle>(Variant::Naive, 1).pending == 2 {
                FOUND.fetch_add(1, Ordering::SeqCst);
            }
        },
        200,
        2,
    );
    assert!(
        FOUND.load(Ordering::SeqCst) > 0,
        "200 PCT schedules never interleaved the two signups"
    );
}

#[test]
fn shuttle_random_keeps_idempotent_consistent() {
    shuttle::check_random(
        || {
            let outcome = double_click::<Shuttle>(Variant::Idempotent, 2);
            assert!(outcome.is_consistent(), "{outcome:?}");
        },
        300,
    );
}
