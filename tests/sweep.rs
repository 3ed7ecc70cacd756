//! The sweep: a run is a pure function of (file, flow, seed, choices),
//! every counterexample replays from its recorded choices to the same
//! trace (compared as values), and a panicking flow is a counterexample
//! with its trace. (That memory does not grow with schedules is measured
//! in tests/cli.rs, on the binary.)

use std::path::Path;
use std::sync::Arc;

use otpsim_core::Variant;
use otpsim_sim::schedule::Strategy;
use otpsim_sim::sweep::{replay, rerun, sweep};
use otpsim_sim::Scenario;

fn scenario(name: &str) -> Arc<Scenario> {
    Arc::new(Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name)).unwrap())
}

fn variant(name: &str) -> Variant {
    name.parse().unwrap()
}

#[test]
fn the_same_seed_and_choices_give_the_same_trace() {
    for (file, v) in [
        ("double_click_two_workers.toml", "seed_fix"),
        ("two_tabs_server_sessions.toml", "idempotent"),
        ("crash_takes_a_neighbour_down.toml", "idempotent"),
    ] {
        let s = scenario(file);
        let choices = [1, 0, 2, 1, 1, 0, 3, 1];
        let once = replay(&s, &variant(v), 7, &choices, 1);
        let twice = replay(&s, &variant(v), 7, &choices, 1);
        assert!(once.0.trace.events.len() > 15, "{file}: a trace of substance");
        assert_eq!(once.0.trace, twice.0.trace, "{file} {v}");
        assert_eq!((once.1, once.2), (twice.1, twice.2));
    }
}

#[test]
fn every_counterexample_replays_from_its_choices_to_the_same_trace() {
    for (file, v) in [
        ("double_click_signup.toml", "naive"),
        ("double_click_two_workers.toml", "seed_fix"),
        ("crash_mid_verify.toml", "naive"),
    ] {
        let s = scenario(file);
        for strategy in [Strategy::Pct(3), Strategy::Random] {
            let found = sweep(&s, &variant(v), strategy, s.schedules, 3, |_| false);
            assert!(!found.counterexamples.is_empty(), "{file} {v} {strategy}");
            for c in &found.counterexamples {
                let (outcome, violations, _) = rerun(&s, &variant(v), c).expect("a simulated schedule");
                assert_eq!(outcome.trace, c.trace, "{file} {v} {strategy}");
                assert_eq!(violations, c.violations);
            }
        }
    }
}

#[test]
fn different_choices_interleave_differently() {
    let s = scenario("double_click_two_workers.toml");
    let mut rng = otpsim_core::ports::SplitMix64::new(1);
    let traces: Vec<_> = (0..20)
        .map(|_| {
            let choices: Vec<u8> = (0..32).map(|_| (rng.next_u64() % 3) as u8).collect();
            replay(&s, &variant("naive"), 1, &choices, 1).0.trace
        })
        .collect();
    let distinct = traces.iter().filter(|t| *t != &traces[0]).count();
    assert!(
        distinct > 0,
        "twenty schedules produced one trace: nothing is being scheduled"
    );
}

#[test]
fn traces_never_contain_a_code_or_a_password() {
    let s = scenario("stranger_signs_up_after_the_owner.toml");
    let (outcome, _, _) = replay(&s, &variant("seed_fix"), 1, &[], 1);
    let text = outcome.trace.to_string();
    for event in &outcome.trace.events {
        match &event.what {
            otpsim_sim::trace::What::MailSent { otp, .. } => {
                assert!(!text.contains(otp.digits()), "the trace prints a code")
            }
            otpsim_sim::trace::What::Sent { password, .. } => {
                assert!(!text.contains(password.as_str()), "the trace prints a password")
            }
            _ => {}
        }
    }
}

/// Naive, except that a login panics: a flow's bug, not the harness's.
#[derive(Debug, Clone)]
struct PanicsOnLogin;

impl std::fmt::Display for PanicsOnLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad("panics_on_login")
    }
}

