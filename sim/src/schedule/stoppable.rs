//! Ends a run of schedules early once the findings suffice, so that one
//! scheduler (which learns as it goes, as PCT does) serves them all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};

/// A scheduler that starts no new execution once `stop` is set.
pub struct Stoppable<S> {
    inner: S,
    stop: Arc<AtomicBool>,
}

impl<S> Stoppable<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, stop: Arc<AtomicBool>) -> Self {
        Stoppable { inner, stop }
    }
}

impl<S: Scheduler> Scheduler for Stoppable<S> {
    fn new_execution(&mut self) -> Option<Schedule> {
        if self.stop.load(Ordering::SeqCst) {
            return None;
        }
        self.inner.new_execution()
    }
    fn next_task(&mut self, runnable: &[&Task], current: Option<TaskId>, is_yielding: bool) -> Option<TaskId> {
        self.inner.next_task(runnable, current, is_yielding)
    }
    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
}
