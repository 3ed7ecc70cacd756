//! The reference apps under `targets/`, each run from its target file
//! alone by its own command (no shim), and each documented flaw found by
//! `check --target` on a corpus file (`targets/<app>/README.md`,
//! docs/findings.md).

use std::collections::BTreeSet;
use std::path::Path;

use otpsim_live::check::{sweep, Order};
use otpsim_live::target::Target;
use otpsim_sim::{Invariant, Scenario};

use super::{move_verify, options, root, runtime};

/// Live orders per corpus file against a reference app.
const APP_SCHEDULES: usize = 2;

/// What a reference app's target must show: each corpus file, and the
/// invariants it must break there (every order's breaks, together).
fn finds(target: &str, cases: &[(&str, &[Invariant])]) {
    let target = Target::load(&root().join("targets").join(format!("{target}.toml"))).unwrap();
    let runtime = runtime();
    // The sweeps run at once, each on its own ports: a live run mostly
    // waits.
    let sweeps = cases.iter().map(|(file, _)| {
        let scenario = Scenario::load(&root().join("scenarios").join(format!("{file}.toml"))).unwrap();
        let options = options(&format!("{}-{file}", target.name.split(',').next().unwrap_or("app")));
        let target = target.clone();
        runtime.spawn(async move {
            // Two orders: each flaw shows in the first or the second, and
            // a live order costs seconds of CI.
            let swept = sweep(&target, &scenario, &options, APP_SCHEDULES, Order::DepthFirst).await;
            (scenario, swept)
        })
    });
    let done: Vec<_> = sweeps
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| runtime.block_on(h).unwrap())
        .collect();
    for ((file, broken), (scenario, swept)) in cases.iter().zip(done) {
        let swept = swept.unwrap_or_else(|e| panic!("{file} against {}: {e}", target.name));
        let want: BTreeSet<Invariant> = broken.iter().copied().collect();
        // A miss prints the first run's trace: what the server answered
        // and when, the one thing a live run does not control.
        assert!(
            want.is_subset(&swept.violated()),
            "{file} against {}: expected {want:?} broken, found {:?}\n{}",
            target.name,
            swept.violated(),
            swept.first.trace
        );
        // Each break has a run that shows it, with its replay command.
        for i in &want {
            let shown = swept
                .counterexamples
                .iter()
                .find(|c| c.violations.iter().any(|v| v.invariant == *i));
            assert!(shown.is_some(), "{file}: {i} broke, but no kept run shows it");
        }
        assert!(scenario.requests.len() > 1);
    }
}

#[test]
fn each_target_starts_its_app_by_its_own_command_and_the_app_knows_nothing_of_the_harness() {
    for (file, program, folder) in [
        ("django", "gunicorn", Some("django")),
        ("flask-mail", "gunicorn", Some("flask-mail")),
        ("express", "node", Some("express")),
        ("flask-original", "gunicorn", Some("flask")),
        ("flask-fix", "gunicorn", Some("flask")),
        ("otpsim-naive", "{otpsim}", None),
        ("otpsim-seed_fix", "{otpsim}", None),
        ("otpsim-idempotent", "{otpsim}", None),
    ] {
        let target = Target::load(&root().join("targets").join(format!("{file}.toml"))).unwrap();
        assert_eq!(target.command[0], program, "{file}: started by the app's own server");
        if let Some(setup) = &target.setup {
            assert_eq!(
                setup[1..3],
                ["{target_dir}/django/manage.py".to_string(), "migrate".to_string()],
                "{file}: the app's own migration"
            );
        }
        let Some(folder) = folder else { continue };
        // No file of the app's code names the harness or its request
        // label: no shim reads or writes anything for it (its README may).
        let mut files = vec![root().join("targets").join(folder)];
        while let Some(path) = files.pop() {
            // Its packages from npm are not its code.
            if path.ends_with("node_modules") {
                continue;
            }
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default().to_lowercase();
            for word in ["otpsim", "x-otpsim-request"] {
                assert!(!text.contains(word), "{} mentions {word}", path.display());
            }
        }
    }
}

