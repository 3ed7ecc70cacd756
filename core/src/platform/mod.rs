//! The platform facade: the few concurrency primitives the flows and the
//! simulated world need, behind one trait, so the same code runs on std
//! threads, under loom's exhaustive model checker and under shuttle's
//! randomised schedulers, all in one build.
//!
//! The mutex has a closure API (`with`) so that no guard escapes: a flow can
//! never hold a lock across a step by accident, and the three backends need
//! not agree on guard types.

/// A mutual-exclusion lock whose critical section is a closure.
pub trait Lock<T>: Send + Sync {
    /// Wraps `value`.
    fn new(value: T) -> Self;
    /// Runs `f` with exclusive access to the value.
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R;
    /// The value back.
    fn into_inner(self) -> T;
}

/// One concurrency backend: std, loom or shuttle.
///
/// Loom's and shuttle's primitives panic outside `loom::model` or a shuttle
/// run: build everything that uses them inside each iteration.
pub trait Platform: Send + Sync + Sized + 'static {
    /// This backend's mutex.
    type Mutex<T: Send>: Lock<T>;
    /// This backend's condition variable, used with [`Platform::wait_while`].
    type Condvar: Send + Sync;
    /// A handle to join a spawned task.
    type JoinHandle<T: Send + 'static>;

    /// A new condition variable.
    fn condvar() -> Self::Condvar;
    /// Blocks while `blocked` holds for the mutex's value, re-checking it
    /// after every notification.
    fn wait_while<T: Send>(mutex: &Self::Mutex<T>, condvar: &Self::Condvar, blocked: impl FnMut(&mut T) -> bool);
    /// Wakes every task waiting on `condvar`.
    fn notify_all(condvar: &Self::Condvar);
    /// Starts a task.
    fn spawn<T, F>(f: F) -> Self::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;
    /// Waits for a task; a panic in it is resumed here.
    fn join<T: Send + 'static>(handle: Self::JoinHandle<T>) -> T;
    /// A point where the scheduler may switch to another task.
    fn yield_now();
}

/// Stack size for tasks run by the model checkers: SQLite's parser needs far
/// more than their coroutine defaults (tens of KiB).
pub const TASK_STACK_SIZE: usize = 1 << 20;

/// `Platform::spawn`, `join` and `yield_now` for a `thread` module shaped
/// like std's: all three backends' tasks are (std, loom and shuttle).
macro_rules! std_shaped_tasks {
    ($thread:path) => {
        fn spawn<T, F>(f: F) -> Self::JoinHandle<T>
        where
            F: FnOnce() -> T + Send + 'static,
            T: Send + 'static,
        {
            use $thread as thread;
            thread::Builder::new()
                .stack_size(TASK_STACK_SIZE)
                .spawn(f)
                .expect("spawning a task failed (out of memory or threads)")
        }
        fn join<T: Send + 'static>(handle: Self::JoinHandle<T>) -> T {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }
        fn yield_now() {
            use $thread as thread;
            thread::yield_now();
        }
    };
}

/// Std and loom share std's API shape (`Mutex::lock`, `Condvar::wait`,
/// `thread::Builder`), so one body implements the facade for both;
/// shuttle's mutex takes its scheduling points itself (`on_shuttle`).
macro_rules! std_shaped_platform {
    ($(#[$doc:meta])* $name:ident, $sync:path, $thread:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        const _: () = {
            use $sync as sync;
            use $thread as thread;

            impl<T: Send> Lock<T> for sync::Mutex<T> {
                fn new(value: T) -> Self {
                    sync::Mutex::new(value)
                }
                fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
                    // A panic elsewhere already fails the run; the data is
                    // still the best evidence there is, so keep using it.
                    let mut guard = self.lock().unwrap_or_else(|p| p.into_inner());
                    f(&mut guard)
                }
                fn into_inner(self) -> T {
                    sync::Mutex::into_inner(self).unwrap_or_else(|p| p.into_inner())
                }
            }

            impl Platform for $name {
                type Mutex<T: Send> = sync::Mutex<T>;
                type Condvar = sync::Condvar;
                type JoinHandle<T: Send + 'static> = thread::JoinHandle<T>;

                fn condvar() -> Self::Condvar {
                    sync::Condvar::new()
                }
                fn wait_while<T: Send>(
                    mutex: &Self::Mutex<T>,
                    condvar: &Self::Condvar,
                    mut blocked: impl FnMut(&mut T) -> bool,
                ) {
                    let mut guard = mutex.lock().unwrap_or_else(|p| p.into_inner());
                    while blocked(&mut guard) {
                        guard = condvar.wait(guard).unwrap_or_else(|p| p.into_inner());
                    }
                }
                fn notify_all(condvar: &Self::Condvar) {
                    condvar.notify_all();
                }
                std_shaped_tasks!(thread);
            }
        };
    };
}

std_shaped_platform!(
    /// Real threads and `std::sync`: stress runs and plain tests.
    Std, std::sync, std::thread
);

#[cfg(feature = "loom")]
std_shaped_platform!(
    /// `loom::sync` and `loom::thread`: every interleaving of a small model.
    /// Use only inside `loom::model`.
    Loom, loom::sync, loom::thread
);

#[cfg(feature = "shuttle")]
mod on_shuttle;
#[cfg(feature = "shuttle")]
pub use on_shuttle::Shuttle;
