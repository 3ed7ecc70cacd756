//! The flows under shuttle's random and PCT schedulers, and the shuttle
//! platform's lock against shuttle's own.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::double_click;
use otpsim_core::platform::{Lock, Platform, Shuttle};
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

/// What a scheduler saw at every scheduling point of one execution: the
/// runnable tasks, the current one, and whether it was yielding.
type Seen = Vec<(Vec<usize>, Option<usize>, bool)>;

/// Picks a runnable task at random from a seeded generator and writes
/// down what it was offered.
struct Witness {
    rng: u64,
    seen: Arc<std::sync::Mutex<Seen>>,
    started: bool,
}

impl shuttle::scheduler::Scheduler for Witness {
    fn new_execution(&mut self) -> Option<shuttle::scheduler::Schedule> {
        (!std::mem::replace(&mut self.started, true)).then(|| shuttle::scheduler::Schedule::new(self.rng))
    }
    fn next_task(
        &mut self,
        runnable: &[&shuttle::scheduler::Task],
        current: Option<shuttle::scheduler::TaskId>,
        is_yielding: bool,
    ) -> Option<shuttle::scheduler::TaskId> {
        let ids = runnable.iter().map(|t| usize::from(t.id())).collect();
        self.seen
            .lock()
            .unwrap()
            .push((ids, current.map(usize::from), is_yielding));
        // SplitMix64.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        runnable.get(z as usize % runnable.len().max(1)).map(|t| t.id())
    }
    fn next_u64(&mut self) -> u64 {
        self.rng
    }
}

fn witnessed(seed: u64, program: impl Fn() + Send + Sync + 'static) -> Seen {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let witness = Witness {
        rng: seed,
        seen: Arc::clone(&seen),
        started: false,
    };
    shuttle::Runner::new(witness, shuttle::Config::new()).run(program);
    let seen = seen.lock().unwrap().clone();
    seen
}

/// Three tasks: each takes `a`, and inside it `b` (so that a task can find
/// `a` held while its holder switches out), and wakes the others; the
/// second also takes `b` alone first, so `b` is contended too. The first
/// two wait until all three have been through `a`. Then the values are
/// taken out.
fn contended_on_the_platform() {
    type M<T> = <Shuttle as Platform>::Mutex<T>;
    let a = Arc::new(M::new(0u32));
    let b = Arc::new(M::new(0u32));
    let c = Arc::new(Shuttle::condvar());
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let (a, b, c) = (Arc::clone(&a), Arc::clone(&b), Arc::clone(&c));
            Shuttle::spawn(move || {
                if i == 1 {
                    b.with(|b| *b += 10);
                }
                a.with(|a| {
                    *a += 1;
                    b.with(|b| *b += i);
                });
                Shuttle::notify_all(&c);
                if i < 2 {
                    Shuttle::wait_while(&a, &c, |a| *a < 3);
                }
            })
        })
        .collect();
    tasks.into_iter().for_each(Shuttle::join);
    let a = Arc::try_unwrap(a).unwrap_or_else(|_| panic!("every task joined"));
    let b = Arc::try_unwrap(b).unwrap_or_else(|_| panic!("every task joined"));
    assert_eq!((a.into_inner(), b.into_inner()), (3, 13));
}

/// The same program on shuttle's own `Mutex` and `Condvar`.
fn contended_on_shuttles_own() {
    use shuttle::sync::{Condvar, Mutex};
    let a = Arc::new(Mutex::new(0u32));
    let b = Arc::new(Mutex::new(0u32));
    let c = Arc::new(Condvar::new());
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let (a, b, c) = (Arc::clone(&a), Arc::clone(&b), Arc::clone(&c));
            shuttle::thread::Builder::new()
                .stack_size(otpsim_core::platform::TASK_STACK_SIZE)
                .spawn(move || {
                    if i == 1 {
                        *b.lock().unwrap() += 10;
                    }
                    {
                        let mut a = a.lock().unwrap();
                        *a += 1;
                        *b.lock().unwrap() += i;
                    }
                    c.notify_all();
                    if i < 2 {
                        let mut a = a.lock().unwrap();
                        while *a < 3 {
                            a = c.wait(a).unwrap();
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    tasks.into_iter().for_each(|t| t.join().unwrap());
    let a = Arc::try_unwrap(a).unwrap_or_else(|_| panic!("every task joined"));
    let b = Arc::try_unwrap(b).unwrap_or_else(|_| panic!("every task joined"));
    assert_eq!((a.into_inner().unwrap(), b.into_inner().unwrap()), (3, 13));
}

/// The platform's mutex and condition variable are its own, for speed, but
/// a saved `choices` vector means what it meant on shuttle's: at every
/// scheduling point the same tasks can run, on every one of a thousand
/// random schedules of a program where tasks block on a held lock and on
/// the condition variable.
#[test]
fn the_platforms_lock_offers_the_scheduler_what_shuttles_own_does() {
    let mut contended = 0;
    for seed in 0..1000 {
        let ours = witnessed(seed, contended_on_the_platform);
        let theirs = witnessed(seed, contended_on_shuttles_own);
        assert_eq!(ours, theirs, "seed {seed}: the schedulers were offered different tasks");
        // A spawned task (main, 0, only ever blocks in a join) that stopped
        // being runnable where it stood and ran again later: one that
        // blocked on a lock or on the condition variable and was woken.
        contended += usize::from(ours.iter().enumerate().any(|(at, (runnable, current, _))| {
            current.is_some_and(|c| {
                c != 0 && !runnable.contains(&c) && ours[at + 1..].iter().any(|(later, _, _)| later.contains(&c))
            })
        }));
    }
    assert!(
        contended > 500,
        "only {contended} of 1000 schedules blocked a task and woke it"
    );
}