/// Django 3.2: CSRF on every form, redirects, username login, a migration
/// as setup, a four-digit code over four inputs, database sessions by
/// default (cookie sessions on request).
#[test]
fn the_django_apps_documented_flaws_are_found_from_its_target_file() {
    finds(
        "django",
        &[
            // A replaced pending signup whose id the cookie still names.
            ("seed_incident", &[Invariant::VerifySucceeds]),
            // Attempts counted, never enforced.
            ("concurrent_wrong_codes", &[Invariant::AttemptsLimited]),
            // A session with no signup in it takes the address from the
            // form, with any code; a double-click verify answers 500.
            (
                "stranger_locks_the_owner_out",
                &[Invariant::NoFalseAccept, Invariant::ClearErrors],
            ),
        ],
    );
}

/// Node/Express: a JSON API, the pending signup in a signed cookie, and
/// every code derived from one TOTP secret and the time.
#[test]
fn the_express_apps_documented_flaws_are_found_from_its_target_file() {
    finds(
        "express",
        &[(
            "a_strangers_own_code_verifies_the_owners_address",
            &[Invariant::NoFalseAccept, Invariant::NoHijack],
        )],
    );
    // And on a clock ten times as fast. Node aborts when its monotonic
    // clock goes back; a run whose app died answered nothing, and broke
    // nothing, until such a run became an error.
    let mut fast = Target::load(&root().join("targets/express.toml")).unwrap();
    fast.clock = Some(otpsim_live::clock::FakeClock {
        start_unix_ms: otpsim_live::clock::DEFAULT_START_UNIX_MS,
        speed: 10,
    });
    let file = root().join("scenarios/a_strangers_own_code_verifies_the_owners_address.toml");
    let mut scenario = Scenario::load(&file).unwrap();
    // At x10 the file's verify at 2 s leaves 200 ms of real time for Node to
    // mail Mallory his own code; had the mail not come, he typed nothing of
    // it and nothing broke (a miss in four full runs, .config/nextest.toml).
    // At 20 s he has 2 s, and his code still verifies: 20 s is less than a
    // step, so the verify's 30 s step is his signup's or the next, and
    // Express takes this step's code or the last's.
    move_verify(&mut scenario, 2_000, 20_000);
    let swept = runtime()
        .block_on(sweep(&fast, &scenario, &options("express-x10"), 1, Order::DepthFirst))
        .unwrap();
    assert!(
        swept.violated().contains(&Invariant::NoFalseAccept),
        "{}\n{}",
        swept.found(),
        swept.first.trace
    );
}

/// A target for a Python app of a few lines, written into test `name`'s
/// folder: `start` runs before it serves (its folder is `sys.argv[2]`),
/// `post` answers every POST.
fn python_app(name: &str, start: &str, post: &str) -> Target {
    let dir = options(name).scratch;
    let app = format!(
        r#"
import http.server, os, sys
{start}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"up")
    def do_POST(self):
{post}
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#
    );
    std::fs::write(dir.join("app.py"), app).unwrap();
    let text = r#"
name = "a few lines of Python"
expect = "naive"
[start]
command = ["python3", "{target_dir}/app.py", "{port}", "{target_dir}"]
ready = "/"
[routes]
signup = { path = "/signup", email = "email", password = "password" }
verify = { path = "/verify", email = "email", otp = "otp" }
[answer]
[[answer.rule]]
status = 200
code = "ok"
[mail]
code = '(\d{6})'
"#;
    let path = dir.join("app.toml");
    std::fs::write(&path, text).unwrap();
    Target::load(&path).unwrap()
}

/// An app that exits in the middle of a run leaves every later request
/// unanswered, which no invariant forbids: the run is an error that says
/// so, with the app's last lines, never a pass.
#[test]
fn an_app_that_exits_during_a_run_is_an_error_not_a_pass() {
    let post = "        print(\"exiting at the first POST\", flush=True)\n        os._exit(3)";
    let target = python_app("exits", "", post);
    let scenario = Scenario::load(&root().join("scenarios/the_owner_signs_up_and_verifies.toml")).unwrap();
    let swept = runtime().block_on(sweep(&target, &scenario, &options("exits-run"), 1, Order::DepthFirst));
    let why = swept.expect_err("a run whose app exited is an error").to_string();
    assert!(why.contains("exited during the run"), "{why}");
    assert!(why.contains("exiting at the first POST"), "{why}");
}

