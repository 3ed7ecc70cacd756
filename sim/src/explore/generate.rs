//! proptest strategies for whole scenarios and their schedules.
//!
//! Every choice is drawn so that proptest's shrinking moves towards the
//! simplest case: the first option of each list is the plainest (time 0,
//! browser ana, a signup for ana, no delay, no fault), and the schedule's
//! choices shrink towards 0, "no preemption".

use std::path::PathBuf;

use otpsim_core::{DbMode, Email, Kind};
use proptest::prelude::*;

use crate::invariant::Invariant;
use crate::scenario::{
    BrowserSpec, DbFault, Deployment, FaultKind, FaultSpec, OtpChoice, RequestSpec, Scenario, SessionMode,
    StatementChoice, Via,
};

/// The people in a generated scenario: ana with a laptop and a phone, bob,
/// and mallory, the stranger, who goes after ana's address. Mallory's
/// browser types any code-like string it received (`sees =
/// "everything"`), his own mailbox's codes among them; his phone signs up
/// for his own address, as anyone may, to get codes. His laptop names only
/// ana's address, so each of its verify forms is for the address its
/// session holds, as a page's form would be. Each has one password; the
/// weight says how often each one acts.
#[derive(Debug)]
pub(super) struct Person {
    pub(super) browser: &'static str,
    pub(super) owns: &'static [&'static str],
    /// Goes after an address it does not own (ana's) and sees everything.
    pub(super) stranger: bool,
    pub(super) password: &'static str,
    pub(super) weight: u32,
}

pub(super) const ANA: &str = "ana@example.com";
const BOB: &str = "bob@example.com";
const MALLORY: &str = "mallory@example.com";
pub(super) const PEOPLE: [Person; 5] = [
    Person {
        browser: "ana",
        owns: &[ANA],
        stranger: false,
        password: "s3cret!",
        weight: 3,
    },
    Person {
        browser: "ana_phone",
        owns: &[ANA],
        stranger: false,
        password: "s3cret!",
        weight: 1,
    },
    Person {
        browser: "bob",
        owns: &[BOB],
        stranger: false,
        password: "bob's own",
        weight: 2,
    },
    Person {
        browser: "mallory",
        owns: &[MALLORY],
        stranger: true,
        password: "mallory's",
        weight: 2,
    },
    Person {
        browser: "mallory_phone",
        owns: &[MALLORY],
        stranger: false,
        password: "mallory's",
        weight: 1,
    },
];
/// Send times: whole seconds, a few 5 ms before a short `otp_ttl` runs
/// out (so that expiry is crossed while a request waits for the lock), and
/// minutes: around the default lifetime and well past it. Drawn three
/// times in four from the seconds ([`SECOND_TIMES`]).
pub(super) const TIMES_MS: [u64; 14] = [
    0, 1000, 3000, 3995, 4000, 5000, 7995, 10_000, 20_000, 60_000, 599_995, 600_000, 665_000, 1_200_000,
];
/// How many of [`TIMES_MS`] are seconds rather than minutes.
pub(super) const SECOND_TIMES: usize = 9;
/// Response and mail delays: none, a few seconds, and longer than the
/// default lifetime (a mail that arrives dead).
pub(super) const DELAYS_MS: [u64; 3] = [0, 5000, 700_000];
/// Lifetimes of a code: the default, and two short enough to cross.
pub(super) const TTLS_MS: [u64; 3] = [600_000, 4000, 8000];
/// How many mail latencies [`mail_latency`] knows.
pub(super) const LATENCIES: usize = 5;

/// Mail latency number `pick`: none, 2 s, or a share of the code's
/// lifetime `ttl_ms` (a half, all of it, twice it): the SMTP send is the
/// server's time, and a slow one must not cost the owner her code.
pub(super) fn mail_latency(pick: usize, ttl_ms: u64) -> u64 {
    match pick {
        0 => 0,
        1 => 2000,
        2 => ttl_ms / 2,
        3 => ttl_ms,
        _ => 2 * ttl_ms,
    }
}

