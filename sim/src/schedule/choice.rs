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
/// first (last if it is yielding), then by id. Read through [`nth`] and
/// [`position`], which build no list: this runs at every scheduling point
/// of every schedule.
struct Order<'a> {
    runnable: &'a [&'a Task],
    /// The current task, if it can run.
    current: Option<TaskId>,
    is_yielding: bool,
}

impl<'a> Order<'a> {
    fn new(runnable: &'a [&'a Task], current: Option<TaskId>, is_yielding: bool) -> Self {
        let current = current.filter(|c| runnable.iter().any(|t| t.id() == *c));
        Order {
            runnable,
            current,
            is_yielding,
        }
    }

    /// Among the tasks other than the current one, how many have a
    /// smaller id than `id`.
    fn rank(&self, id: TaskId) -> usize {
        self.runnable
            .iter()
            .filter(|t| Some(t.id()) != self.current && usize::from(t.id()) < usize::from(id))
            .count()
    }

    /// Where the current task stands, if it can run.
    fn current_at(&self) -> Option<usize> {
        self.current
            .map(|_| if self.is_yielding { self.runnable.len() - 1 } else { 0 })
    }
}

/// The task at `k` in the order a choice indexes (`k` below
/// `runnable.len()`).
pub fn nth(runnable: &[&Task], current: Option<TaskId>, is_yielding: bool, k: usize) -> TaskId {
    let order = Order::new(runnable, current, is_yielding);
    if let (Some(at), Some(current)) = (order.current_at(), order.current) {
        if at == k {
            return current;
        }
    }
    // Among the others, the one whose rank is k, less one when the current
    // task stands before it.
    let k = k - usize::from(order.current_at() == Some(0));
    runnable
        .iter()
        .map(|t| t.id())
        .find(|id| Some(*id) != order.current && order.rank(*id) == k)
        .unwrap_or_else(|| runnable[0].id())
}

/// Where `chosen` stands in the order a choice indexes.
pub fn position(runnable: &[&Task], current: Option<TaskId>, is_yielding: bool, chosen: TaskId) -> usize {
    let order = Order::new(runnable, current, is_yielding);
    match order.current_at() {
        Some(at) if order.current == Some(chosen) => at,
        at => order.rank(chosen) + usize::from(at == Some(0)),
    }
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
        let choice = self.choices.get(self.cursor).copied().unwrap_or(0) as usize % runnable.len();
        self.cursor += 1;
        Some(nth(runnable, current, is_yielding, choice))
    }

    fn next_u64(&mut self) -> u64 {
        // The world draws its randomness from its own seeded generator.
        0
    }
}