/// A port free when the harness chose it can be taken before the app binds
/// it: the instance starts again on another port, twice at most, and the
/// run goes on. The app here says its port is in use at its first
/// `fails` starts, counted in a file beside it: one, and the run is run;
/// three, and it is an error with the app's words, after three starts.
#[test]
fn an_instance_whose_port_was_taken_starts_again_on_another() {
    let start = |fails: u32| {
        format!(
            r#"count = os.path.join(sys.argv[2], "starts")
n = int(open(count).read()) + 1 if os.path.exists(count) else 1
open(count, "w").write(str(n))
if n <= {fails}:
    print("OSError: [Errno 98] Address already in use", flush=True)
    sys.exit(1)"#
        )
    };
    let post = "        self.send_response(200); self.end_headers(); self.wfile.write(b\"sent\")";
    let file = "format = 2\nname = \"one signup\"\n[[request]]\nat = \"0s\"\nkind = \"signup\"\nemail = \"ana@example.com\"\n[expect]\nnaive = \"pass\"\n";
    let scenario = Scenario::parse(Path::new("one-signup.toml"), file).unwrap();
    let starts = |target: &Target| std::fs::read_to_string(target.path.parent().unwrap().join("starts")).unwrap();

    let once = python_app("port-taken-once", &start(1), post);
    let swept = runtime().block_on(sweep(
        &once,
        &scenario,
        &options("port-taken-once-run"),
        1,
        Order::DepthFirst,
    ));
    let swept = swept.unwrap_or_else(|e| panic!("a taken port is started again, not an error: {e}"));
    assert_eq!(swept.schedules, 1);
    assert_eq!(starts(&once), "2");

    let always = python_app("port-taken-always", &start(3), post);
    let swept = runtime().block_on(sweep(
        &always,
        &scenario,
        &options("port-taken-always-run"),
        1,
        Order::DepthFirst,
    ));
    let why = swept.expect_err("a port taken at every start is an error").to_string();
    assert!(why.contains("Address already in use"), "{why}");
    assert_eq!(starts(&always), "3");
}

/// Another process may hold an instance's port and answer the ready
/// probe while the app retries its bind (gunicorn does, for five
/// seconds): found live, with `--jobs 4`, when one run's gunicorn took
/// another run's server for its own. The app here, at its first start,
/// leaves a server of its own session on the port (out of its process
/// group, as another run's would be) and waits; at its second it serves.
/// The probe's answer must not count, and the run must go to the second
/// start, with nothing sent to the other server.
#[test]
fn a_ready_probe_answered_by_another_process_starts_the_instance_again() {
    let start = r#"count = os.path.join(sys.argv[2], "starts")
n = int(open(count).read()) + 1 if os.path.exists(count) else 1
open(count, "w").write(str(n))
if n == 1:
    if os.fork() == 0:
        os.setsid()
        open(os.path.join(sys.argv[2], "other.pid"), "w").write(str(os.getpid()))
        class Other(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200); self.end_headers(); self.wfile.write(b"another's")
            def do_POST(self):
                open(os.path.join(sys.argv[2], "other-posts"), "a").write(self.path + "\n")
                self.send_response(200); self.end_headers()
        import threading
        threading.Timer(60, lambda: os._exit(0)).start()
        http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Other).serve_forever()
    import time
    time.sleep(60)
    sys.exit(1)"#;
    let post = "        self.send_response(200); self.end_headers(); self.wfile.write(b\"sent\")";
    let file = "format = 2\nname = \"one signup\"\n[[request]]\nat = \"0s\"\nkind = \"signup\"\nemail = \"ana@example.com\"\n[expect]\nnaive = \"pass\"\n";
    let scenario = Scenario::parse(Path::new("one-signup.toml"), file).unwrap();
    let target = python_app("answered-by-another", start, post);
    let dir = target.path.parent().unwrap().to_path_buf();
    let swept = runtime().block_on(sweep(
        &target,
        &scenario,
        &options("answered-by-another-run"),
        1,
        Order::DepthFirst,
    ));
    // The other server is stopped whatever the outcome: it is no
    // instance's, so no instance's stop reaches it.
    if let Ok(pid) = std::fs::read_to_string(dir.join("other.pid")) {
        let pid: i32 = pid.trim().parse().unwrap();
        // SAFETY: kill(2) on a pid this test's app wrote; it touches no memory of ours.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    let swept = swept.unwrap_or_else(|e| panic!("an answer from another process starts the instance again: {e}"));
    assert_eq!(swept.schedules, 1);
    assert_eq!(std::fs::read_to_string(dir.join("starts")).unwrap(), "2");
    assert!(dir.join("other.pid").exists(), "the first start left no other server");
    assert!(
        !dir.join("other-posts").exists(),
        "the run's requests went to the other server"
    );
}

