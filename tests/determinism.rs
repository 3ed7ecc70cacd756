//! A run is a pure function of (file, variant, seed, schedule).

use std::path::Path;
use std::sync::Arc;

use otpsim_sim::explore::{replay, Strategy};
use otpsim_sim::Scenario;

fn scenario(name: &str) -> Arc<Scenario> {
    Arc::new(Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name)).unwrap())
}

#[test]
fn the_same_seed_and_schedule_give_the_same_trace_byte_for_byte() {
    for (file, variant) in [
        ("double_click_two_workers.toml", "seed_fix"),
        ("two_tabs_server_sessions.toml", "idempotent"),
    ] {
        let s = scenario(file);
        for strategy in [Strategy::Pct(3), Strategy::Random] {
            let once = replay(&s, variant.parse().unwrap(), strategy, 7, 5, 1).unwrap();
            let twice = replay(&s, variant.parse().unwrap(), strategy, 7, 5, 1).unwrap();
            let (a, b) = (once.0.trace.to_string(), twice.0.trace.to_string());
            assert!(a.len() > 500, "{file}: a trace of substance");
            assert_eq!(a, b, "{file} {variant} {strategy}");
            assert_eq!(once.1, twice.1);
        }
    }
}

#[test]
fn different_schedules_interleave_differently() {
    let s = scenario("double_click_two_workers.toml");
    let traces: std::collections::BTreeSet<String> = (0..20)
        .map(|i| {
            replay(&s, "naive".parse().unwrap(), Strategy::Random, 1, i, 1)
                .unwrap()
                .0
                .trace
                .to_string()
        })
        .collect();
    assert!(
        traces.len() > 1,
        "twenty random schedules produced one trace: nothing is being scheduled"
    );
}

#[test]
fn traces_never_contain_a_code() {
    let s = scenario("seed_incident.toml");
    let (outcome, _) = replay(&s, "naive".parse().unwrap(), Strategy::Pct(3), 1, 0, 1).unwrap();
    let text = outcome.trace.to_string();
    for event in &outcome.trace.events {
        if let otpsim_sim::trace::What::MailSent { otp, .. } = &event.what {
            assert!(!text.contains(otp.digits()), "the trace prints a code");
        }
    }
}