fn time() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0..SECOND_TIMES, 1 => SECOND_TIMES..TIMES_MS.len()]
}

fn person() -> impl Strategy<Value = &'static Person> {
    let weighted: Vec<(u32, Just<&'static Person>)> = PEOPLE.iter().map(|p| (p.weight, Just(p))).collect();
    proptest::strategy::Union::new_weighted(weighted)
}

/// Owners mostly sign up and verify; the stranger signs up and logs in.
fn kind(stranger: bool) -> BoxedStrategy<Kind> {
    if stranger {
        prop_oneof![2 => Just(Kind::Signup), 1 => Just(Kind::Verify), 2 => Just(Kind::Login)].boxed()
    } else {
        prop_oneof![3 => Just(Kind::Signup), 3 => Just(Kind::Verify), 1 => Just(Kind::Login)].boxed()
    }
}

/// Each `prop_flat_map` level's tree holds a forked `TestRunner` and the
/// tree of the level before it: boxed, the next level holds a pointer to
/// it, not a copy of a few KiB at each move (1.7% of an explored
/// schedule's instructions in a `--release` build, BENCHMARKS.md, session
/// 28). Boxing draws nothing, so the same seed draws the same requests.
fn request() -> impl Strategy<Value = RequestSpec> {
    person()
        .prop_flat_map(|p| (Just(p), kind(p.stranger)))
        .boxed()
        .prop_flat_map(|(p, kind)| {
            (
                (Just(p), Just(kind), time()),
                (
                    prop_oneof![
                        2 => Just(OtpChoice::Latest),
                        1 => Just(OtpChoice::First),
                        1 => Just(OtpChoice::Wrong)
                    ],
                    1u32..=copies(p, kind),
                    prop_oneof![3 => Just(0usize), 1 => 1..DELAYS_MS.len()],
                    prop_oneof![3 => Just(0usize), 1 => 1..DELAYS_MS.len()],
                    prop_oneof![3 => Just(Via::Fetch), 1 => Just(Via::Form)],
                ),
            )
        })
        .boxed()
        .prop_map(
            |((p, kind, at), (otp, repeat, response_delay, email_delay, via))| RequestSpec {
                via,
                ..request_of(
                    p,
                    kind,
                    TIMES_MS[at],
                    otp,
                    repeat,
                    DELAYS_MS[response_delay],
                    DELAYS_MS[email_delay],
                )
            },
        )
}

/// The most copies of one request: a stranger's guesses come in bursts
/// large enough to lock a registration, anyone else's are a double-click.
pub(super) fn copies(p: &Person, kind: Kind) -> u32 {
    if p.stranger && kind == Kind::Verify {
        5
    } else {
        2
    }
}

/// A person's request: their browser, their address (a stranger's is
/// ana's), their password; the code choice only on a verify and the mail
/// delay only on a signup.
pub(super) fn request_of(
    p: &Person,
    kind: Kind,
    at_ms: u64,
    otp: OtpChoice,
    repeat: u32,
    response_delay_ms: u64,
    email_delay_ms: u64,
) -> RequestSpec {
    RequestSpec {
        at_ms,
        browser: p.browser.to_string(),
        kind,
        email: Email::parse(if p.stranger { ANA } else { p.owns[0] }).expect("a valid constant"),
        password: p.password.to_string(),
        otp: if kind == Kind::Verify { otp } else { OtpChoice::Latest },
        repeat,
        worker: None,
        response_delay_ms,
        email_delay_ms: if kind.mails() { email_delay_ms } else { 0 },
        // Every response taken, as a script's fetch() takes them; the
        // generator makes one request in four a plain form's.
        via: Via::Fetch,
    }
}