/// Flask-Mail over STARTTLS with a login; the pending signup in the signed
/// session cookie; every answer a redirect with a flashed message.
#[test]
fn the_flask_mail_apps_documented_flaws_are_found_from_its_target_file() {
    finds(
        "flask-mail",
        &[
            // The cookie's pending signup, replaced by a later one.
            ("seed_incident", &[Invariant::VerifySucceeds]),
            // A double-click verify: the second INSERT fails, and the 500
            // handler clears the session.
            ("double_click_verify", &[Invariant::ClearErrors]),
            // The code, readable in the stranger's own cookie.
            (
                "a_stranger_reads_the_code_in_his_own_cookie",
                &[Invariant::NoFalseAccept, Invariant::NoHijack],
            ),
        ],
    );
}

/// The Flask-Mail app writes its expiry in local time and reads it in UTC:
/// the plainest file passes under UTC and east of it, and breaks only on a
/// server west of UTC (`--tz`).
#[test]
fn a_zone_dependent_flaw_shows_only_under_the_zone_that_exposes_it() {
    let target = Target::load(&root().join("targets/flask-mail.toml")).unwrap();
    let scenario = Scenario::load(&root().join("scenarios/the_owner_signs_up_and_verifies.toml")).unwrap();
    let runtime = runtime();
    let sweeps: Vec<_> = ["UTC", "Asia/Tokyo", "America/Los_Angeles"]
        .into_iter()
        .map(|zone| {
            let mut options = options(&format!("flask-mail-tz-{}", zone.replace('/', "-")));
            options.tz = Some(zone.to_string());
            let (target, scenario) = (target.clone(), scenario.clone());
            runtime.spawn(async move { sweep(&target, &scenario, &options, 1, Order::DepthFirst).await })
        })
        .collect();
    let found: Vec<String> = sweeps
        .into_iter()
        .map(|h| runtime.block_on(h).unwrap().unwrap().found())
        .collect();
    assert_eq!(found, ["pass", "pass", "fail:verify_succeeds"]);
    // East of UTC a code outlives its five minutes: a six-minute file, on
    // a clock twenty times as fast. The file's margin is one minute past
    // the lifetime, 3 s of real time here, less the time the app takes to
    // mail the code and the checker's precision (100 ms of real time, 2 s
    // here). At a hundred times as fast the margin was 0.6 s: a mail the
    // loaded app sent 0.5 s late put the verify within 10 s of the expiry,
    // owed neither answer, and the test passed instead of failing
    // (2 of 4 full runs, 2026-12-03; the trace showed it).
    let mut fast = target.clone();
    fast.clock = Some(otpsim_live::clock::FakeClock {
        start_unix_ms: otpsim_live::clock::DEFAULT_START_UNIX_MS,
        speed: 20,
    });
    let late = Scenario::load(&root().join("scenarios/the_owner_types_her_code_after_its_lifetime.toml")).unwrap();
    let mut options = options("flask-mail-tz-tokyo-late");
    options.tz = Some("Asia/Tokyo".to_string());
    let swept = runtime
        .block_on(sweep(&fast, &late, &options, 1, Order::DepthFirst))
        .unwrap();
    assert!(
        swept.violated().contains(&Invariant::CodesExpire),
        "{}\n{}",
        swept.found(),
        swept.first.trace
    );
}

