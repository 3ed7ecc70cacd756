//! Showing a counterexample: the SVG, HTML, JSON and Mermaid outputs are
//! well-formed, the committed pictures are what `replay` makes today, and
//! the explanation names the events that caused the break.

use std::path::Path;
use std::process::Command;

use super::scratch::scratch;

/// The output of a command that must exit with `code`.
fn exiting(code: i32, args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_otpsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(code), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn otpsim(args: &[&str]) -> String {
    exiting(0, args)
}

/// A replay of a schedule that breaks an invariant exits 1.
fn broken(args: &[&str]) -> String {
    exiting(1, args)
}

fn seed_incident(format: &str) -> String {
    broken(&[
        "replay",
        "scenarios/seed_incident.toml",
        "--variant",
        "naive",
        "--format",
        format,
    ])
}

/// HTML5 with a doctype, written well-formed so that an XML parser reads it.
fn parse_html(html: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(html, options).expect("well-formed (X)HTML")
}

fn committed(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_svg_is_well_formed_and_marks_the_violation() {
    let svg = seed_incident("svg");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    assert!(
        texts.iter().any(|t| t.starts_with("VIOLATED verify_succeeds")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("response arrives, cookie now temp_1753562929_")),
        "{texts:?}"
    );
}

/// Compares `made` with the committed golden file. With `OTPSIM_BLESS=1`
/// the golden file is rewritten instead, to be read and committed.
fn golden(made: String, path: &str) {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("OTPSIM_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&full, &made).unwrap();
        return;
    }
    assert_eq!(
        made,
        committed(path),
        "{path} differs from what replay makes now; if the change is meant, rerun with OTPSIM_BLESS=1 and read the diff"
    );
}

#[test]
fn the_readme_diagram_is_what_replay_makes_byte_for_byte() {
    golden(seed_incident("svg"), "docs/seed-incident.svg");
}

#[test]
fn the_mermaid_diagram_of_the_pinned_incident_is_the_expected_one() {
    golden(seed_incident("mermaid"), "tests/golden/seed_incident_naive.mmd");
}

#[test]
fn the_html_page_is_self_contained_and_well_formed() {
    let html = seed_incident("html");
    let doc = parse_html(&html);
    assert_eq!(doc.root_element().tag_name().name(), "html");
    for tag in ["script", "link", "img", "iframe"] {
        assert!(
            !doc.descendants().any(|n| n.tag_name().name() == tag),
            "a <{tag}> would need the network"
        );
    }
    assert!(doc.descendants().any(|n| n.tag_name().name() == "svg"));
    assert!(html.contains("after that of signup #2 at 3.000s"));
}

#[test]
fn the_explanation_names_the_responses_and_the_deleted_registration() {
    let text = broken(&[
        "replay",
        "scenarios/seed_incident.toml",
        "--variant",
        "naive",
        "--explain",
    ]);
    let explanation = text
        .lines()
        .find_map(|l| l.strip_prefix("EXPLANATION: "))
        .expect("an explanation");
    assert!(
        explanation.contains("the response of signup #1 arrived at 5.000s, after that of signup #2 at 3.000s"),
        "{explanation}"
    );
    assert!(
        explanation.contains("temp_1753562929_") && explanation.contains("no longer existed"),
        "{explanation}"
    );
}

#[test]
fn the_json_has_the_violation_the_explanation_and_no_code() {
    let json: serde_json::Value = serde_json::from_str(&seed_incident("json")).unwrap();
    assert_eq!(json["violations"][0]["invariant"], "verify_succeeds");
    assert_eq!(json["violations"][0]["request"], 3);
    assert!(json["explanation"].as_str().unwrap().contains("signup #1"));
    let events = json["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["event"]
        .as_str()
        .unwrap()
        .contains("No temp_registration found for temp_id")));
}

#[test]
fn check_writes_a_report_with_each_counterexample_and_a_markdown_table() {
    let dir = scratch("report").join("report");
    let dir_arg = dir.to_str().unwrap();
    let md = otpsim(&[
        "check",
        "scenarios/seed_incident.toml",
        "scenarios/double_click_verify.toml",
        "--format",
        "markdown",
        "--report",
        dir_arg,
    ]);
    assert!(
        md.starts_with("| scenario | variant | expected | found | schedules | |"),
        "{md}"
    );
    assert_eq!(md.lines().filter(|l| l.starts_with("| `scenarios/")).count(), 6, "{md}");
    assert!(md.ends_with("6 passed, 0 failed\n"));
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let doc = parse_html(&html);
    let diagrams = doc.descendants().filter(|n| n.tag_name().name() == "svg").count();
    assert_eq!(
        diagrams, 3,
        "one per failing row: naive in both files, seed_fix in double_click_verify"
    );
}
