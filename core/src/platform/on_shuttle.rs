//! The shuttle backend: a mutex and a condition variable that take
//! exactly the scheduling points shuttle's own take, and leave every task
//! runnable or blocked exactly where shuttle's would, without the
//! semaphore, waiter futures and vector clocks beneath them.
//!
//! Why: a critical section here is a closure, and the world takes several
//! a step, two scheduling points each. Behind `shuttle::sync::Mutex` a
//! section cost a boxed future, a waker, a semaphore's bookkeeping and a
//! vector clock; on the double-click scenario that was about a seventh of
//! a schedule (BENCHMARKS.md, session 24). What a `choices` vector means
//! depends on where the points are and on which tasks can run at each, so
//! both are kept as shuttle's `Mutex` (an unfair semaphore of one permit)
//! and `Condvar` (shuttle-std 0.1.5 on shuttle-engine 0.1.8) have them,
//! line for line, teardown included. Left out: the vector clocks, which
//! serve only shuttle's causality annotations and its replay-to-a-clock
//! scheduler, neither of which otpsim uses, and the backtrace a blocked
//! acquire records for a deadlock report.

use std::cell::{RefCell, RefMut};

use shuttle_engine::runtime::execution::ExecutionState;
use shuttle_engine::runtime::task::TaskId;
use shuttle_engine::runtime::thread::{switch, switch_if_not_stopping};

use super::{Lock, Platform, TASK_STACK_SIZE};

/// `shuttle::sync` and `shuttle::thread`: random, PCT and DFS schedules
/// of the whole simulated world. Use only inside a shuttle run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shuttle;

/// Who holds a [`Mutex`] and who waits for it: an unfair semaphore of one
/// permit, as shuttle's `Mutex` is.
#[derive(Debug, Default)]
struct Gate {
    holder: Option<TaskId>,
    /// Tasks whose acquire found the lock held, in the order they came.
    waiters: Vec<TaskId>,
    /// Released after the execution stopped (see `release`): from then on
    /// every acquire succeeds at once.
    closed: bool,
}

/// The mutex of [`Shuttle`].
pub struct Mutex<T> {
    gate: RefCell<Gate>,
    /// A `RefCell`, not a second lock: the gate already admits one task
    /// at a time. With the world's log in a cell too, dropping the atomic
    /// lock and unlock of every critical section saved 1.6% of an
    /// explored schedule's instructions (BENCHMARKS.md, session 28).
    value: RefCell<T>,
}

// Safety: shuttle runs every task of an execution on one OS thread, one at
// a time, switching only at scheduling points, and no borrow of `gate`
// spans one (as shuttle's own `Mutex` keeps its state in a `RefCell`).
// `value` is borrowed only by the task the gate admitted, until it
// releases the gate.
unsafe impl<T: Send> Sync for Mutex<T> {}

/// The condition variable of [`Shuttle`].
#[derive(Default)]
pub struct Condvar {
    /// Tasks in `wait`, and whether a `notify_all` has woken each.
    waiters: RefCell<Vec<(TaskId, bool)>>,
}

// Safety: as for `Mutex`.
unsafe impl Sync for Condvar {}

fn me() -> TaskId {
    ExecutionState::me()
}

/// Makes `task` runnable and calls its waker, as an unfair semaphore's
/// release does for each waiter, unless the task has finished.
fn wake(task: TaskId) {
    let waker = ExecutionState::with(|s| {
        let t = s.get_mut(task);
        if t.finished() {
            return None;
        }
        t.unblock();
        Some(t.waker())
    });
    if let Some(waker) = waker {
        waker.wake_by_ref();
    }
}

impl<T> Mutex<T> {
    /// shuttle's `Mutex::lock`: `BatchSemaphore::acquire_blocking(1)`.
    fn acquire(&self) {
        let me = me();
        {
            let gate = self.gate.borrow();
            assert!(
                gate.holder != Some(me),
                "deadlock! task {me:?} tried to acquire a Mutex it already holds"
            );
        }
        // The acquire's first poll: a scheduling point before it, if it is
        // to succeed; one that would block takes none there, since blocking
        // on an unfair semaphore commutes with what others do to it.
        let will_succeed = {
            let gate = self.gate.borrow();
            gate.closed || gate.holder.is_none()
        };
        if will_succeed {
            switch();
        }
        let mut queued = false;
        loop {
            let mut gate = self.gate.borrow_mut();
            if gate.closed {
                assert!(gate.holder.is_none());
                gate.holder = Some(me);
                return;
            }
            if gate.holder.is_none() {
                gate.holder = Some(me);
                if queued {
                    gate.waiters.retain(|w| *w != me);
                }
                // The waiters a release woke and that cannot succeed now
                // block again.
                let others: Vec<TaskId> = gate.waiters.iter().copied().filter(|w| *w != me).collect();
                drop(gate);
                if !others.is_empty() {
                    ExecutionState::with(|s| {
                        for w in others {
                            if s.try_get(w).is_some_and(|t| !t.finished()) {
                                s.get_mut(w).block(false);
                            }
                        }
                    });
                }
                return;
            }
            if !queued {
                gate.waiters.push(me);
                queued = true;
            }
            drop(gate);
            // `block_on`'s wait between two polls. If execution teardown
            // unwinds the task from it, its dropped `Acquire` takes a
            // scheduling point and leaves the queue.
            struct LeaveOnUnwind<'a, T>(&'a Mutex<T>, TaskId);
            impl<T> Drop for LeaveOnUnwind<'_, T> {
                fn drop(&mut self) {
                    if self.0.gate.borrow().waiters.contains(&self.1) {
                        switch_if_not_stopping();
                        self.0.gate.borrow_mut().waiters.retain(|w| *w != self.1);
                    }
                }
            }
            let on_unwind = LeaveOnUnwind(self, me);
            ExecutionState::with(|s| s.current_mut().sleep_unless_woken());
            switch();
            std::mem::forget(on_unwind);
        }
    }

    /// shuttle's guard drop: `BatchSemaphore::release(1)`, a scheduling
    /// point while still holding, then the release.
    fn release(&self) {
        // Execution teardown can unwind the task from the switch; the lock
        // must be released all the same, for the destructors that run later.
        struct ReleaseOnUnwind<'a, T>(&'a Mutex<T>);
        impl<T> Drop for ReleaseOnUnwind<'_, T> {
            fn drop(&mut self) {
                self.0.release_no_scheduling_point();
            }
        }
        let on_unwind = ReleaseOnUnwind(self);
        switch();
        std::mem::forget(on_unwind);
        self.release_no_scheduling_point();
    }

    fn release_no_scheduling_point(&self) {
        let mut gate = self.gate.borrow_mut();
        gate.holder = None;
        if ExecutionState::should_stop() {
            gate.waiters.clear();
            gate.closed = true;
            return;
        }
        let waiters = gate.waiters.clone();
        drop(gate);
        for w in waiters {
            wake(w);
        }
    }

    /// The value, for the task the gate admitted. A panic in an earlier
    /// holder leaves it as it was: the run already fails, and the data is
    /// still the best evidence there is, so it stays usable (as a
    /// poisoned lock's is here).
    fn value(&self) -> RefMut<'_, T> {
        self.value.try_borrow_mut().expect("the gate admits one task at a time")
    }
}

