//! The regression corpus: every file in the workspace's `scenarios/` is
//! its own test, and each variant it names must do what the file expects.
//! In the engine's crate, so that a change to the checker or the engine
//! is tested against it without building the command line.

use std::path::Path;
use std::sync::Arc;

use otpsim_sim::check::check;
use otpsim_sim::schedule::Strategy;
use otpsim_sim::Scenario;

include!(concat!(env!("OUT_DIR"), "/corpus_tests.rs"));

fn check_file(path: &str) {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let scenario = Arc::new(Scenario::load(&full).unwrap_or_else(|e| panic!("{e}")));
    assert!(
        !scenario.description.trim().is_empty(),
        "{path}: say what the scenario shows in `description`"
    );
    let rows = check(&scenario, Strategy::default(), None);
    let unexpected: Vec<String> = rows
        .iter()
        .filter(|r| !r.holds())
        .map(|r| {
            let why = r.counterexample().map(|f| {
                f.violations
                    .iter()
                    .map(|v| format!("{}: {}", v.invariant, v.why))
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            format!(
                "{}: expected {}, found {} ({})",
                r.variant,
                r.expected,
                r.found(),
                why.unwrap_or_default()
            )
        })
        .collect();
    assert!(unexpected.is_empty(), "{path}:\n{}", unexpected.join("\n"));
}

/// The corpus is the project's evidence: together its files must show
/// every invariant the variants are known to break. Any variant may be
/// expected to fail, idempotent included: a file that records an
/// idempotent failure is a finding, and docs/findings.md says so.
#[test]
fn the_corpus_shows_each_known_break() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut broken = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let scenario = Scenario::load(&entry.unwrap().path()).unwrap();
        for (_, expectation) in &scenario.expect {
            if let otpsim_sim::Expectation::FailOn(i) = expectation {
                broken.insert(i.name());
            }
        }
    }
    for needed in [
        "single_pending",
        "verify_succeeds",
        "no_orphans",
        "clear_errors",
        "attempts_limited",
        "no_hijack",
    ] {
        assert!(broken.contains(needed), "no scenario expects {needed} to break");
    }
}
