//! Small changes to a kept case, as a coverage-guided fuzzer makes them:
//! to its schedule (one choice, a run of choices), to one request (when,
//! who, what, which code, a copy, a delay), to the deployment, to its
//! fault, or a request spliced in from another kept case; and changes
//! aimed where the case's own run shows they matter (a fault at a write it
//! made, more of the guesses it refused, a stranger's signup after an
//! owner's it accepted, [`Aim`]). Every change
//! stays inside the space the blind generator draws from, so a mutated
//! case is one the generator could have drawn too.

use otpsim_core::ports::SplitMix64;
use otpsim_core::{DbMode, Kind};

use super::generate::{
    browsers, copies, fault_of, mail_latency, request_of, Person, ANA, DELAYS_MS, FAULT_KINDS, LATENCIES, PEOPLE,
    SECOND_TIMES, TIMES_MS, TTLS_MS,
};
use crate::scenario::{FaultKind, FaultSpec, OtpChoice, RequestSpec, Scenario, SessionMode, Via};

/// The most requests and choices a generated case has.
const MAX_REQUESTS: usize = 8;
pub(super) const MAX_CHOICES: usize = 64;

/// A seeded source of small numbers.
pub(super) struct Rng(SplitMix64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed))
    }
    /// A number in `0..n` (`n` > 0).
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }
    /// True one time in `n`.
    pub(super) fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

fn person_of(request: &RequestSpec) -> &'static Person {
    PEOPLE
        .iter()
        .find(|p| p.browser == request.browser)
        .unwrap_or(&PEOPLE[0])
}

fn random_kind(rng: &mut Rng) -> Kind {
    [Kind::Signup, Kind::Signup, Kind::Verify, Kind::Verify, Kind::Login][rng.below(5)]
}

fn random_otp(rng: &mut Rng) -> OtpChoice {
    [OtpChoice::Latest, OtpChoice::Latest, OtpChoice::First, OtpChoice::Wrong][rng.below(4)].clone()
}

fn random_request(rng: &mut Rng) -> RequestSpec {
    let p = &PEOPLE[rng.below(PEOPLE.len())];
    let kind = random_kind(rng);
    request_of(
        p,
        kind,
        rng.pick(&TIMES_MS),
        random_otp(rng),
        1 + rng.below(copies(p, kind) as usize) as u32,
        rng.pick(&DELAYS_MS),
        rng.pick(&DELAYS_MS),
    )
}

/// One request rebuilt with one field drawn afresh.
fn mutate_request(rng: &mut Rng, r: &RequestSpec) -> RequestSpec {
    let (mut p, mut kind, mut at, mut otp, mut repeat) = (person_of(r), r.kind, r.at_ms, r.otp.clone(), r.repeat);
    let (mut response_delay, mut email_delay, mut via) = (r.response_delay_ms, r.email_delay_ms, r.via);
    match rng.below(8) {
        0 => p = &PEOPLE[rng.below(PEOPLE.len())],
        1 => kind = random_kind(rng),
        2 => at = rng.pick(&TIMES_MS),
        3 => otp = random_otp(rng),
        4 => repeat = 1 + rng.below(copies(p, kind) as usize) as u32,
        5 => response_delay = rng.pick(&DELAYS_MS),
        6 => email_delay = rng.pick(&DELAYS_MS),
        _ => {
            via = match via {
                Via::Fetch => Via::Form,
                Via::Form => Via::Fetch,
            }
        }
    }
    let repeat = repeat.min(copies(p, kind));
    RequestSpec {
        via,
        ..request_of(p, kind, at, otp, repeat, response_delay, email_delay)
    }
}