/// `otpsim init target` on each reference app: a draft that reaches, on
/// the seed incident, the verdict of the app's hand-written target file,
/// after the edits its comments ask for (none for Flask-Mail and Express;
/// for Django, the two its session comment names and the one rule for an
/// answer the probe did not meet).
#[test]
fn init_drafts_a_target_that_reaches_the_hand_written_ones_verdict() {
    let apps = root().join("targets");
    let dir = super::scratch("init-drafts");
    let at = |app: &str| apps.join(app).display().to_string();
    let django = at("django");
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "flask-mail",
            [
                "--env",
                "SECRET_KEY=k",
                "--env",
                "DATABASE={db}",
                "--env",
                "MAIL_SERVER=127.0.0.1",
                "--env",
                "MAIL_PORT={smtp_port}",
                "--env",
                "MAIL_USERNAME=a",
                "--env",
                "MAIL_PASSWORD=b",
                "--",
                "gunicorn",
                "--bind",
                "127.0.0.1:{port}",
                "--chdir",
                &at("flask-mail"),
                "app:app",
            ]
            .map(String::from)
            .to_vec(),
            "fail:verify_succeeds",
        ),
        (
            "express",
            [
                "--env",
                "PORT={port}",
                "--env",
                "SECRET=s",
                "--env",
                "ACCOUNTS={run_dir}/accounts.json",
                "--env",
                "SMTP_HOST=127.0.0.1",
                "--env",
                "SMTP_PORT={smtp_port}",
                "--",
                "node",
                &format!("{}/app.js", at("express")),
            ]
            .map(String::from)
            .to_vec(),
            "pass",
        ),
        (
            "django",
            [
                "--env",
                "SECRET_KEY=k",
                "--env",
                "DATABASE={db}",
                "--env",
                "EMAIL_HOST=127.0.0.1",
                "--env",
                "EMAIL_PORT={smtp_port}",
                "--setup",
                &format!("/usr/bin/python3 {django}/manage.py migrate --noinput"),
                "--",
                "gunicorn",
                "--bind",
                "127.0.0.1:{port}",
                "--chdir",
                &django,
                "otpsite.wsgi",
            ]
            .map(String::from)
            .to_vec(),
            "fail:verify_succeeds",
        ),
    ];
    let otpsim = env!("CARGO_BIN_EXE_otpsim");
    let runs: Vec<_> = cases
        .into_iter()
        .map(|(app, args, verdict)| {
            let out = dir.join(format!("{app}.toml"));
            std::thread::spawn(move || {
                let init = std::process::Command::new(otpsim)
                    .args(["init", "target", "--out", out.to_str().unwrap(), "--name", app])
                    .args(&args)
                    .output()
                    .unwrap();
                assert!(init.status.success(), "{app}: {}", String::from_utf8_lossy(&init.stderr));
                let mut draft = std::fs::read_to_string(&out).unwrap();
                assert!(draft.contains("# GUESS"), "{app}: every guess is marked");
                // The offered line, taken as offered, lets the draft be paused.
                assert!(draft.contains("PYTHONPATH = \"{pause_python}\""), "{app}: the pause is offered");
                if !draft.contains("env = {  }") {
                    let taken = draft.replacen("env = { ", "env = { PYTHONPATH = \"{pause_python}\", ", 1);
                    let paused = Target::parse(&out, &taken)
                        .unwrap()
                        .with_pause(std::time::Duration::from_millis(2));
                    assert!(paused.is_ok(), "{app}: {paused:?}");
                }
                if app == "django" {
                    // Its comments ask for these three edits.
                    assert!(draft.contains("remove\n# cookie_sessions = false."));
                    assert!(draft.contains("Answers the probe did not meet"));
                    draft = draft
                        .replace("cookie_sessions = false\n", "")
                        .replace("EMAIL_PORT = \"{smtp_port}\" }", "EMAIL_PORT = \"{smtp_port}\", SESSION_MODE = \"{session}\" }")
                        .replacen("code = \"invalid_otp\" },", "code = \"invalid_otp\" },\n    { body = 'No pending signup', code = \"no_registration\" },", 1);
                    std::fs::write(&out, &draft).unwrap();
                }
                let check = std::process::Command::new(otpsim)
                    .args(["check", "--target", out.to_str().unwrap()])
                    .arg(root().join("scenarios/seed_incident.toml"))
                    .output()
                    .unwrap();
                let table = String::from_utf8_lossy(&check.stdout).to_string();
                let found = format!("found {verdict}");
                assert!(table.contains(&found), "{app}: expected {found}:\n{table}\n{}", String::from_utf8_lossy(&check.stderr));
            })
        })
        .collect();
    for run in runs {
        run.join().unwrap();
    }
}

