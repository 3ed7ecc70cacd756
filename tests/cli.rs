//! The command line as a user runs it: output, and exit codes 0, 1 and 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn otpsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otpsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn temp_file(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("otpsim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn check_passes_on_the_corpus_and_ends_with_the_plain_count() {
    let o = otpsim(&["check", "scenarios/seed_incident.toml"]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(out.lines().last(), Some("3 passed, 0 failed"));
    assert!(out.contains("naive") && out.contains("fail:verify_succeeds"));
}

#[test]
fn an_unmet_expectation_exits_1_with_a_replay_command_that_reproduces_it() {
    let body =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/seed_incident.toml")).unwrap();
    let wrong = temp_file(
        "wrong.toml",
        &body.replace("naive = \"fail:verify_succeeds\"", "naive = \"pass\""),
    );
    let o = otpsim(&["check", wrong.to_str().unwrap()]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("UNEXPECTED") && out.ends_with("2 passed, 1 failed\n"),
        "{out}"
    );
    let replay = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay: otpsim "))
        .expect("a replay command");
    let args: Vec<&str> = replay.split_whitespace().collect();
    let first = otpsim(&args);
    let second = otpsim(&args);
    let (trace, _) = text(&first);
    assert_eq!(first.status.code(), Some(0));
    assert!(
        trace.contains("No temp_registration found for temp_id: temp_1753562929_"),
        "{trace}"
    );
    assert!(trace.contains("VIOLATED verify_succeeds"), "{trace}");
    assert_eq!(first.stdout, second.stdout, "replay is byte for byte the same");
}

#[test]
fn bad_input_exits_2_naming_the_place() {
    let bad = temp_file("bad.toml", "name = \"x\"\n[[request]]\nat = \"later\"\nkind = \"signup\"\nemail = \"a@x.org\"\n[expect]\nnaive = \"pass\"\n");
    let o = otpsim(&["check", bad.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("bad.toml:3:6:") && err.contains("not a duration"), "{err}");

    let junk = temp_file("junk.toml", "\u{0}\u{1}\u{2}garbage = = =");
    assert_eq!(otpsim(&["check", junk.to_str().unwrap()]).status.code(), Some(2));
    assert_eq!(otpsim(&["check", "no/such/place"]).status.code(), Some(2));
    let o = otpsim(&["replay", "scenarios/seed_incident.toml", "--variant", "seed_fix-locks"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("no switch \"locks\""));
    assert_eq!(
        otpsim(&["check", "scenarios", "--strategy", "pct0"]).status.code(),
        Some(2)
    );
}
