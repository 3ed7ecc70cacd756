//! loom explores every interleaving of the small models (its own test
//! binary). It must find the break where there is one, and none in
//! `idempotent`. Exploration is never cut short by time: loom's
//! `max_duration` ends silently as a pass, so it is not used.

mod models;

use std::cell::RefCell;
use std::collections::BTreeSet;

use models::{run, Model};
use otpsim_core::platform::Loom;
use otpsim_sim::Invariant;

/// Explores `model` exhaustively (up to `preemptions`, if given) and
/// returns every invariant some interleaving broke and the iterations.
fn explore(model: Model, variant: &str, workers: usize, preemptions: Option<usize>) -> (BTreeSet<Invariant>, usize) {
    // Per test thread: loom runs the model's coroutines on the calling
    // thread, and tests run in parallel.
    thread_local! {
        static FOUND: RefCell<(BTreeSet<Invariant>, usize, Option<usize>)> = const { RefCell::new((BTreeSet::new(), 0, None)) };
    }
    FOUND.with(|f| *f.borrow_mut() = (BTreeSet::new(), 0, None));
    let variant = variant.parse().unwrap();
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = preemptions;
    builder.max_duration = None;
    builder.check(move || {
        let broken = run::<Loom>(model, variant, workers);
        FOUND.with(|f| {
            let mut found = f.borrow_mut();
            found.1 += 1;
            if broken.is_some() && found.2.is_none() {
                found.2 = Some(found.1);
            }
            found.0.extend(broken);
        });
    });
    let (broken, iterations, first) = FOUND.with(|f| f.borrow().clone());
    eprintln!(
        "loom {model:?} {variant} workers={workers} bound={preemptions:?}: {iterations} iterations, broken {broken:?}, first at {first:?}"
    );
    (broken, iterations)
}

#[test]
fn loom_finds_naive_losing_the_registration_of_a_double_click() {
    let (broken, iterations) = explore(Model::DoubleClickSignup, "naive", 1, None);
    assert!(broken.contains(&Invariant::VerifySucceeds), "{broken:?}");
    assert!(broken.contains(&Invariant::SinglePending), "{broken:?}");
    assert!(iterations > 1);
}

#[test]
fn loom_finds_naives_double_verify_500() {
    let (broken, _) = explore(Model::DoubleVerify, "naive", 1, None);
    assert!(broken.contains(&Invariant::ClearErrors), "{broken:?}");
}

#[test]
fn loom_finds_naive_losing_a_verify_to_a_late_signup() {
    let (broken, _) = explore(Model::SignupRacesVerify, "naive", 1, None);
    assert!(broken.contains(&Invariant::VerifySucceeds), "{broken:?}");
}

#[test]
fn loom_finds_the_seed_fixs_check_then_act_on_one_worker_and_its_break_on_two() {
    // is_request_allowed and set_request_lock are two steps: both clicks
    // can pass the check on one threaded worker.
    let (one, _) = explore(Model::DoubleClickSignup, "seed_fix", 1, None);
    assert!(one.contains(&Invariant::VerifySucceeds), "{one:?}");
    let (two, _) = explore(Model::DoubleClickSignup, "seed_fix", 2, None);
    assert!(two.contains(&Invariant::VerifySucceeds), "{two:?}");
}

// idempotent's transactions take many more lock steps (BEGIN, the busy
// waits, the outbox); unbounded, two signups took 805 s here. Bounded at
// three preemptions every model below runs in seconds; no violation.

#[test]
fn loom_finds_no_break_in_idempotent_double_signup() {
    for workers in [1, 2] {
        let (broken, iterations) = explore(Model::DoubleClickSignup, "idempotent", workers, Some(3));
        assert!(broken.is_empty(), "{broken:?}");
        assert!(iterations > 1);
    }
}

#[test]
fn loom_finds_no_break_in_idempotent_double_verify() {
    for workers in [1, 2] {
        let (broken, iterations) = explore(Model::DoubleVerify, "idempotent", workers, Some(3));
        assert!(broken.is_empty(), "{broken:?}");
        assert!(iterations > 1, "one iteration explores no interleaving");
    }
}

#[test]
fn loom_finds_no_break_in_idempotent_signup_racing_verify() {
    let (broken, iterations) = explore(Model::SignupRacesVerify, "idempotent", 2, Some(3));
    assert!(broken.is_empty(), "{broken:?}");
    assert!(iterations > 1, "one iteration explores no interleaving");
}
