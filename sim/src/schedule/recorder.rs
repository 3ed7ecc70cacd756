//! Writes down the choices an execution took, in [`ChoiceScheduler`]'s
//! terms, whatever scheduler made them.

use std::sync::{Arc, Mutex};

use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};

use super::choice::{nth, position};

/// What an execution took at each point where more than one task could
/// run.
#[derive(Debug, Default)]
pub struct Taken {
    /// The position of the chosen task in the order a choice indexes
    /// ([`position`](super::position)).
    pub choices: Vec<u8>,
    /// How many tasks could run there. A choice counts modulo it, so two
    /// choices that differ by it run the same execution: a search that
    /// varies a point tries only what differs.
    pub widths: Vec<u8>,
}

/// Wraps a scheduler and records, for each point where more than one task
/// could run, the position of the chosen task in the order a choice
/// indexes ([`position`](super::position)) and how many could run.
pub struct Recorder<S> {
    inner: S,
    taken: Arc<Mutex<Taken>>,
}

impl<S> Recorder<S> {
    /// Records into `taken`, emptied at each new execution.
    pub fn new(inner: S, taken: Arc<Mutex<Taken>>) -> Self {
        Recorder { inner, taken }
    }
}

impl<S: Scheduler> Scheduler for Recorder<S> {
    fn new_execution(&mut self) -> Option<Schedule> {
        super::set_quiet(false);
        super::set_taken(0);
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        taken.choices.clear();
        taken.widths.clear();
        drop(taken);
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
            taken.choices.push(choice);
            taken.widths.push(u8::try_from(runnable.len()).unwrap_or(u8::MAX));
            super::set_taken(taken.choices.len());
        }
        Some(chosen)
    }
    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
}
