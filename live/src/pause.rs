//! A pause before each of the app's steps (`--pause`), so that requests
//! released together by their last bytes ([`crate::burst`]) meet inside the
//! server.
//!
//! Last-byte release brings two clicks to the server within tens of
//! microseconds, and still a check-then-act inside one process is a window
//! of a few hundred nanoseconds (Rust) or none at all (CPython keeps the
//! GIL from a check to its act). The simulator reaches those interleavings
//! because it may switch tasks at every port call; a live run reaches them
//! when every step of the app waits long enough for the other request's
//! step to come first. The pause widens the windows; it chooses no order.
//!
//! A target opts in by naming a placeholder:
//! - `{pause}` (`2ms`) or `{pause_ms}` (`2`): for an app that takes it as
//!   an argument, as `otpsim serve --step-pause {pause}` does;
//! - `{pause_python}`: a folder holding otpsim's `sitecustomize.py` (then
//!   the harness's own `PYTHONPATH`); put it on the app's `PYTHONPATH` and
//!   every call the app's own Python code makes sleeps first (the harness
//!   sets [`PYTHON_ENV`] to the pause). No line of the app changes.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The placeholders through which a pause reaches a target.
pub const PLACEHOLDERS: [&str; 3] = ["{pause}", "{pause_ms}", "{pause_python}"];

/// The variable that tells the Python tracer the pause, in milliseconds;
/// set for every process of a target that names `{pause_python}` (0 for
/// its setup command, which runs alone).
pub const PYTHON_ENV: &str = "OTPSIM_PAUSE_MS";

/// The harness's own `PYTHONPATH`, which `{pause_python}` carries on: the
/// tracer counts what it names as installed code, not the app's.
pub const INHERITED_ENV: &str = "OTPSIM_PAUSE_INHERITED";

const SITECUSTOMIZE: &str = include_str!("pause/sitecustomize.py");

/// The folder `{pause_python}` names, written under `run_dir`.
pub fn python_dir(run_dir: &Path) -> std::io::Result<PathBuf> {
    let dir = run_dir.join("pause-python");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("sitecustomize.py"), SITECUSTOMIZE)?;
    Ok(dir)
}

/// `pause` as `{pause}` reads: `0ms` for none.
pub fn as_flag(pause: Option<Duration>) -> String {
    format!("{}ms", pause.map_or(0, |p| p.as_millis()))
}

/// `pause` as `{pause_ms}` reads.
pub fn as_ms(pause: Option<Duration>) -> String {
    pause.map_or(0, |p| p.as_millis()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_python_folder_holds_the_tracer_and_the_flags_read_whole_milliseconds() {
        let run = std::env::temp_dir().join(format!("otpsim-pause-test-{}", std::process::id()));
        let dir = python_dir(&run).unwrap();
        let text = std::fs::read_to_string(dir.join("sitecustomize.py")).unwrap();
        assert!(text.contains("OTPSIM_PAUSE_MS") && text.contains("setprofile"));
        std::fs::remove_dir_all(&run).unwrap();
        assert_eq!(as_flag(None), "0ms");
        assert_eq!(as_flag(Some(Duration::from_millis(2))), "2ms");
        assert_eq!(as_ms(Some(Duration::from_millis(15))), "15");
    }

    /// The tracer in a real interpreter: installed only with a pause, said
    /// once, and a sitecustomize further along the path still runs.
    #[test]
    fn the_python_tracer_installs_only_with_a_pause_and_chains_the_next_sitecustomize() {
        let run = std::env::temp_dir().join(format!("otpsim-pause-python-{}", std::process::id()));
        let ours = python_dir(&run).unwrap();
        let theirs = run.join("theirs");
        std::fs::create_dir_all(&theirs).unwrap();
        std::fs::write(theirs.join("sitecustomize.py"), "print('theirs ran')\n").unwrap();
        let app = run.join("app.py");
        std::fs::write(&app, "import sys\nprint('profiled' if sys.getprofile() else 'plain')\n").unwrap();
        let python = |pause: &str| {
            let out = std::process::Command::new("python3")
                .arg(&app)
                .env("PYTHONPATH", format!("{}:{}", ours.display(), theirs.display()))
                .env(PYTHON_ENV, pause)
                .env_remove("OTPSIM_PAUSE_SAID")
                .output()
                .expect("python3 on PATH (targets/install.sh)");
            (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let (out, err) = python("3");
        assert_eq!(out, "theirs ran\nprofiled\n", "{err}");
        assert_eq!(err.matches("otpsim pause: 3 ms").count(), 1, "{err}");
        let (out, err) = python("0");
        assert_eq!(out, "theirs ran\nplain\n");
        assert_eq!(err, "");
        std::fs::remove_dir_all(&run).unwrap();
    }
}