impl otpsim_core::Flow for PanicsOnLogin {
    fn schema(&self) -> &'static str {
        Variant::Naive.schema()
    }
    fn handle<E: otpsim_core::Ports>(
        &self,
        env: &E,
        cfg: &otpsim_core::FlowConfig,
        session: &mut otpsim_core::Session,
        request: &otpsim_core::Request,
    ) -> otpsim_core::Handled {
        if request.kind() == otpsim_core::Kind::Login {
            panic!("login is not written yet");
        }
        Variant::Naive.handle(env, cfg, session, request)
    }
}

#[test]
fn a_panic_in_a_handler_is_a_counterexample_with_its_trace() {
    let s = scenario("stranger_signs_up_after_the_owner.toml");
    let found = sweep(&s, &PanicsOnLogin, Strategy::Pct(3), 5, 1, |_| false);
    let c = found
        .counterexamples
        .iter()
        .find(|c| c.violations.iter().any(|v| v.why.contains("login is not written yet")))
        .expect("the panic is reported as clear_errors");
    let panicked = c
        .trace
        .events
        .iter()
        .position(|e| matches!(e.what, otpsim_sim::trace::What::Panicked(_)))
        .expect("the panic is in the trace");
    assert!(panicked > 10, "the events before the panic are kept");
    let (again, _, _) = rerun(&s, &PanicsOnLogin, c).expect("a simulated schedule");
    assert_eq!(again.trace, c.trace);
}

/// A mail counts as sent when the mail server accepted it: the trace
/// dates it after the SMTP send, as live mode does.
#[test]
fn a_mail_is_dated_when_the_mail_server_accepted_it() {
    let s = scenario("slow_smtp_kills_the_code.toml");
    assert_eq!(s.deployment.mail_latency_ms, 300_000);
    let (outcome, _, _) = replay(&s, &variant("idempotent"), 1, &[], 1);
    let sent: Vec<u64> = outcome
        .trace
        .events
        .iter()
        .filter(|e| matches!(e.what, otpsim_sim::trace::What::MailSent { .. }))
        .map(|e| e.at_ms)
        .collect();
    assert_eq!(sent, vec![300_000]);
}

/// After the last request, everyone logs in on every address with an
/// account, in a section of its own that takes no schedule choices; a
/// file can switch it off.
#[test]
fn the_end_of_run_probe_logs_everyone_in_without_spending_choices() {
    use otpsim_sim::trace::What;
    let s = scenario("stranger_signs_up_after_the_owner_no_login.toml");
    let (outcome, violations, choices) = replay(&s, &variant("seed_fix"), 1, &[], 1);
    let events = &outcome.trace.events;
    let start = events
        .iter()
        .position(|e| matches!(e.what, What::Probe { .. }))
        .expect("a probe section");
    let logins: Vec<(&str, bool)> = events[start..]
        .iter()
        .filter_map(|e| match &e.what {
            What::Sent { kind, owner, .. } => {
                assert_eq!(*kind, otpsim_core::Kind::Login);
                Some((e.browser.as_deref().unwrap_or(""), *owner))
            }
            _ => None,
        })
        .collect();
    assert_eq!(logins, vec![("ana", true), ("mallory", false)]);
    let broken: Vec<_> = violations.iter().map(|v| v.invariant.name()).collect();
    assert!(
        broken.contains(&"no_hijack") && broken.contains(&"owner_logs_in"),
        "{broken:?}"
    );
    // The same run without the probe: the same choices, no logins.
    let mut quiet = (*s).clone();
    quiet.probe = false;
    let (without, _, choices_without) = replay(&Arc::new(quiet), &variant("seed_fix"), 1, &[], 1);
    assert!(without
        .trace
        .events
        .iter()
        .all(|e| !matches!(e.what, What::Probe { .. })));
    assert_eq!(choices, choices_without, "the probe takes no schedule choice");
    assert_eq!(&events[..start], &without.trace.events[..start]);
}