#[test]
fn init_refuses_a_command_without_a_port_and_never_overwrites_a_file() {
    let otpsim = env!("CARGO_BIN_EXE_otpsim");
    let out = std::process::Command::new(otpsim)
        .args(["init", "target", "--", "node", "app.js"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never names {port}"));
    let dir = super::scratch("init-refuses");
    let mine = dir.join("mine.toml");
    std::fs::write(&mine, "# mine\n").unwrap();
    let out = std::process::Command::new(otpsim)
        .args([
            "init",
            "target",
            "--out",
            mine.to_str().unwrap(),
            "--",
            "node",
            "app.js",
            "{port}",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "# mine\n");
}

/// A command line as a shell splits it: words, double quotes, and
/// backslash-newline continuations.
fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in command.replace("\\\n", " ").chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// docs/targets.md's first hour, run as written: its `init` command on the
/// Flask-Mail app, then its first check, whose verdict it shows; and every
/// TOML block in it a valid target file.
#[test]
fn the_first_hour_in_docs_targets_md_runs_as_written() {
    let doc = std::fs::read_to_string(root().join("docs/targets.md")).unwrap();
    let blocks: Vec<(&str, &str)> = doc
        .split("```")
        .skip(1)
        .step_by(2)
        .filter_map(|b| b.split_once('\n'))
        .collect();
    for (lang, text) in &blocks {
        if *lang == "toml" {
            if let Err(e) = Target::parse(Path::new("docs/targets.md"), text) {
                panic!("a target in docs/targets.md does not load: {e}");
            }
        }
    }
    let sh: Vec<&str> = blocks.iter().filter(|(l, _)| *l == "sh").map(|(_, t)| *t).collect();
    let init = sh
        .iter()
        .find(|t| t.starts_with("otpsim init target"))
        .expect("the init example");
    let check = sh
        .iter()
        .find(|t| t.starts_with("otpsim check --target targets/myapp.toml scenarios/seed_incident.toml"))
        .expect("the first check");
    // The draft goes where the doc puts it, under a name of this run's.
    let draft = format!("targets/.docs-first-hour-{}.toml", std::process::id());
    let swap = |w: String| match w.as_str() {
        "targets/myapp.toml" => draft.clone(),
        _ => w,
    };
    let otpsim = env!("CARGO_BIN_EXE_otpsim");
    let run = |command: &str| {
        let args: Vec<String> = words(command).into_iter().skip(1).map(swap).collect();
        std::process::Command::new(otpsim)
            .args(&args)
            .current_dir(root())
            .output()
            .unwrap()
    };
    let made = run(init);
    let drafted = std::fs::read_to_string(root().join(&draft));
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let notes = String::from_utf8_lossy(&made.stderr).to_string();
    assert!(
        notes.contains("init: the mailed code answered 302 to /, then 200"),
        "{notes}"
    );
    let checked = run(check);
    let _ = std::fs::remove_file(root().join(&draft));
    assert!(drafted.unwrap().contains("# GUESS"));
    let table = String::from_utf8_lossy(&checked.stdout).to_string();
    assert_eq!(checked.status.code(), Some(1), "{table}");
    assert!(table.contains("found fail:verify_succeeds"), "{table}");
    assert!(
        doc.contains("found fail:verify_succeeds"),
        "the doc shows the verdict the run gives"
    );
}
