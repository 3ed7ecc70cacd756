//! The command line as a user runs it: output, and exit codes 0, 1 and 2;
//! explore and ablate (`cli/explore.rs`); the reports and pictures
//! (`cli/reports.rs`). One test binary for everything that runs `otpsim`.

#[path = "cli/explore.rs"]
mod explore;
#[path = "cli/reports.rs"]
mod reports;
mod scratch;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use scratch::scratch;

fn otpsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_otpsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

/// The seed incident's scenario file, as text to change.
fn seed_incident() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/seed_incident.toml")).unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A file `name` with `body`, in this test's folder of files.
fn temp_file(name: &str, body: &str) -> PathBuf {
    let path = scratch("files").join(name);
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
    let body = seed_incident();
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
    assert_eq!(
        first.status.code(),
        Some(1),
        "the schedule it shows breaks an invariant"
    );
    assert!(
        trace.contains("No temp_registration found for temp_id: temp_1753562929_"),
        "{trace}"
    );
    assert!(trace.contains("VIOLATED verify_succeeds"), "{trace}");
    assert_eq!(first.stdout, second.stdout, "replay is byte for byte the same");
}

#[test]
fn replay_exits_0_only_when_the_schedule_it_shows_breaks_nothing() {
    let o = otpsim(&["replay", "scenarios/seed_incident.toml", "--variant", "idempotent"]);
    let (out, _) = text(&o);
    assert!(out.contains("no invariant broken"), "{out}");
    assert_eq!(o.status.code(), Some(0));
    let o = otpsim(&["replay", "scenarios/seed_incident.toml", "--variant", "naive"]);
    assert!(text(&o).0.contains("VIOLATED verify_succeeds"));
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn check_names_every_bad_file_then_runs_the_good_ones_and_exits_2() {
    let dir = scratch("mixed");
    let good = seed_incident();
    std::fs::write(dir.join("a_bad.toml"), good.replace("at = \"0s\"", "at = \"soon\"")).unwrap();
    std::fs::write(dir.join("b_good.toml"), &good).unwrap();
    std::fs::write(dir.join("c_bad.toml"), "name = = 1\n").unwrap();
    let o = otpsim(&["check", dir.to_str().unwrap(), "no/such/place"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(err.contains("a_bad.toml:") && err.contains("not a duration"), "{err}");
    assert!(err.contains("c_bad.toml:"), "{err}");
    assert!(err.contains("no/such/place"), "{err}");
    assert!(
        out.contains("b_good.toml") && out.ends_with("3 passed, 0 failed\n"),
        "{out}"
    );
}

#[test]
fn check_narrows_to_a_variant_and_a_name_and_refuses_to_check_nothing() {
    let o = otpsim(&[
        "check",
        "scenarios/",
        "--variant",
        "idempotent",
        "--name",
        "double_click",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("  ")).collect();
    assert!(
        !rows.is_empty() && rows.iter().all(|l| l.trim_start().starts_with("idempotent")),
        "{out}"
    );
    let files: Vec<&str> = out.lines().filter(|l| l.starts_with("scenarios/")).collect();
    assert!(
        !files.is_empty() && files.iter().all(|l| l.contains("double_click")),
        "{out}"
    );
    let o = otpsim(&["check", "scenarios/", "--name", "no scenario is called this"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o).1);
}

/// `(classname, name, failed)` of every testcase of a JUnit file.
fn junit_cases(path: &Path) -> Vec<(String, String, bool)> {
    let xml = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("a testsuite");
    let cases: Vec<(String, String, bool)> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| {
            (
                n.attribute("classname").unwrap().to_string(),
                n.attribute("name").unwrap().to_string(),
                n.children().any(|c| c.has_tag_name("failure")),
            )
        })
        .collect();
    let failed = cases.iter().filter(|c| c.2).count();
    assert_eq!(suite.attribute("tests"), Some(cases.len().to_string().as_str()));
    assert_eq!(suite.attribute("failures"), Some(failed.to_string().as_str()));
    cases
}

#[test]
fn junit_has_a_testcase_per_row_for_check_merge_and_explore() {
    let dir = scratch("junit");
    let body = seed_incident();
    let wrong = dir.join("wrong.toml");
    std::fs::write(
        &wrong,
        body.replace("naive = \"fail:verify_succeeds\"", "naive = \"pass\""),
    )
    .unwrap();
    let junit = dir.join("check.xml");
    let o = otpsim(&["check", wrong.to_str().unwrap(), "--junit", junit.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let cases = junit_cases(&junit);
    assert_eq!(cases.len(), 3, "{cases:?}");
    assert!(cases.iter().all(|(class, _, _)| class.ends_with("wrong.toml")));
    assert_eq!(
        cases.iter().filter(|c| c.2).map(|c| c.1.as_str()).collect::<Vec<_>>(),
        ["naive"],
        "the one unmet expectation fails"
    );
    // A merge of shards writes the same cases.
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
    otpsim(&[
        "check",
        wrong.to_str().unwrap(),
        "--shard",
        "1/2",
        "--json",
        a.to_str().unwrap(),
    ]);
    otpsim(&[
        "check",
        wrong.to_str().unwrap(),
        "--shard",
        "2/2",
        "--json",
        b.to_str().unwrap(),
    ]);
    let merged = dir.join("merged.xml");
    otpsim(&[
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--junit",
        merged.to_str().unwrap(),
    ]);
    assert_eq!(junit_cases(&merged), cases);
    // Explore: a testcase per variant and invariant.
    let explored = dir.join("explore.xml");
    let save = dir.join("found");
    otpsim(&[
        "explore",
        "--variant",
        "naive",
        "--budget",
        "2000",
        "--save",
        save.to_str().unwrap(),
        "--junit",
        explored.to_str().unwrap(),
    ]);
    let cases = junit_cases(&explored);
    assert_eq!(cases.len(), otpsim_sim::Invariant::ALL.len());
    assert!(cases.iter().any(|c| c.1 == "verify_succeeds" && c.2), "{cases:?}");
}

#[test]
fn color_when_asked_and_quiet_when_asked() {
    let o = otpsim(&["check", "scenarios/seed_incident.toml", "--color", "always"]);
    assert!(text(&o).0.contains("\x1b[32mok\x1b[0m"), "{}", text(&o).0);
    // Not a terminal: no colour by default, nor with NO_COLOR.
    let o = Command::new(env!("CARGO_BIN_EXE_otpsim"))
        .args(["check", "scenarios/seed_incident.toml"])
        .env("NO_COLOR", "1")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(!text(&o).0.contains('\x1b'));
    let dir = scratch("quiet").join("found");
    let loud = otpsim(&[
        "explore",
        "--variant",
        "idempotent",
        "--budget",
        "1000",
        "--save",
        dir.to_str().unwrap(),
    ]);
    assert!(text(&loud).1.contains("schedules in"), "{}", text(&loud).1);
    let quiet = otpsim(&[
        "explore",
        "--variant",
        "idempotent",
        "--budget",
        "1000",
        "--save",
        dir.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(text(&quiet).1, "", "nothing but results");
    assert!(text(&quiet).0.contains("schedules   wall s"), "the results still print");
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
    // Two words for two kinds of choice: threads in the simulator,
    // deliveries against a real server.
    let o = otpsim(&[
        "replay",
        "scenarios/seed_incident.toml",
        "--variant",
        "naive",
        "--deliveries",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = otpsim(&[
        "replay",
        "scenarios/seed_incident.toml",
        "--target",
        "targets/otpsim-naive.toml",
        "--choices",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn stress_keeps_idempotent_whole_under_real_contention_on_threads_and_tokio() {
    for runtime in [&["--threads", "8"][..], &["--tokio", "--threads", "8"][..]] {
        let mut args = vec![
            "stress",
            "--variant",
            "idempotent",
            "--workers",
            "4",
            "--duration",
            "2s",
        ];
        args.extend_from_slice(runtime);
        let o = otpsim(&args);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(0), "{out}{err}");
        let statuses = out
            .lines()
            .find(|l| l.starts_with("answers by status:"))
            .expect("a status line");
        assert!(!statuses.contains("500:"), "{statuses}");
        assert!(out.contains("single_pending 0.00 verify_succeeds 0.00"), "{out}");
        let runs: u64 = out
            .split(" runs,")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(runs > 0, "{out}");
    }
}

#[test]
fn stress_never_writes_into_an_existing_database() {
    let existing = temp_file("mine.db", "not yours");
    let o = otpsim(&[
        "stress",
        "--variant",
        "naive",
        "--db",
        existing.to_str().unwrap(),
        "--duration",
        "1s",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("exists"));
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "not yours");
}

/// Peak RSS of `otpsim check` on the double-click file with `schedules`
/// schedules of idempotent (which passes, so every schedule runs), in KiB.
fn peak_rss_of_check(schedules: u32) -> u64 {
    let body =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/double_click_signup.toml"))
            .unwrap();
    let body = body
        .replace("schedules = 500", &format!("schedules = {schedules}"))
        .replace("naive = \"fail:single_pending\"\n", "")
        .replace("seed_fix = \"fail:verify_succeeds\"\n", "");
    let file = temp_file(&format!("memory-{schedules}.toml"), &body);
    let o = Command::new(env!("CARGO_BIN_EXE_otpsim"))
        .args(["check", file.to_str().unwrap(), "--jobs", "1"])
        .env("OTPSIM_REPORT_PEAK_RSS", "1")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(out.contains(&format!("{schedules} schedules")), "{out}");
    let kib = err
        .lines()
        .find_map(|l| l.strip_prefix("peak RSS: "))
        .and_then(|v| v.trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {err:?}"));
    kib
}

#[test]
fn memory_does_not_grow_with_schedules() {
    // The format-1 build kept about 10 KiB a schedule: 9,000 more
    // schedules would have added some 90 MiB.
    let (few, many) = (peak_rss_of_check(1000), peak_rss_of_check(10_000));
    assert!(
        many < few + 8 * 1024,
        "peak RSS {few} KiB at 1,000 schedules, {many} KiB at 10,000"
    );
}

#[test]
fn shards_merge_into_the_table_of_one_unsharded_run() {
    let files = [
        "scenarios/seed_incident.toml",
        "scenarios/double_click_two_workers.toml",
        "scenarios/emails_out_of_order.toml",
        "scenarios/stranger_signs_up_after_the_owner.toml",
        "scenarios/browser_double_click_form.toml",
    ];
    let whole = otpsim(&[&["check", "--jobs", "1"][..], &files[..]].concat());
    let dir = scratch("shards");
    let mut reports = Vec::new();
    for i in 1..=3 {
        let json = dir.join(format!("shard{i}.json"));
        let shard = format!("{i}/3");
        let json_arg = json.display().to_string();
        let o = otpsim(&[&["check", "--shard", &shard, "--json", &json_arg][..], &files[..]].concat());
        assert!(o.status.code().is_some(), "{:?}", text(&o));
        reports.push(json_arg);
    }
    // In any order.
    reports.reverse();
    let merged = otpsim(
        &[
            &["merge"][..],
            &reports.iter().map(String::as_str).collect::<Vec<_>>()[..],
        ]
        .concat(),
    );
    assert_eq!(text(&merged).0, text(&whole).0);
    assert_eq!(merged.status.code(), whole.status.code());
    assert_eq!(
        text(&whole).0.lines().filter(|l| l.starts_with("scenarios/")).count(),
        5
    );
    // A missing or doubled shard is refused.
    let missing = otpsim(&["merge", &reports[0], &reports[1]]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing).1.contains("missing"), "{:?}", text(&missing));
    let doubled = otpsim(&["merge", &reports[0], &reports[0], &reports[1]]);
    assert_eq!(doubled.status.code(), Some(2));
    assert!(text(&doubled).1.contains("given twice"), "{:?}", text(&doubled));
    let not_a_report = temp_file("not-a-report.json", "{\"rows\": 3}");
    let bad = otpsim(&["merge", &not_a_report.display().to_string()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad).1.contains("not a report of `otpsim check --json`"),
        "{:?}",
        text(&bad)
    );
}

/// The test folders clean up after themselves: kept while their test's
/// thread asks again, gone when it ends, and not shared with a test on
/// another thread that asks for the same name.
#[test]
fn a_scratch_folder_is_its_threads_own_and_removed_when_the_thread_ends() {
    let mine = temp_file("a.txt", "this thread's");
    let (dir, file) = std::thread::spawn(|| {
        let file = temp_file("a.txt", "kept while the thread runs");
        let again = scratch("files");
        assert!(file.exists(), "asking again keeps what is there");
        (again, file)
    })
    .join()
    .unwrap();
    assert_ne!(file, mine);
    assert!(!file.exists() && !dir.exists(), "{} is still there", dir.display());
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "this thread's");
}