/// The lock, held: released when dropped, on a panic as well, as shuttle's
/// guard is.
struct Held<'a, T>(&'a Mutex<T>);

impl<'a, T> Held<'a, T> {
    fn new(mutex: &'a Mutex<T>) -> Self {
        mutex.acquire();
        Held(mutex)
    }
}

impl<T> Drop for Held<'_, T> {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl<T: Send> Lock<T> for Mutex<T> {
    fn new(value: T) -> Self {
        Mutex {
            gate: RefCell::new(Gate::default()),
            value: RefCell::new(value),
        }
    }
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let held = Held::new(self);
        // The value's guard drops before the release: a guard still alive
        // when the holder switches out there would be a borrow across a
        // scheduling point.
        let r = f(&mut self.value());
        drop(held);
        r
    }
    fn into_inner(self) -> T {
        // shuttle's `Mutex::into_inner` takes the permit with a
        // `try_acquire`, whose scheduling point comes first, and which
        // fails once the execution has stopped and a release closed it.
        assert!(self.gate.borrow().holder.is_none());
        switch();
        assert!(
            !self.gate.borrow().closed,
            "a mutex taken apart after its execution stopped"
        );
        self.value.into_inner()
    }
}

impl Condvar {
    /// shuttle's `Condvar::wait`: release the mutex (its scheduling point
    /// before), wait blocked until notified, then acquire it again.
    fn wait<'a, T>(&self, held: Held<'a, T>) -> Held<'a, T> {
        let me = me();
        let mutex = held.0;
        std::mem::forget(held);
        mutex.release();
        self.waiters.borrow_mut().push((me, false));
        // If execution teardown unwinds the task from the switch below, the
        // task no longer waits.
        struct StopWaitingOnUnwind<'a>(&'a Condvar, TaskId);
        impl Drop for StopWaitingOnUnwind<'_> {
            fn drop(&mut self) {
                self.0.waiters.borrow_mut().retain(|(t, _)| *t != self.1);
            }
        }
        let on_unwind = StopWaitingOnUnwind(self, me);
        ExecutionState::with(|s| s.current_mut().block(false));
        switch();
        std::mem::forget(on_unwind);
        let mut waiters = self.waiters.borrow_mut();
        let at = waiters.iter().position(|(t, _)| *t == me).expect("should be waiting");
        let (_, notified) = waiters.remove(at);
        drop(waiters);
        assert!(notified, "should not have been woken while waiting");
        Held::new(mutex)
    }

    /// shuttle's `Condvar::notify_all`: a scheduling point, then every
    /// waiter runnable.
    fn notify_all(&self) {
        switch();
        let me = me();
        let mut waiters = self.waiters.borrow_mut();
        let woken: Vec<TaskId> = waiters
            .iter_mut()
            .map(|(t, notified)| {
                assert_ne!(*t, me);
                *notified = true;
                *t
            })
            .collect();
        drop(waiters);
        if !woken.is_empty() {
            ExecutionState::with(|s| {
                for t in woken {
                    s.get_mut(t).unblock();
                }
            });
        }
    }
}

impl Platform for Shuttle {
    type Mutex<T: Send> = Mutex<T>;
    type Condvar = Condvar;
    type JoinHandle<T: Send + 'static> = shuttle::thread::JoinHandle<T>;

    fn condvar() -> Condvar {
        Condvar::default()
    }
    fn wait_while<T: Send>(mutex: &Mutex<T>, condvar: &Condvar, mut blocked: impl FnMut(&mut T) -> bool) {
        let mut held = Held::new(mutex);
        while blocked(&mut mutex.value()) {
            held = condvar.wait(held);
        }
        drop(held);
    }
    fn notify_all(condvar: &Condvar) {
        condvar.notify_all();
    }
    std_shaped_tasks!(shuttle::thread);
}