/// The change `aim` invites.
fn aimed(rng: &mut Rng, scenario: &mut Scenario, choices: &mut Vec<u8>, aim: Aim) {
    match aim {
        Aim::Pending { request } => {
            // The stranger signs up for the owner's address while her code
            // lives, and she then types the newest code her mailbox holds,
            // which may be the one his signup mailed her while it lives.
            // Only seconds: minutes later her code is long typed or dead.
            // Aimed at what an earlier change of this child left an
            // owner's signup of the address he goes after, else nothing.
            let signup = &scenario.requests[request];
            let owner = person_of(signup);
            let Some(stranger) = PEOPLE.iter().find(|p| p.stranger) else {
                return;
            };
            if signup.kind != Kind::Signup || owner.stranger || signup.email.as_str() != ANA {
                return;
            }
            let ttl = scenario.deployment.otp_ttl_ms;
            let alive = |from: u64| -> Vec<u64> {
                TIMES_MS[..SECOND_TIMES]
                    .iter()
                    .copied()
                    .filter(|t| *t > from && *t < from + ttl)
                    .collect()
            };
            // Before she has typed a code: after, the account is hers.
            let hers = |r: &RequestSpec| r.kind == Kind::Verify && r.email.as_str() == ANA && !person_of(r).stranger;
            let verified = scenario
                .requests
                .iter()
                .filter(|r| hers(r) && r.at_ms > signup.at_ms)
                .map(|r| r.at_ms)
                .min()
                .unwrap_or(u64::MAX);
            let squats: Vec<u64> = alive(signup.at_ms)
                .into_iter()
                .filter(|t| *t < verified && !alive(*t).is_empty())
                .collect();
            if squats.is_empty() {
                return;
            }
            let at = squats[rng.below(squats.len())];
            // Her first verify after his signup, if it comes while his
            // code lives; else one more, and room for both.
            let typed = (0..scenario.requests.len())
                .filter(|&i| hers(&scenario.requests[i]) && scenario.requests[i].at_ms > at)
                .min_by_key(|&i| scenario.requests[i].at_ms)
                .filter(|&i| scenario.requests[i].at_ms < at + ttl);
            if scenario.requests.len() + 1 + usize::from(typed.is_none()) > MAX_REQUESTS {
                return;
            }
            let squat = request_of(stranger, Kind::Signup, at, OtpChoice::Latest, 1, 0, 0);
            insert_request(scenario, request + 1, squat);
            match typed {
                Some(i) => scenario.requests[if i > request { i + 1 } else { i }].otp = OtpChoice::Latest,
                None => {
                    let after = alive(at);
                    let when = after[rng.below(after.len())];
                    scenario
                        .requests
                        .push(request_of(owner, Kind::Verify, when, OtpChoice::Latest, 1, 0, 0));
                }
            }
        }
        Aim::Refused { request } => {
            // More of the guesses the parent's run refused: the verify's
            // copies raised to as many as its person sends, and one time
            // in two a second burst at the same instant, so that together
            // they may pass a limit. Sent by a script (fetch), as a burst
            // is: a form's next submission abandons the one before, whose
            // answer then counts for nothing.
            let r = &mut scenario.requests[request];
            if r.kind != Kind::Verify {
                return;
            }
            r.repeat = copies(person_of(r), r.kind);
            r.via = Via::Fetch;
            if scenario.requests.len() < MAX_REQUESTS && rng.one_in(2) {
                let again = scenario.requests[request].clone();
                insert_request(scenario, request + 1, again);
            }
        }
        Aim::Write {
            request,
            statement,
            choice,
        } => {
            // A fault where the parent's run wrote, not at a statement
            // number drawn blind: the COMMIT of a verify, the DELETE of an
            // outbox. A disk error or a full disk, where the write fails
            // for good; a busy one is retried, and a crash is drawn
            // elsewhere.
            let kind = [FAULT_KINDS[0], FAULT_KINDS[2]][rng.below(2)];
            set_fault(scenario, fault_of(kind, request, statement, &scenario.requests));
            // One time in two with what makes a fault there matter, drawn
            // together: the request double-clicked, and Python's driver
            // grouping the handler's writes.
            if rng.one_in(2) {
                scenario.requests[request].repeat = 2.max(scenario.requests[request].repeat);
                scenario.deployment.db_mode = DbMode::Python;
            }
            // And one time in two a burst of switches: the other copy run
            // between the fault and what its request does next. Where the
            // parent's run shows the statement started (the fault's
            // place), from there: its handler's next statements come
            // first, so a single switch there would land too early.
            // Else anywhere.
            if rng.one_in(2) {
                let at = match choice {
                    Some(c) if c + 8 <= MAX_CHOICES => c,
                    _ => rng.below(choices.len().min(MAX_CHOICES - 8) + 1),
                };
                let len = 1 + rng.below(8);
                if choices.len() < at + len {
                    choices.resize(at + len, 0);
                }
                for slot in &mut choices[at..at + len] {
                    *slot = 1 + rng.below(2) as u8;
                }
            }
        }
    }
}

