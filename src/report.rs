//! `--report DIR`: the HTML report of a `check` or an `explore`, one file
//! that opens offline, each counterexample drawn.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use otpsim_sim::render::{self, Diagram, ReportRow};
use otpsim_sim::{Counterexample, Scenario};

/// What a report row shows of a counterexample, and the command that
/// replays it.
pub type Example<'a> = (&'a Counterexample, String);

/// A `check` row's counterexample.
pub fn of_counterexample<'a>(scenario: &Scenario, c: &'a Counterexample) -> Example<'a> {
    (c, c.command(scenario))
}

/// A report row, with the counterexample's diagram and explanation.
pub fn row(
    scenario: &str,
    variant: &str,
    expected: &str,
    found: &str,
    ok: bool,
    example: Option<Example>,
) -> ReportRow {
    let (svg, explanation, replay) = match example {
        Some((c, replay)) => (
            Some(render::svg(&Diagram::of(&c.trace, &c.violations))),
            render::explain(&c.trace, &c.violations),
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
