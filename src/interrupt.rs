//! Signals the command line handles itself. Ctrl-C during a search stops
//! it at the next schedule; what was found is then printed and saved, and
//! the process exits 130. A second Ctrl-C ends it at once. A closed pipe
//! (`otpsim check … | head`) ends the process quietly, as it ends `cat`.

use std::sync::atomic::{AtomicBool, Ordering};

static SEEN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    // Only async-signal-safe work here: atomics and _exit.
    if SEEN.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe and never returns.
        unsafe { libc::_exit(130) };
    }
    otpsim_sim::explore::interrupt();
}

/// Restores the default action of SIGPIPE, which Rust's runtime ignores:
/// a write to a closed pipe then ends the process instead of panicking.
pub fn quiet_on_closed_pipe() {
    // SAFETY: installing the default disposition has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// Catches Ctrl-C for a search.
pub fn catch_ctrl_c() {
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: the handler only touches atomics and calls _exit.
    unsafe { libc::signal(libc::SIGINT, handler as libc::sighandler_t) };
}

/// Whether Ctrl-C was pressed.
pub fn caught() -> bool {
    SEEN.load(Ordering::SeqCst)
}
