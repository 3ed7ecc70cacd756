//! proptest strategies for whole scenarios and their schedules.
//!
//! Every choice is drawn so that proptest's shrinking moves towards the
//! simplest case: the first option of each list is the plainest (time 0,
//! browser b1, a signup for ana, no delay, no fault), and the schedule's
//! choices shrink towards 0, "no preemption".

use std::path::PathBuf;

use otpsim_core::Email;
use proptest::prelude::*;

use crate::invariant::Invariant;
use crate::scenario::{
    DbFault, Deployment, FaultKind, FaultSpec, Kind, OtpChoice, RequestSpec, Scenario, SessionMode, StatementChoice,
};

const EMAILS: [&str; 3] = ["ana@example.com", "bob@example.com", "cy@example.com"];
const BROWSERS: [&str; 3] = ["b1", "b2", "b3"];
const TIMES_MS: [u64; 5] = [0, 1000, 3000, 5000, 10_000];
const DELAYS_MS: [u64; 2] = [0, 5000];

fn request() -> impl Strategy<Value = RequestSpec> {
    (
        (
            0..TIMES_MS.len(),
            0..BROWSERS.len(),
            prop_oneof![Just(Kind::Signup), Just(Kind::Verify)],
            0..EMAILS.len(),
        ),
        (
            prop_oneof![Just(OtpChoice::Latest), Just(OtpChoice::First), Just(OtpChoice::Wrong)],
            1u32..=2,
            0..DELAYS_MS.len(),
            0..DELAYS_MS.len(),
        ),
    )
        .prop_map(
            |((at, browser, kind, email), (otp, repeat, response_delay, email_delay))| RequestSpec {
                at_ms: TIMES_MS[at],
                browser: BROWSERS[browser].to_string(),
                kind,
                email: Email::parse(EMAILS[email]).expect("a valid constant"),
                password: "s3cret!".to_string(),
                otp: if kind == Kind::Verify { otp } else { OtpChoice::Latest },
                repeat,
                worker: None,
                response_delay_ms: DELAYS_MS[response_delay],
                email_delay_ms: if kind == Kind::Signup {
                    DELAYS_MS[email_delay]
                } else {
                    0
                },
            },
        )
}

fn fault_kind() -> impl Strategy<Value = FaultKind> {
    prop_oneof![
        Just(FaultKind::Db(DbFault::Io)),
        Just(FaultKind::Db(DbFault::Busy)),
        Just(FaultKind::Db(DbFault::Full)),
        Just(FaultKind::Crash),
        Just(FaultKind::Mail),
    ]
}

/// A scenario (1 to 5 requests over 1 to 3 browsers and emails, 1 to 4
/// workers, cookie or server sessions, delays, at most one fault) and the
/// choices of its schedule.
pub fn scenario_and_choices() -> impl Strategy<Value = (Scenario, Vec<u8>)> {
    (
        (
            1usize..=4,
            prop_oneof![Just(SessionMode::Cookie), Just(SessionMode::Server)],
            prop_oneof![Just(0u64), Just(2000u64)],
        ),
        proptest::collection::vec(request(), 1..=5),
        proptest::option::weighted(0.3, (fault_kind(), any::<prop::sample::Index>(), 1u32..=6)),
        proptest::collection::vec(0u8..4, 0..48),
    )
        .prop_map(|((workers, session, mail_latency_ms), requests, fault, choices)| {
            let faults = fault
                .map(|(kind, at, statement)| {
                    let request = at.index(requests.len());
                    // A mail fault needs a signup to lose the email of.
                    let kind = if kind == FaultKind::Mail && requests[request].kind != Kind::Signup {
                        FaultKind::Crash
                    } else {
                        kind
                    };
                    let statement = if kind == FaultKind::Mail {
                        StatementChoice::Nth(0)
                    } else {
                        StatementChoice::Nth(statement)
                    };
                    FaultSpec {
                        kind,
                        request,
                        statement,
                    }
                })
                .into_iter()
                .collect();
            let scenario = Scenario {
                path: PathBuf::from("generated.toml"),
                name: "generated".to_string(),
                description: String::new(),
                deployment: Deployment {
                    workers,
                    session,
                    mail_latency_ms,
                    otp_ttl_ms: 10 * 60 * 1000,
                    max_attempts: 5,
                },
                requests,
                faults,
                schedules: 1,
                seed: 1,
                choices: None,
                invariants: Invariant::ALL.to_vec(),
                expect: Vec::new(),
            };
            (scenario, choices)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn generated_scenarios_are_valid_format_1_files() {
        let mut runner = TestRunner::deterministic();
        for _ in 0..200 {
            let (mut s, choices) = scenario_and_choices().new_tree(&mut runner).unwrap().current();
            s.choices = Some(choices);
            s.expect = vec![(otpsim_core::Variant::Naive, crate::scenario::Expectation::Pass)];
            let text = s.to_toml();
            let back = Scenario::parse(&s.path, &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(back, s);
        }
    }
}
