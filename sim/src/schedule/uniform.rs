//! A uniformly random scheduler: at each point where more than one task
//! can run, any of them, with equal odds, from a seeded generator.
//!
//! It is the algorithm of shuttle's `RandomScheduler`, written out because
//! that one prints a "failing seed" banner when dropped before its last
//! execution (which every early-stopping search does) and lets the
//! `SHUTTLE_RANDOM_SEED` variable override the seed it was given.

use otpsim_core::ports::SplitMix64;
use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};

/// Up to `executions` executions, each drawing from one seeded generator.
#[derive(Debug)]
pub struct UniformRandom {
    rng: SplitMix64,
    executions: usize,
    started: usize,
}

impl UniformRandom {
    /// A scheduler for `executions` executions from `seed`.
    pub fn new(seed: u64, executions: usize) -> Self {
        UniformRandom {
            rng: SplitMix64::new(seed),
            executions,
            started: 0,
        }
    }
}

impl Scheduler for UniformRandom {
    fn new_execution(&mut self) -> Option<Schedule> {
        if self.started == self.executions {
            return None;
        }
        self.started += 1;
        Some(Schedule::new(self.rng.next_u64()))
    }

    fn next_task(&mut self, runnable: &[&Task], _current: Option<TaskId>, _is_yielding: bool) -> Option<TaskId> {
        let pick = (self.rng.next_u64() % runnable.len().max(1) as u64) as usize;
        runnable.get(pick).map(|t| t.id())
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}