/// Inserts `request` at index `at`; later faults move up with their
/// requests.
fn insert_request(scenario: &mut Scenario, at: usize, request: RequestSpec) {
    scenario.requests.insert(at, request);
    scenario
        .faults
        .iter_mut()
        .filter(|f| f.request >= at)
        .for_each(|f| f.request += 1);
}

/// Removes request `i` and the faults that strike it; later faults move
/// down with their requests.
pub fn remove_request(scenario: &mut Scenario, i: usize) {
    scenario.requests.remove(i);
    scenario.faults.retain(|f| f.request != i);
    scenario
        .faults
        .iter_mut()
        .filter(|f| f.request > i)
        .for_each(|f| f.request -= 1);
}

/// Where a kept case's run invites a change aimed at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aim {
    /// A write or COMMIT its run made, where a fault can strike, or a
    /// statement a fault struck (the trace holds the fault in its place,
    /// not its SQL; most were aimed at writes): the request's index in the
    /// file and the statement's 1-based position among its first copy's
    /// (as `[[fault]] statement` counts). Not the reads it ran: a fault at
    /// a read rarely does more than a refusal.
    Write {
        /// The request, by its index in the file.
        request: usize,
        /// The statement, 1-based among its first copy's.
        statement: u32,
        /// Where in the parent's choices the statement started, if known
        /// (a simulated run's [`crate::world::StatementAt`]).
        choice: Option<usize>,
    },
    /// A verify whose code its run refused as wrong: more of the same
    /// guesses may pass an attempt limit. A live run shows these too.
    Refused {
        /// The verify, by its index in the file.
        request: usize,
    },
    /// An owner's signup its run accepted, which left her registration
    /// pending until she types her code: a stranger's signup for her
    /// address in between may take it over (pre-account hijacking). A live
    /// run shows these too.
    Pending {
        /// The signup, by its index in the file.
        request: usize,
    },
}

impl Aim {
    fn request(self) -> usize {
        match self {
            Aim::Write { request, .. } | Aim::Refused { request } | Aim::Pending { request } => request,
        }
    }
}

/// Where changes can be aimed in `scenario`, from its run's `trace`.
pub fn aims(scenario: &Scenario, trace: &crate::trace::Trace) -> Vec<Aim> {
    use crate::trace::What;
    let planned = otpsim_model::plan::plan_requests(scenario);
    let mut counts: std::collections::BTreeMap<usize, u32> = std::collections::BTreeMap::new();
    let mut aims = Vec::new();
    for e in &trace.events {
        let Some(p) = e.request.and_then(|id| planned.iter().find(|p| p.id == id)) else {
            continue;
        };
        let sql = match &e.what {
            What::Answered {
                code: otpsim_core::Code::InvalidOtp,
                ..
            } => {
                let refused = Aim::Refused { request: p.spec };
                if !aims.contains(&refused) {
                    aims.push(refused);
                }
                continue;
            }
            What::Answered {
                code: otpsim_core::Code::Ok,
                ..
            } => {
                // The stranger goes after ana's address only.
                let r = &scenario.requests[p.spec];
                let owner = !person_of(r).stranger && r.email.as_str() == ANA;
                let pending = Aim::Pending { request: p.spec };
                if r.kind == Kind::Signup && owner && !aims.contains(&pending) {
                    aims.push(pending);
                }
                continue;
            }
            _ if !p.first_copy => continue,
            What::Sql { sql, .. } => sql,
            // A fault takes the statement's place: it counts as one, and
            // is aimed at again, so that a child can strike it with a
            // burst of switches placed right after it.
            What::Fault { .. } => "fault",
            _ => continue,
        };
        let n = counts.entry(p.id).or_insert(0);
        *n += 1;
        let writes = ["INSERT", "UPDATE", "DELETE", "REPLACE", "COMMIT", "fault"]
            .iter()
            .any(|w| sql.starts_with(w));
        if writes {
            aims.push(Aim::Write {
                request: p.spec,
                statement: *n,
                choice: None,
            });
        }
    }
    aims
}

