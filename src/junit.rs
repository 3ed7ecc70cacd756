//! `--junit FILE`: the verdicts as JUnit XML, which CI systems show as
//! tests (GitHub, GitLab, Jenkins). One testcase a row: a scenario and a
//! variant for check, a variant and an invariant for explore.

use std::path::Path;

use anyhow::{Context, Result};

/// One row of the verdict.
pub struct Case {
    /// The group: a scenario file, or a variant.
    pub class: String,
    /// The row: a variant, or an invariant.
    pub name: String,
    /// Why it failed; `None` for a pass.
    pub failure: Option<String>,
    /// Why it was not judged (a live row that cannot be), if it was not.
    pub skipped: Option<String>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes `cases` as one test suite named `suite`.
pub fn write(path: &Path, suite: &str, cases: &[Case]) -> Result<()> {
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let skipped = cases
        .iter()
        .filter(|c| c.failure.is_none() && c.skipped.is_some())
        .count();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">\n<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">\n",
        cases.len(),
        escape(suite),
        cases.len()
    );
    for c in cases {
        let open = format!(
            "  <testcase classname=\"{}\" name=\"{}\"",
            escape(&c.class),
            escape(&c.name)
        );
        match (&c.failure, &c.skipped) {
            (None, Some(why)) => xml.push_str(&format!(
                "{open}>\n    <skipped message=\"{}\"/>\n  </testcase>\n",
                escape(why)
            )),
            (None, None) => xml.push_str(&format!("{open}/>\n")),
            (Some(why), _) => {
                let first = why.lines().next().unwrap_or_default();
                xml.push_str(&format!(
                    "{open}>\n    <failure message=\"{}\">{}</failure>\n  </testcase>\n",
                    escape(first),
                    escape(why)
                ));
            }
        }
    }
    xml.push_str("</testsuite>\n</testsuites>\n");
    std::fs::write(path, xml).with_context(|| format!("writing {}", path.display()))
}
