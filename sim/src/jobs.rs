//! Every core and beyond one machine.
//!
//! Every core: independent pieces of work (a scenario and variant, an
//! ablation's combination, a round of a search) run on `jobs` threads, and
//! their results come back in the order of the pieces, so that what a
//! command prints does not depend on how many threads ran it. Each piece
//! is deterministic on its own (its own world, its own scheduler, its own
//! thread-local spare databases).
//!
//! Beyond one machine: a [`Shard`] takes every N-th piece (a scenario
//! file for `check`, a round for `explore`), and the shards' reports merge
//! into the one an unsharded run gives.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// One shard of a run: the I-th (1-based) of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// I, from 1.
    pub index: usize,
    /// N, at most 1000.
    pub count: usize,
}

impl Shard {
    /// The whole run.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// Whether piece `i` (0-based) is this shard's.
    pub fn owns(self, i: usize) -> bool {
        i % self.count == self.index - 1
    }

    /// Whether `index` and `count` make a shard.
    pub fn is_valid(self) -> bool {
        self.index >= 1 && self.index <= self.count && self.count <= 1000
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    /// `I/N`, e.g. `2/4`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("{s:?}: expected I/N with 1 <= I <= N <= 1000, e.g. 2/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let shard = Shard {
            index: i.parse().map_err(|_| bad())?,
            count: n.parse().map_err(|_| bad())?,
        };
        shard.is_valid().then_some(shard).ok_or_else(bad)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The machine's cores, the default for `--jobs`.
pub fn available() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// SQLite counts every allocation under one process-wide mutex unless
/// told not to before it starts: with several threads each running its
/// own in-memory databases, that mutex serialises them. The statistics
/// are not used here. Once SQLite is running the call is refused
/// (SQLITE_MISUSE) and changes nothing, which is harmless.
fn unshare_sqlite_allocations() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config with SQLITE_CONFIG_MEMSTATUS takes one
        // int; it is only acted on before sqlite3_initialize, and
        // otherwise returns an error code without touching any state.
        let _ = unsafe { rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0) };
    });
}

/// `work` applied to every item on up to `jobs` threads; results in the
/// items' order.
pub fn map<T: Sync, R: Send>(items: &[T], jobs: usize, work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let jobs = jobs.clamp(1, items.len().max(1));
    if jobs == 1 {
        return items.iter().map(work).collect();
    }
    unshare_sqlite_allocations();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let result = work(item);
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}