/// `scenario` and `choices` changed by one to three small mutations;
/// `donor` is another kept case to splice a request from; `aims`, where
/// the case's own run invites an aimed change (a write to strike, a
/// refused guess to repeat, a pending signup to squat on). An earlier
/// change of the same child may have moved the request an aim names: a
/// change aimed at what is no longer there does nothing.
pub(super) fn mutate(rng: &mut Rng, scenario: &mut Scenario, choices: &mut Vec<u8>, donor: &Scenario, aims: &[Aim]) {
    for _ in 0..1 + rng.below(3) {
        mutate_once(rng, scenario, choices, donor, aims);
    }
    // A request that stopped mailing has no email to lose.
    let requests = &scenario.requests;
    scenario
        .faults
        .retain(|f| f.kind != FaultKind::Mail || requests[f.request].kind.mails());
    scenario.browsers = browsers(&scenario.requests);
}

fn mutate_once(rng: &mut Rng, scenario: &mut Scenario, choices: &mut Vec<u8>, donor: &Scenario, aims: &[Aim]) {
    let n = scenario.requests.len();
    // Schedules are where most races hide: a quarter of the changes go
    // there, and as many to the flow a person walks through.
    match rng.below(20) {
        // A stranger's signup after a pending one has its own turn, so
        // that it takes none from the faults and guesses aimed at.
        slot @ (15 | 18 | 19)
            if aims
                .iter()
                .any(|a| a.request() < n && matches!(a, Aim::Pending { .. }) == (slot == 15)) =>
        {
            let inside: Vec<Aim> = aims
                .iter()
                .copied()
                .filter(|a| a.request() < n && matches!(a, Aim::Pending { .. }) == (slot == 15))
                .collect();
            let aim = inside[rng.below(inside.len())];
            aimed(rng, scenario, choices, aim);
        }
        0..=3 => {
            let value = rng.below(4) as u8;
            if choices.is_empty() {
                choices.push(value);
            } else {
                let at = rng.below(choices.len());
                choices[at] = value;
            }
        }
        4 if choices.len() < MAX_CHOICES => {
            let at = rng.below(choices.len() + 1);
            choices.insert(at, rng.below(4) as u8);
        }
        5 if !choices.is_empty() => {
            let at = rng.below(choices.len());
            choices.remove(at);
        }
        6 => {
            // A fresh tail: the same start, then somewhere new.
            let keep = rng.below(choices.len() + 1);
            choices.truncate(keep);
            let more = rng.below(MAX_CHOICES.saturating_sub(keep) + 1);
            choices.extend((0..more).map(|_| rng.below(4) as u8));
        }
        7 => {
            let at = rng.below(choices.len() + 1);
            choices.truncate(at);
        }
        8..=10 => {
            let i = rng.below(n);
            scenario.requests[i] = mutate_request(rng, &scenario.requests[i]);
        }
        11 if n < MAX_REQUESTS => {
            // Another request: a copy of one already there sent at another
            // time, a fresh one, or one from the donor.
            let request = match rng.below(3) {
                0 => {
                    let mut r = scenario.requests[rng.below(n)].clone();
                    r.at_ms = rng.pick(&TIMES_MS);
                    r
                }
                1 => random_request(rng),
                _ => donor.requests[rng.below(donor.requests.len())].clone(),
            };
            insert_request(scenario, rng.below(n + 1), request);
        }
        12 if n > 1 => remove_request(scenario, rng.below(n)),
        16 | 17 if n < MAX_REQUESTS => {
            // The next step of someone's flow, later: after a signup a
            // verify (or, one time in four, the "resend the code" link of
            // someone still waiting for the mail), after a verify a login,
            // mostly by someone already in the scenario.
            let i = rng.below(n);
            let previous = &scenario.requests[i];
            let kind = match previous.kind {
                Kind::Signup if rng.one_in(4) => Kind::Resend,
                Kind::Signup | Kind::Resend => Kind::Verify,
                Kind::Verify => Kind::Login,
                Kind::Login => Kind::Signup,
            };
            let p = if rng.one_in(4) {
                &PEOPLE[rng.below(PEOPLE.len())]
            } else {
                person_of(&scenario.requests[rng.below(n)])
            };
            let later: Vec<u64> = TIMES_MS.iter().copied().filter(|t| *t > previous.at_ms).collect();
            let at = if later.is_empty() {
                previous.at_ms
            } else {
                later[rng.below(later.len())]
            };
            // Each person's own address; a stranger's is ana's.
            let signed_up_at = previous.at_ms;
            scenario
                .requests
                .push(request_of(p, kind, at, random_otp(rng), 1, 0, 0));
            // One time in two the stranger gets a code of his own first,
            // on his own address from his other browser, to type in the
            // verify for hers: the move that finds one secret shared by
            // every code (the shape needs three requests at once).
            let own = PEOPLE.iter().find(|q| !q.stranger && q.owns == p.owns);
            if let (true, Some(own)) = (p.stranger && kind == Kind::Verify && n + 1 < MAX_REQUESTS, own) {
                if rng.one_in(2) {
                    let signup = request_of(own, Kind::Signup, signed_up_at, OtpChoice::Latest, 1, 0, 0);
                    scenario.requests.push(signup);
                }
            }
        }
        13 => {
            let d = &mut scenario.deployment;
            match rng.below(6) {
                0 => d.workers = 1 + rng.below(4),
                5 => {
                    d.db_mode = match d.db_mode {
                        DbMode::Autocommit => DbMode::Python,
                        DbMode::Python => DbMode::Autocommit,
                    }
                }
                1 => {
                    d.session = match d.session {
                        SessionMode::Cookie => SessionMode::Server,
                        SessionMode::Server => SessionMode::Cookie,
                    }
                }
                2 => d.mail_latency_ms = mail_latency(rng.below(LATENCIES), d.otp_ttl_ms),
                3 => {
                    // The latency keeps its share of the lifetime.
                    let share = (0..LATENCIES)
                        .find(|&i| mail_latency(i, d.otp_ttl_ms) == d.mail_latency_ms)
                        .unwrap_or(0);
                    d.otp_ttl_ms = rng.pick(&TTLS_MS);
                    d.mail_latency_ms = mail_latency(share, d.otp_ttl_ms);
                }
                _ => d.max_attempts = 1 + rng.below(5) as u32,
            }
        }
        14 => {
            if !scenario.faults.is_empty() && rng.one_in(3) {
                scenario.faults.clear();
            } else {
                // Up to two faults plus a crash: a new one is added while
                // there is room for its sort, else it replaces one.
                let kind = rng.pick(&FAULT_KINDS);
                let fault = fault_of(kind, rng.below(n), 1 + rng.below(12) as u32, &scenario.requests);
                let slot = rng.below(2);
                set_fault_in(scenario, fault, slot);
            }
        }
        _ => {
            // Shift every send time by one step: a race moved as a whole
            // across an expiry.
            let i = rng.below(n);
            let step = TIMES_MS
                .iter()
                .position(|t| *t == scenario.requests[i].at_ms)
                .unwrap_or(0);
            let to = if rng.one_in(2) {
                step.saturating_sub(1)
            } else {
                (step + 1).min(TIMES_MS.len() - 1)
            };
            scenario.requests[i].at_ms = TIMES_MS[to];
        }
    }
}

