//! A shuttle scheduler driven by a vector of choices, so that proptest can
//! generate and shrink an interleaving together with the scenario.
//!
//! A choice is consumed only where more than one task can run. Choice 0
//! means "keep running the current task" (or the lowest-numbered one), so a
//! shrunk vector of zeros is the schedule with no preemption at all, and
//! every nonzero entry left after shrinking is a preemption that matters.
//! Choices past the end of the vector count as 0.

use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};

/// Runs one execution following `choices`.
#[derive(Debug)]
pub struct ChoiceScheduler {
    choices: Vec<u8>,
    cursor: usize,
    started: bool,
}

impl ChoiceScheduler {
    /// A scheduler for one execution (wrap it in a
    /// [`Recorder`](super::Recorder) to learn the choices it actually made,
    /// each reduced modulo the number of runnable tasks).
    pub fn new(choices: Vec<u8>) -> Self {
        ChoiceScheduler {
            choices,
            cursor: 0,
            started: false,
        }
    }
}

/// The runnable tasks in the order a choice indexes: the current task
/// first (last if it is yielding), then by id.
pub fn order(runnable: &[&Task], current: Option<TaskId>, is_yielding: bool) -> Vec<TaskId> {
    let mut order: Vec<TaskId> = runnable.iter().map(|t| t.id()).collect();
    order.sort_by_key(|id| usize::from(*id));
    if let Some(pos) = current.and_then(|c| order.iter().position(|id| *id == c)) {
        let cur = order.remove(pos);
        if is_yielding {
            order.push(cur);
        } else {
            order.insert(0, cur);
        }
    }
    order
}

impl Scheduler for ChoiceScheduler {
    fn new_execution(&mut self) -> Option<Schedule> {
        if std::mem::replace(&mut self.started, true) {
            return None;
        }
        Some(Schedule::new(0))
    }

    fn next_task(&mut self, runnable: &[&Task], current: Option<TaskId>, is_yielding: bool) -> Option<TaskId> {
        if runnable.len() <= 1 {
            return runnable.first().map(|t| t.id());
        }
        let order = order(runnable, current, is_yielding);
        let choice = self.choices.get(self.cursor).copied().unwrap_or(0) as usize % order.len();
        self.cursor += 1;
        Some(order[choice])
    }

    fn next_u64(&mut self) -> u64 {
        // The world draws its randomness from its own seeded generator.
        0
    }
}
