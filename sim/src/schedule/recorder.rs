//! Writes down the choices an execution took, in [`ChoiceScheduler`]'s
//! terms, whatever scheduler made them.

use std::sync::{Arc, Mutex};

use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};

use super::choice::{nth, position};

/// Wraps a scheduler and records, for each point where more than one task
/// could run, the position of the chosen task in the order a choice
/// indexes ([`position`](super::position)).
pub struct Recorder<S> {
    inner: S,
    taken: Arc<Mutex<Vec<u8>>>,
}

impl<S> Recorder<S> {
    /// Records into `taken`, emptied at each new execution.
    pub fn new(inner: S, taken: Arc<Mutex<Vec<u8>>>) -> Self {
        Recorder { inner, taken }
    }
}

impl<S: Scheduler> Scheduler for Recorder<S> {
    fn new_execution(&mut self) -> Option<Schedule> {
        super::set_quiet(false);
        super::set_taken(0);
        self.taken.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.inner.new_execution()
    }
    fn next_task(&mut self, runnable: &[&Task], current: Option<TaskId>, is_yielding: bool) -> Option<TaskId> {
        if super::quiet() {
            return (!runnable.is_empty()).then(|| nth(runnable, current, is_yielding, 0));
        }
        let chosen = self.inner.next_task(runnable, current, is_yielding)?;
        if runnable.len() > 1 {
            let choice = u8::try_from(position(runnable, current, is_yielding, chosen)).unwrap_or(u8::MAX);
            let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
            taken.push(choice);
            super::set_taken(taken.len());
        }
        Some(chosen)
    }
    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
}
