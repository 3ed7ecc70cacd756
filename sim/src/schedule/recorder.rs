//! Writes down the choices an execution took, in [`ChoiceScheduler`]'s
//! terms, whatever scheduler made them.

use std::cell::RefCell;

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

thread_local! {
    /// What the execution running on this thread has taken so far. Not
    /// behind a mutex: shuttle runs an execution's scheduler and tasks on
    /// the thread that runs it, and a lock at every point where two tasks
    /// could run cost 0.4% of an explored schedule's instructions, and
    /// more of its time (BENCHMARKS.md, session 28).
    static TAKEN: RefCell<Taken> = const {
        RefCell::new(Taken {
            choices: Vec::new(),
            widths: Vec::new(),
        })
    };
}

impl Taken {
    /// What the execution running (or last run) on this thread took,
    /// emptied for the next. Call it on the thread of the runner, once its
    /// execution has ended (or panicked).
    pub fn take() -> Taken {
        TAKEN.with(|t| std::mem::take(&mut *t.borrow_mut()))
    }

    /// How many choices the execution running on this thread took so far.
    pub(super) fn count() -> usize {
        TAKEN.with(|t| t.borrow().choices.len())
    }
}

/// Wraps a scheduler and records, for each point where more than one task
/// could run, the position of the chosen task in the order a choice
/// indexes ([`position`](super::position)) and how many could run; read
/// them with [`Taken::take`].
pub struct Recorder<S> {
    inner: S,
}

impl<S> Recorder<S> {
    /// Records what `inner` chooses; each new execution starts empty.
    pub fn new(inner: S) -> Self {
        Recorder { inner }
    }
}

impl<S: Scheduler> Scheduler for Recorder<S> {
    fn new_execution(&mut self) -> Option<Schedule> {
        super::set_quiet(false);
        TAKEN.with(|t| {
            let mut taken = t.borrow_mut();
            taken.choices.clear();
            taken.widths.clear();
        });
        self.inner.new_execution()
    }
    fn next_task(&mut self, runnable: &[&Task], current: Option<TaskId>, is_yielding: bool) -> Option<TaskId> {
        if super::quiet() {
            return (!runnable.is_empty()).then(|| nth(runnable, current, is_yielding, 0));
        }
        let chosen = self.inner.next_task(runnable, current, is_yielding)?;
        if runnable.len() > 1 {
            let choice = u8::try_from(position(runnable, current, is_yielding, chosen)).unwrap_or(u8::MAX);
            TAKEN.with(|t| {
                let mut taken = t.borrow_mut();
                taken.choices.push(choice);
                taken.widths.push(u8::try_from(runnable.len()).unwrap_or(u8::MAX));
            });
        }
        Some(chosen)
    }
    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
}
