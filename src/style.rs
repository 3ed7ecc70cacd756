//! How the command line writes: in colour or not, and whether it says
//! anything beyond its results. Set once in `main`, from `--color`,
//! `NO_COLOR` (https://no-color.org) and `--quiet`.

use std::sync::atomic::{AtomicBool, Ordering};

static COLOR: AtomicBool = AtomicBool::new(false);
static QUIET: AtomicBool = AtomicBool::new(false);

/// `--color`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum When {
    /// On a terminal, unless NO_COLOR is set to anything but "".
    Auto,
    Always,
    Never,
}

pub fn set(when: When, quiet: bool) {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let color = match when {
        When::Always => true,
        When::Never => false,
        When::Auto => std::io::stdout().is_terminal() && !no_color,
    };
    COLOR.store(color, Ordering::Relaxed);
    QUIET.store(quiet, Ordering::Relaxed);
}

/// `text` in green (good) or red (bad), when colour is on.
pub fn verdict(text: &str, good: bool) -> String {
    if COLOR.load(Ordering::Relaxed) {
        format!("\x1b[{}m{text}\x1b[0m", if good { 32 } else { 31 })
    } else {
        text.to_string()
    }
}

/// `--quiet`: only results, warnings and errors.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}
