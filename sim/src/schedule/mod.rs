//! Schedulers: how the sweep picks the next task where more than one can
//! run. One scheduler a file, all behind shuttle's `Scheduler` trait:
//! shuttle's own PCT and DFS, [`UniformRandom`] (shuttle's random
//! algorithm without its side effects), and [`ChoiceScheduler`], which
//! follows a vector of choices. [`Recorder`] wraps any of them and writes
//! down the choices an execution took, so that every schedule, whatever
//! found it, replays as exactly one execution of [`ChoiceScheduler`].

mod choice;
mod recorder;
mod stoppable;
mod uniform;

use std::fmt;
use std::str::FromStr;

pub use choice::{nth, position, ChoiceScheduler};
pub use recorder::{Recorder, Taken};
pub use stoppable::Stoppable;
pub use uniform::UniformRandom;

use std::cell::Cell;

use shuttle::scheduler::{DfsScheduler, PctScheduler, Scheduler};

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// How many choices [`Recorder`] has written down so far in the execution
/// running on this thread: the index, in the schedule's choices, of the
/// next scheduling point. The world notes it at each statement, so that a
/// search can place a switch right where a fault will strike.
pub fn taken() -> usize {
    Taken::count()
}

/// Turns quiet scheduling on or off for the execution running on this
/// thread. While it is on, [`Recorder`] runs the first task in
/// the order a choice indexes ([`nth`]) without asking its scheduler and records no choice: the
/// end-of-run probe runs so, so that it neither spends a strategy's steps
/// (PCT draws its change points over the steps it has seen) nor lengthens
/// a schedule's choices. A new execution starts with it off.
pub fn set_quiet(on: bool) {
    QUIET.with(|q| q.set(on));
}

fn quiet() -> bool {
    QUIET.with(Cell::get)
}

/// How schedules are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Uniformly random choices ([`UniformRandom`], shuttle's algorithm).
    Random,
    /// Probabilistic concurrency testing with this bug depth.
    Pct(usize),
    /// Depth-first enumeration of schedules.
    Dfs,
    /// The one schedule pinned by the file's `choices`.
    Pinned,
}

impl Default for Strategy {
    /// PCT at depth 3 finds these races in a handful of schedules.
    fn default() -> Self {
        Strategy::Pct(3)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Random => f.write_str("random"),
            Strategy::Pct(d) => write!(f, "pct{d}"),
            Strategy::Dfs => f.write_str("dfs"),
            Strategy::Pinned => f.write_str("pinned"),
        }
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Strategy, String> {
        match s {
            "random" => Ok(Strategy::Random),
            "dfs" => Ok(Strategy::Dfs),
            "pinned" => Ok(Strategy::Pinned),
            _ => s
                .strip_prefix("pct")
                .and_then(|d| d.parse().ok())
                .filter(|d| (1..=10).contains(d))
                .map(Strategy::Pct)
                .ok_or_else(|| format!("unknown strategy {s:?}; expected pct1 to pct10, random, dfs or pinned")),
        }
    }
}

impl Strategy {
    /// The scheduler for `n` schedules from `seed`; `pinned` are the
    /// choices of a pinned schedule.
    pub fn scheduler(self, seed: u64, n: u32, pinned: &[u8]) -> Box<dyn Scheduler + Send> {
        let n = n as usize;
        match self {
            Strategy::Random => Box::new(UniformRandom::new(seed, n)),
            Strategy::Pct(depth) => Box::new(PctScheduler::new_from_seed(seed, depth, n)),
            Strategy::Dfs => Box::new(DfsScheduler::new(Some(n), false)),
            Strategy::Pinned => Box::new(ChoiceScheduler::new(pinned.to_vec())),
        }
    }
}