/// Adds `fault` while there is room for its sort (two faults and a
/// crash), else it replaces one of its sort.
fn set_fault(scenario: &mut Scenario, fault: FaultSpec) {
    set_fault_in(scenario, fault, 0);
}

/// [`set_fault`], replacing the `pick`-th (modulo) of its sort when full.
/// A fault of its sort already at the same statement is replaced: two
/// there would leave the second one never firing (the first match
/// strikes).
fn set_fault_in(scenario: &mut Scenario, fault: FaultSpec, pick: usize) {
    let crash = fault.kind == FaultKind::Crash;
    let mail = |k: FaultKind| k == FaultKind::Mail;
    if let Some(there) = scenario.faults.iter_mut().find(|f| {
        (f.kind == FaultKind::Crash) == crash
            && !mail(f.kind)
            && !mail(fault.kind)
            && (f.request, f.statement) == (fault.request, fault.statement)
    }) {
        *there = fault;
        return;
    }
    let same: Vec<usize> = (0..scenario.faults.len())
        .filter(|&i| (scenario.faults[i].kind == FaultKind::Crash) == crash)
        .collect();
    if same.len() < if crash { 1 } else { 2 } {
        scenario.faults.push(fault);
    } else {
        scenario.faults[same[pick % same.len()]] = fault;
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::explore::generate::scenario_and_choices;
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;

    #[test]
    fn mutated_cases_stay_valid_format_2_files() {
        let mut runner = TestRunner::deterministic();
        let mut rng = Rng::new(7);
        let (donor, _) = scenario_and_choices().new_tree(&mut runner).unwrap().current();
        let (mut s, mut choices) = scenario_and_choices().new_tree(&mut runner).unwrap().current();
        for _ in 0..2000 {
            mutate(
                &mut rng,
                &mut s,
                &mut choices,
                &donor,
                &[
                    Aim::Write {
                        request: 0,
                        statement: 1,
                        choice: Some(3),
                    },
                    Aim::Write {
                        request: 0,
                        statement: 2,
                        choice: Some(60),
                    },
                    Aim::Refused { request: 0 },
                    Aim::Pending { request: 1 },
                ],
            );
            assert!((1..=MAX_REQUESTS).contains(&s.requests.len()));
            assert!(choices.len() <= MAX_CHOICES);
            assert!(s.faults.iter().all(|f| f.request < s.requests.len()));
            let mut file = s.clone();
            file.choices = Some(choices.clone());
            file.expect = vec![(otpsim_core::Variant::Naive, crate::scenario::Expectation::Pass)];
            let text = file.to_toml();
            let back = Scenario::parse(&file.path, &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(back, file);
        }
    }

    /// A double-clicked verify under Python's driver with the disk full at
    /// its COMMIT (statement 6): seed_fix breaks `one_account` when the
    /// second copy runs right after the failure.
    pub(in crate::explore) fn hard_pair() -> std::sync::Arc<Scenario> {
        let text = r#"
format = 2
name = "double-clicked verify, the disk full at its COMMIT"
[[browser]]
name = "ana"
owns = ["ana@example.com"]
[deployment]
workers = 1
mail_latency = "0s"
db_mode = "python"
[[request]]
at = "4s"
browser = "ana"
kind = "signup"
email = "ana@example.com"
[[request]]
at = "10s"
browser = "ana"
kind = "verify"
email = "ana@example.com"
repeat = 2
[[fault]]
kind = "db"
request = 2
statement = 6
error = "full"
[expect]
seed_fix = "fail:one_account"
"#;
        std::sync::Arc::new(Scenario::parse(std::path::Path::new("t.toml"), text).unwrap())
    }

    /// seed_fix's hard pair: under Python's driver, a double-clicked
    /// verify whose COMMIT fails, with the other copy run right after the
    /// failure. The run notes where the faulted statement started; one
    /// switch shortly after breaks `one_account`, and the fault is aimed
    /// at again with that place, so that a child's burst goes there.
    #[test]
    fn a_switch_where_a_faulted_statement_started_breaks_the_hard_pair() {
        let s = hard_pair();
        let seed_fix = otpsim_core::Variant::SeedFix(otpsim_core::SeedFixSwitches::ALL_ON);
        let one_account = |choices: &[u8]| {
            let (outcome, violations, _) = crate::sweep::replay(&s, &seed_fix, 1, choices, 1);
            let broken = violations
                .iter()
                .any(|v| v.invariant == crate::invariant::Invariant::OneAccount);
            (outcome, broken)
        };
        let (outcome, broken) = one_account(&[]);
        assert!(!broken, "no switch, no break");
        assert!(
            aims(&s, &outcome.trace).contains(&Aim::Write {
                request: 1,
                statement: 6,
                choice: None
            }),
            "the fault is aimed at again"
        );
        let at = outcome
            .statements
            .iter()
            .find(|a| a.request == 1 && a.statement == 6)
            .expect("the faulted statement's place")
            .choice;
        // Its handler's ROLLBACK first: the switch two points later.
        let switched = |d: usize| {
            let mut choices = vec![0; at + d];
            choices.push(1);
            one_account(&choices).1
        };
        assert_eq!((0..4).map(switched).collect::<Vec<_>>(), [false, false, true, false]);
        // And a burst aimed there starts there.
        let aim = Aim::Write {
            request: 1,
            statement: 6,
            choice: Some(at),
        };
        let mut bursts = 0;
        for seed in 0..32 {
            let (mut child, mut choices) = ((*s).clone(), vec![0; 2 * at]);
            aimed(&mut Rng::new(seed), &mut child, &mut choices, aim);
            if let Some(first) = choices.iter().position(|c| *c != 0) {
                assert_eq!(first, at, "seed {seed}");
                bursts += 1;
            }
        }
        assert!(bursts > 0);
    }

    /// ana signs up and later types her code; seed_fix lets a stranger's
    /// signup in between take her registration over (its fallback finds
    /// his by her address), idempotent does not (verify takes the
    /// password from her form). The run names her signup, and the change
    /// aimed at it puts his signup after hers and her newest code after
    /// his.
    #[test]
    fn a_pending_signup_is_aimed_at_and_the_aimed_change_is_a_hijack() {
        let text = r#"
format = 2
name = "ana signs up and verifies"
[[browser]]
name = "ana"
owns = ["ana@example.com"]
[deployment]
mail_latency = "0s"
[[request]]
at = "1s"
browser = "ana"
kind = "signup"
email = "ana@example.com"
[[request]]
at = "20s"
browser = "ana"
kind = "verify"
email = "ana@example.com"
otp = "first"
[expect]
seed_fix = "pass"
"#;
        let s = std::sync::Arc::new(Scenario::parse(std::path::Path::new("t.toml"), text).unwrap());
        let seed_fix = otpsim_core::Variant::SeedFix(otpsim_core::SeedFixSwitches::ALL_ON);
        let hijacked = |s: &Scenario, variant: &otpsim_core::Variant| {
            let (_, violations, _) = crate::sweep::replay(&std::sync::Arc::new(s.clone()), variant, 1, &[], 1);
            violations
                .iter()
                .any(|v| v.invariant == crate::invariant::Invariant::NoHijack)
        };
        let (outcome, violations, _) = crate::sweep::replay(&s, &seed_fix, 1, &[], 1);
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(
            aims(&s, &outcome.trace)
                .into_iter()
                .filter(|a| matches!(a, Aim::Pending { .. }))
                .collect::<Vec<_>>(),
            [Aim::Pending { request: 0 }],
            "her signup, not her verify"
        );
        let mut broken = 0;
        for seed in 0..16 {
            let mut child = (*s).clone();
            aimed(
                &mut Rng::new(seed),
                &mut child,
                &mut Vec::new(),
                Aim::Pending { request: 0 },
            );
            let squat = &child.requests[1];
            assert_eq!(
                (squat.browser.as_str(), squat.kind),
                ("mallory", Kind::Signup),
                "seed {seed}"
            );
            assert!(squat.at_ms > 1000, "seed {seed}");
            let typed = child
                .requests
                .iter()
                .find(|r| r.kind == Kind::Verify && r.at_ms > squat.at_ms)
                .expect("her code typed after his signup");
            assert_eq!(typed.otp, OtpChoice::Latest, "seed {seed}");
            child.browsers = browsers(&child.requests);
            broken += usize::from(hijacked(&child, &seed_fix));
            assert!(!hijacked(&child, &otpsim_core::Variant::Idempotent), "seed {seed}");
        }
        assert!(broken > 0, "no aimed change broke no_hijack");
        // With no verify of hers after his signup, she sends one while his
        // code lives.
        let mut alone = (*s).clone();
        alone.requests.truncate(1);
        for seed in 0..16 {
            let mut child = alone.clone();
            aimed(
                &mut Rng::new(seed),
                &mut child,
                &mut Vec::new(),
                Aim::Pending { request: 0 },
            );
            let [_, squat, typed] = &child.requests[..] else {
                panic!("seed {seed}: {:?}", child.requests);
            };
            assert_eq!((squat.browser.as_str(), typed.browser.as_str()), ("mallory", "ana"));
            assert_eq!((typed.kind, &typed.otp), (Kind::Verify, &OtpChoice::Latest));
            assert!(squat.at_ms < typed.at_ms && typed.at_ms < squat.at_ms + child.deployment.otp_ttl_ms);
        }
        // Aimed at what is no longer an owner's signup of ana's address
        // (her verify, bob's signup, the stranger's), it changes nothing;
        // nor where there is no room for his signup and her verify.
        let unchanged = |s: &Scenario, request: usize| {
            let mut child = s.clone();
            aimed(&mut Rng::new(0), &mut child, &mut Vec::new(), Aim::Pending { request });
            child == *s
        };
        assert!(unchanged(&s, 1));
        // Nor after she typed her code (her verify at 3 s, the next time
        // after her signup at 1 s): the account is hers by then.
        let mut typed_early = (*s).clone();
        typed_early.requests[1].at_ms = 3000;
        assert!(unchanged(&typed_early, 0));
        for browser in ["bob", "mallory"] {
            let mut other = alone.clone();
            let p = PEOPLE.iter().find(|p| p.browser == browser).unwrap();
            other.requests[0] = request_of(p, Kind::Signup, 1000, OtpChoice::Latest, 1, 0, 0);
            assert!(unchanged(&other, 0), "{browser}");
        }
        let mut full = alone.clone();
        let bob = PEOPLE.iter().find(|p| p.browser == "bob").unwrap();
        full.requests
            .extend((0..MAX_REQUESTS - 2).map(|_| request_of(bob, Kind::Signup, 0, OtpChoice::Latest, 1, 0, 0)));
        assert!(unchanged(&full, 0), "no room for two");
        full.requests.pop();
        assert!(!unchanged(&full, 0), "room for two");
    }

    /// Wrong codes refused under a limit of three: the run names the
    /// verify, and the change aimed at it passes the limit exactly when
    /// it adds the second burst (an owner's double-click is two guesses,
    /// two of them four); a stranger's burst passes a lower one alone.
    #[test]
    fn a_refused_guess_is_aimed_at_and_the_aimed_change_passes_the_limit() {
        let file = |browser: &str, owns: &str, sees: &str, max: u32| {
            let text = format!(
                r#"
format = 2
name = "wrong codes"
[[browser]]
name = "{browser}"
owns = ["{owns}"]
sees = "{sees}"
[deployment]
max_attempts = {max}
[[request]]
at = "0s"
browser = "{browser}"
kind = "signup"
email = "ana@example.com"
[[request]]
at = "1s"
browser = "{browser}"
kind = "verify"
email = "ana@example.com"
otp = "wrong"
via = "form"
[expect]
naive = "pass"
"#
            );
            std::sync::Arc::new(Scenario::parse(std::path::Path::new("t.toml"), &text).unwrap())
        };
        let naive = otpsim_core::Variant::Naive;
        let broken = |s: &Scenario| {
            let (_, violations, _) = crate::sweep::replay(&std::sync::Arc::new(s.clone()), &naive, 1, &[], 1);
            violations
                .iter()
                .any(|v| v.invariant == crate::invariant::Invariant::AttemptsLimited)
        };
        let owner = file("ana", "ana@example.com", "mail", 3);
        let (outcome, violations, _) = crate::sweep::replay(&owner, &naive, 1, &[], 1);
        assert!(violations.is_empty(), "{violations:?}");
        let found = aims(&owner, &outcome.trace);
        assert_eq!(
            found
                .iter()
                .filter(|a| matches!(a, Aim::Refused { .. }))
                .collect::<Vec<_>>(),
            [&Aim::Refused { request: 1 }]
        );
        let mut bursts = [0, 0];
        for seed in 0..16 {
            let (mut s, mut choices) = ((*owner).clone(), Vec::new());
            aimed(&mut Rng::new(seed), &mut s, &mut choices, Aim::Refused { request: 1 });
            let verifies: Vec<&RequestSpec> = s.requests.iter().filter(|r| r.kind == Kind::Verify).collect();
            assert!(
                verifies.iter().all(|r| r.repeat == 2 && r.via == Via::Fetch),
                "seed {seed}"
            );
            let twice = verifies.len() == 2;
            bursts[usize::from(twice)] += 1;
            assert_eq!(
                broken(&s),
                twice,
                "seed {seed}: {} guesses against 3",
                2 * verifies.len()
            );
        }
        assert!(bursts[0] > 0 && bursts[1] > 0, "{bursts:?}");
        // A stranger's burst of five alone passes a limit of two: three of
        // its wrong codes are well-formed guesses, two malformed.
        let stranger = file("mallory", "mallory@example.com", "everything", 2);
        let (mut s, mut choices) = ((*stranger).clone(), Vec::new());
        aimed(&mut Rng::new(0), &mut s, &mut choices, Aim::Refused { request: 1 });
        assert_eq!(s.requests[1].repeat, 5);
        assert!(broken(&s));
        // Aimed at what is no longer a verify, it changes nothing.
        let before = (*owner).clone();
        let mut s = before.clone();
        aimed(&mut Rng::new(0), &mut s, &mut Vec::new(), Aim::Refused { request: 0 });
        assert_eq!(s, before);
    }
}
