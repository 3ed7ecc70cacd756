//! Folders of a test's own in the system's temporary folder, removed when
//! the thread that asked for them ends, whether its test passed or not.
//! Each suite run used to leave its folders behind: 2,262 of the live
//! tests' alone in one machine's /tmp by session 25.
//!
//! Both harnesses run a test on a thread of its own (cargo-nextest in a
//! process of its own, too), so a folder lasts as long as its test. Its
//! name holds the thread's number: under `cargo test`, tests that ask
//! for the same name at once get folders of their own. A test that hands
//! a folder to a thread it spawns asks for it first.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The folders this thread made, removed when it ends.
struct Made(Vec<PathBuf>);

impl Drop for Made {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

static THREADS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MADE: RefCell<Made> = const { RefCell::new(Made(Vec::new())) };
    static THREAD: usize = THREADS.fetch_add(1, Ordering::Relaxed);
}

/// The folder `name` of this thread: empty the first time it asks for it
/// (a leftover of an earlier process with the same id is cleared), the
/// same folder, as the test left it, each time after.
pub fn scratch(name: &str) -> PathBuf {
    let thread = THREAD.with(|t| *t);
    let dir = std::env::temp_dir().join(format!("otpsim-test-{}-{thread}-{name}", std::process::id()));
    MADE.with(|made| {
        let mut made = made.borrow_mut();
        if !made.0.contains(&dir) {
            let _ = std::fs::remove_dir_all(&dir);
            made.0.push(dir.clone());
        }
    });
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
