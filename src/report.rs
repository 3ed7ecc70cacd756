//! `--report DIR`: the HTML report of a `check` or an `explore`, one file
//! that opens offline, each counterexample drawn.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use otpsim_sim::explore::Failure;
use otpsim_sim::render::{self, Diagram, ReportRow};
use otpsim_sim::trace::Trace;
use otpsim_sim::{Scenario, Violation};

/// A counterexample: its trace, what it broke, how to replay it.
pub type Counterexample<'a> = (&'a Trace, &'a [Violation], String);

/// A `check` row's counterexample.
pub fn of_failure<'a>(scenario: &Scenario, f: &'a Failure) -> Counterexample<'a> {
    (&f.trace, &f.violations, crate::replay_command(scenario, f))
}

/// A report row, with the counterexample's diagram and explanation.
pub fn row(
    scenario: &str,
    variant: &str,
    expected: &str,
    found: &str,
    ok: bool,
    example: Option<Counterexample>,
) -> ReportRow {
    let (svg, explanation, replay) = match example {
        Some((trace, violations, replay)) => (
            Some(render::svg(&Diagram::of(trace, violations))),
            render::explain(trace, violations),
            replay,
        ),
        None => (None, String::new(), String::new()),
    };
    ReportRow {
        scenario: scenario.to_string(),
        variant: variant.to_string(),
        expected: expected.to_string(),
        found: found.to_string(),
        ok,
        explanation,
        svg,
        replay,
    }
}

/// Writes DIR/index.html (the report's own file, replaced on each run).
pub fn write(dir: &Path, title: &str, rows: &[ReportRow]) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("index.html");
    std::fs::write(&path, render::html_report(title, rows)).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