/// The `[[browser]]` list for `requests`: the people who act, in
/// [`PEOPLE`]'s order.
pub fn browsers(requests: &[RequestSpec]) -> Vec<BrowserSpec> {
    PEOPLE
        .iter()
        .filter(|p| requests.iter().any(|r| r.browser == p.browser))
        .map(|p| BrowserSpec {
            sees_everything: p.stranger,
            name: p.browser.to_string(),
            owns: p
                .owns
                .iter()
                .map(|e| Email::parse(e).expect("a valid constant"))
                .collect(),
            password: Some(p.password.to_string()),
        })
        .collect()
}

fn fault_kind() -> impl Strategy<Value = FaultKind> {
    prop_oneof![
        Just(FAULT_KINDS[0]),
        Just(FAULT_KINDS[1]),
        Just(FAULT_KINDS[2]),
        Just(FAULT_KINDS[3]),
        Just(FAULT_KINDS[4]),
    ]
}

/// A fault of `kind` at a request's `statement`; a mail fault needs a
/// signup to lose the email of, so on another kind it becomes a crash.
pub(super) fn fault_of(kind: FaultKind, request: usize, statement: u32, requests: &[RequestSpec]) -> FaultSpec {
    let kind = if kind == FaultKind::Mail && !requests[request].kind.mails() {
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
}

/// The kinds of fault, in the order drawn.
pub(super) const FAULT_KINDS: [FaultKind; 5] = [
    FaultKind::Db(DbFault::Io),
    FaultKind::Db(DbFault::Busy),
    FaultKind::Db(DbFault::Full),
    FaultKind::Crash,
    FaultKind::Mail,
];

/// A format-2 scenario (1 to 8 requests from owners and a stranger,
/// signups, verifies and logins over three addresses (see [`PEOPLE`]), 1 to
/// 4 workers, cookie or server sessions, delays up to minutes, a short or
/// long `otp_ttl`, a mail latency up to twice it, `max_attempts` from 1 to
/// 5, up to two faults at any statement plus a crash) and the choices of
/// its schedule.
pub fn scenario_and_choices() -> impl Strategy<Value = (Scenario, Vec<u8>)> {
    (
        (
            1usize..=4,
            prop_oneof![Just(SessionMode::Cookie), Just(SessionMode::Server)],
            prop_oneof![4 => Just(0usize), 2 => Just(1), 1 => 2..LATENCIES],
            0..TTLS_MS.len(),
            1u32..=5,
            prop_oneof![3 => Just(DbMode::Autocommit), 1 => Just(DbMode::Python)],
        ),
        proptest::collection::vec(request(), 1..=8),
        proptest::option::weighted(
            0.3,
            proptest::collection::vec((fault_kind(), any::<prop::sample::Index>(), 1u32..=12), 1..=2),
        ),
        proptest::option::weighted(0.1, (any::<prop::sample::Index>(), 1u32..=12)),
        proptest::collection::vec(0u8..4, 0..64),
    )
        .prop_map(
            |((workers, session, latency, ttl, max_attempts, db_mode), requests, faults, crash, choices)| {
                let crash = crash.map(|at| (FaultKind::Crash, at.0, at.1));
                let faults = faults
                    .unwrap_or_default()
                    .into_iter()
                    .chain(crash)
                    .map(|(kind, at, statement)| fault_of(kind, at.index(requests.len()), statement, &requests))
                    .collect();
                let mail_latency_ms = mail_latency(latency, TTLS_MS[ttl]);
                let browsers = browsers(&requests);
                let scenario = Scenario {
                    path: PathBuf::from("generated.toml"),
                    format: 2,
                    name: "generated".to_string(),
                    description: String::new(),
                    browsers,
                    deployment: Deployment {
                        workers,
                        session,
                        mail_latency_ms,
                        otp_ttl_ms: TTLS_MS[ttl],
                        max_attempts,
                        // One deployment in four has Python's sqlite3
                        // driver grouping a handler's writes.
                        db_mode,
                    },
                    requests,
                    faults,
                    schedules: 1,
                    seed: 1,
                    choices: None,
                    invariants: Invariant::ALL.to_vec(),
                    expect: Vec::new(),
                    probe: true,
                };
                (scenario, choices)
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn generated_scenarios_are_valid_format_2_files() {
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
