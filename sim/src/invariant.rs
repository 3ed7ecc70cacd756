//! The invariants of `spec/flows.md`, checked on a trace. Each violation is
//! explained in one sentence that names the requests involved.
//!
//! Where the spec leaves room, the checker reads it as follows:
//! - "answered" is the moment the handler answered, not when the browser
//!   got the response;
//! - `single_pending` asks for exactly one pending registration only while
//!   the email has no account (a verify that committed and then crashed
//!   has done its job);
//! - a verify hit by a fault may answer 503 `retry` or succeed anyway;
//! - a code is "mailed" when the server handed it to the mail system, even
//!   if a `mail` fault then lost it;
//! - wrong codes count per (email, code): a new code starts a new count.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use otpsim_core::{Code, Otp};

use crate::scenario::Kind;
use crate::trace::{CodeSource, DbState, Trace, What};

/// An invariant's stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// At most one pending registration per email; exactly one while a
    /// successful signup awaits verification.
    SinglePending,
    /// A code the user really received verifies.
    VerifySucceeds,
    /// One account per email, and every successful verify has its account.
    OneAccount,
    /// No pending registration for an email with an account, nor one
    /// whose code was never mailed.
    NoOrphans,
    /// Responses are from the table, never 500, never a panic or raw SQL.
    ClearErrors,
    /// Only a code mailed to the address verifies it.
    NoFalseAccept,
    /// At most `max_attempts` wrong codes answered per registration.
    AttemptsLimited,
}

impl Invariant {
    /// All of them, in the spec's order.
    pub const ALL: [Invariant; 7] = [
        Invariant::SinglePending,
        Invariant::VerifySucceeds,
        Invariant::OneAccount,
        Invariant::NoOrphans,
        Invariant::ClearErrors,
        Invariant::NoFalseAccept,
        Invariant::AttemptsLimited,
    ];

    /// The stable name.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::SinglePending => "single_pending",
            Invariant::VerifySucceeds => "verify_succeeds",
            Invariant::OneAccount => "one_account",
            Invariant::NoOrphans => "no_orphans",
            Invariant::ClearErrors => "clear_errors",
            Invariant::NoFalseAccept => "no_false_accept",
            Invariant::AttemptsLimited => "attempts_limited",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Invariant {
    type Err = String;
    fn from_str(s: &str) -> Result<Invariant, String> {
        Invariant::ALL.into_iter().find(|i| i.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Invariant::ALL.iter().map(|i| i.name()).collect();
            format!("unknown invariant {s:?}; expected one of {}", names.join(", "))
        })
    }
}

/// A broken invariant and why, in a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which.
    pub invariant: Invariant,
    /// The request it is about, if one is.
    pub request: Option<usize>,
    /// Why, naming the requests.
    pub why: String,
}

/// Settings the checker needs from the scenario.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Lifetime of a code.
    pub otp_ttl_ms: u64,
    /// Wrong codes allowed per registration.
    pub max_attempts: u32,
}

/// What the trace says about one request.
#[derive(Debug, Default)]
struct Req {
    kind: Option<Kind>,
    email: String,
    browser: String,
    sent_at: u64,
    sent_index: usize,
    otp: Option<Otp>,
    source: Option<CodeSource>,
    answer: Option<(usize, Code, String)>,
    faulted: bool,
}

struct MailFact {
    request: usize,
    to: String,
    otp: Otp,
    temp_id: String,
    sent_at: u64,
}

/// Checks `invariants` on `trace`; the first violation of each is kept.
pub fn check(trace: &Trace, limits: Limits, invariants: &[Invariant]) -> Vec<Violation> {
    let mut reqs: BTreeMap<usize, Req> = BTreeMap::new();
    let mut mails: BTreeMap<usize, MailFact> = BTreeMap::new();
    let mut snapshots: Vec<(usize, &DbState)> = Vec::new();
    let mut violations: Vec<Violation> = Vec::new();
    let flag = |violations: &mut Vec<Violation>, invariant: Invariant, request: Option<usize>, why: String| {
        if invariants.contains(&invariant) && !violations.iter().any(|v| v.invariant == invariant) {
            violations.push(Violation {
                invariant,
                request,
                why,
            });
        }
    };
    for (index, event) in trace.events.iter().enumerate() {
        let r = event.request.unwrap_or(0);
        match &event.what {
            What::Sent {
                kind,
                email,
                otp,
                source,
                ..
            } => {
                let req = reqs.entry(r).or_default();
                *req = Req {
                    kind: Some(*kind),
                    email: email.to_string(),
                    browser: event.browser.clone().unwrap_or_default(),
                    sent_at: event.at_ms,
                    sent_index: index,
                    otp: otp.clone(),
                    source: source.clone(),
                    ..Req::default()
                };
            }
            What::Fault { .. } => reqs.entry(r).or_default().faulted = true,
            What::MailSent {
                mail, to, otp, temp_id, ..
            } => {
                mails.insert(
                    *mail,
                    MailFact {
                        request: r,
                        to: to.to_string(),
                        otp: otp.clone(),
                        temp_id: temp_id.clone(),
                        sent_at: event.at_ms,
                    },
                );
            }
            What::Answered { code, message, .. } => {
                reqs.entry(r).or_default().answer = Some((index, *code, message.clone()));
                if code.status() == 500 {
                    flag(
                        &mut violations,
                        Invariant::ClearErrors,
                        Some(r),
                        format!("request #{r} answered 500 {code}: {message:?}"),
                    );
                } else if message.trim().is_empty() || raw_sql(message) {
                    flag(
                        &mut violations,
                        Invariant::ClearErrors,
                        Some(r),
                        format!(
                            "request #{r} answered {code} with message {message:?}, which is no message for people"
                        ),
                    );
                }
            }
            What::Panicked(m) => flag(
                &mut violations,
                Invariant::ClearErrors,
                Some(r),
                format!("the handler of request #{r} panicked: {m}"),
            ),
            What::Quiescent(db) => snapshots.push((index, db)),
            _ => {}
        }
    }

    let first_signup_ok = |email: &str, before: usize| {
        reqs.iter()
            .find(|(_, q)| {
                q.kind == Some(Kind::Signup)
                    && q.email == email
                    && q.answer.as_ref().is_some_and(|(i, c, _)| *i < before && c.is_success())
            })
            .map(|(r, _)| *r)
    };

    // single_pending, at every quiescent point.
    for (index, db) in &snapshots {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for (email, _) in &db.pending {
            *count.entry(email).or_default() += 1;
        }
        if let Some((email, n)) = count.iter().find(|(_, n)| **n > 1) {
            flag(
                &mut violations,
                Invariant::SinglePending,
                None,
                format!("{n} pending registrations for {email} when no request was in flight"),
            );
        }
        let emails: BTreeSet<&str> = reqs.values().map(|q| q.email.as_str()).collect();
        for email in emails {
            if let Some(s) = first_signup_ok(email, *index) {
                if !count.contains_key(email) && !db.accounts.iter().any(|a| a == email) {
                    flag(&mut violations, Invariant::SinglePending, Some(s), format!("signup #{s} for {email} answered 200, yet no pending registration and no account remain for it"));
                }
            }
        }
    }

    let last = snapshots.last().map(|(_, db)| (*db).clone()).unwrap_or_default();
    let mailed = |to: &str, otp: &Otp| mails.values().any(|m| m.to == to && &m.otp == otp);

    for (&r, q) in &reqs {
        let Some((_, code, message)) = &q.answer else { continue };
        if q.kind != Some(Kind::Verify) {
            continue;
        }
        if code.is_success() {
            if let Some(otp) = &q.otp {
                if !mailed(&q.email, otp) {
                    let what = match q.source {
                        Some(CodeSource::Wrong) => "a code no email carried".to_string(),
                        _ => format!("a code never mailed to {}", q.email),
                    };
                    flag(
                        &mut violations,
                        Invariant::NoFalseAccept,
                        Some(r),
                        format!("verify #{r} for {} answered 200 {code} to {what}", q.email),
                    );
                }
            }
            if !last.accounts.contains(&q.email) {
                flag(
                    &mut violations,
                    Invariant::OneAccount,
                    Some(r),
                    format!("verify #{r} answered 200 {code} but {} has no account", q.email),
                );
            }
        }
        // verify_succeeds
        let Some(CodeSource::Mail(n)) = q.source else { continue };
        let Some(mail) = mails.get(&n) else { continue };
        let signup_ok = reqs
            .get(&mail.request)
            .and_then(|s| s.answer.as_ref())
            .is_some_and(|(_, c, _)| c.is_success());
        let issued = mails
            .values()
            .filter(|m| m.to == mail.to && m.otp == mail.otp)
            .map(|m| m.sent_at)
            .min()
            .unwrap_or(mail.sent_at);
        let expired = q.sent_at >= issued + limits.otp_ttl_ms;
        if !signup_ok || expired || code.is_success() || (q.faulted && *code == Code::Retry) {
            continue;
        }
        let wrong_before = reqs
            .values()
            .filter(|w| {
                w.email == q.email
                    && w.answer
                        .as_ref()
                        .is_some_and(|(i, c, _)| *c == Code::InvalidOtp && *i < q.sent_index)
            })
            .count();
        if *code == Code::Locked && wrong_before >= limits.max_attempts as usize {
            continue;
        }
        flag(
            &mut violations,
            Invariant::VerifySucceeds, Some(r),
            format!(
                "verify #{r} ({}) typed the code of mail {n}, which signup #{} sent and answered 200, yet it answered {} {code}: {message:?}",
                q.browser,
                mail.request,
                code.status()
            ),
        );
    }

    // one_account, no_orphans: on the final state.
    let mut seen = BTreeSet::new();
    for a in &last.accounts {
        if !seen.insert(a) {
            flag(
                &mut violations,
                Invariant::OneAccount,
                None,
                format!("{a} has more than one account"),
            );
        }
    }
    for (email, temp_id) in &last.pending {
        if last.accounts.contains(email) {
            flag(
                &mut violations,
                Invariant::NoOrphans,
                None,
                format!("{email} has an account and still a pending registration {temp_id}"),
            );
        } else if !mails.values().any(|m| &m.temp_id == temp_id) {
            flag(
                &mut violations,
                Invariant::NoOrphans,
                None,
                format!("pending registration {temp_id} for {email} remains, and its code was never mailed"),
            );
        }
    }

    // attempts_limited: wrong codes answered per (email, code in force).
    let mut wrong: BTreeMap<(String, Option<Otp>), Vec<usize>> = BTreeMap::new();
    for (&r, q) in &reqs {
        if let Some((index, Code::InvalidOtp, _)) = &q.answer {
            let in_force = trace.events[..*index].iter().rev().find_map(|e| match &e.what {
                What::MailSent { to, otp, .. } if to.as_str() == q.email => Some(otp.clone()),
                _ => None,
            });
            wrong.entry((q.email.clone(), in_force)).or_default().push(r);
        }
    }
    for ((email, _), rs) in &wrong {
        if rs.len() > limits.max_attempts as usize {
            let list: Vec<String> = rs.iter().map(|r| format!("#{r}")).collect();
            flag(
                &mut violations,
                Invariant::AttemptsLimited, rs.last().copied(),
                format!("{} wrong codes were answered invalid_otp for one registration of {email} ({}), more than max_attempts = {}", rs.len(), list.join(" "), limits.max_attempts),
            );
        }
    }
    violations.sort_by_key(|v| v.invariant);
    violations
}

fn raw_sql(message: &str) -> bool {
    let upper = message.to_ascii_uppercase();
    ["SELECT ", "INSERT ", "DELETE ", "UPDATE ", "SQLITE", "CONSTRAINT"]
        .iter()
        .any(|w| upper.contains(w))
}

#[cfg(test)]
mod tests {
    //! Hand-made traces: each invariant caught when broken, none flagged on
    //! a correct run.

    use super::*;
    use crate::trace::Event;
    use otpsim_core::Email;

    const ANA: &str = "ana@example.com";

    struct T(Vec<Event>);

    impl T {
        fn push(mut self, at_ms: u64, request: usize, what: What) -> Self {
            self.0.push(Event {
                at_ms,
                request: Some(request),
                browser: Some("b1".into()),
                worker: Some(0),
                what,
            });
            self
        }
        fn sent(self, r: usize, kind: Kind, otp: Option<&str>, source: Option<CodeSource>) -> Self {
            let otp = otp.map(|o| Otp::parse(o).unwrap());
            self.push(
                0,
                r,
                What::Sent {
                    kind,
                    email: Email::parse(ANA).unwrap(),
                    otp,
                    source,
                    cookie: "(none)".into(),
                },
            )
        }
        fn mail(self, r: usize, n: usize, otp: &str, temp: &str) -> Self {
            let what = What::MailSent {
                mail: n,
                to: Email::parse(ANA).unwrap(),
                otp: Otp::parse(otp).unwrap(),
                temp_id: temp.into(),
                lost: false,
            };
            self.push(0, r, what)
        }
        fn answer(self, r: usize, code: Code, message: &str) -> Self {
            self.push(
                0,
                r,
                What::Answered {
                    code,
                    message: message.into(),
                    set_cookie: None,
                },
            )
        }
        fn db(self, pending: &[&str], accounts: &[&str]) -> Self {
            let state = DbState {
                pending: pending.iter().map(|t| (ANA.to_string(), t.to_string())).collect(),
                accounts: accounts.iter().map(|a| a.to_string()).collect(),
            };
            self.push(0, 0, What::Quiescent(state))
        }
        fn check(self) -> Vec<Invariant> {
            let limits = Limits {
                otp_ttl_ms: 600_000,
                max_attempts: 2,
            };
            check(&Trace { events: self.0 }, limits, &Invariant::ALL)
                .into_iter()
                .map(|v| v.invariant)
                .collect()
        }
    }

    fn signed_up() -> T {
        T(Vec::new())
            .sent(1, Kind::Signup, None, None)
            .mail(1, 1, "111111", "temp_1_00000001")
            .answer(1, Code::Ok, "sent")
    }

    #[test]
    fn a_correct_run_breaks_nothing() {
        let t = signed_up()
            .db(&["temp_1_00000001"], &[])
            .sent(2, Kind::Verify, Some("111111"), Some(CodeSource::Mail(1)))
            .answer(2, Code::Ok, "verified")
            .db(&[], &[ANA]);
        assert_eq!(t.check(), vec![]);
    }

    #[test]
    fn single_pending_catches_two_rows_and_a_lost_one() {
        assert_eq!(
            signed_up().db(&["temp_1_00000001", "temp_1_00000002"], &[]).check(),
            vec![Invariant::SinglePending, Invariant::NoOrphans]
        );
        assert_eq!(signed_up().db(&[], &[]).check(), vec![Invariant::SinglePending]);
    }

    #[test]
    fn verify_succeeds_catches_a_real_code_refused() {
        let t = signed_up()
            .db(&["temp_1_00000001"], &[])
            .sent(2, Kind::Verify, Some("111111"), Some(CodeSource::Mail(1)))
            .answer(
                2,
                Code::NoRegistration,
                "No temp_registration found for temp_id: temp_1_00000009",
            )
            .db(&["temp_1_00000001"], &[]);
        assert_eq!(t.check(), vec![Invariant::VerifySucceeds]);
    }

    #[test]
    fn verify_succeeds_allows_503_under_a_fault_and_423_after_max_wrong_codes() {
        let faulted = signed_up()
            .db(&["temp_1_00000001"], &[])
            .sent(2, Kind::Verify, Some("111111"), Some(CodeSource::Mail(1)))
            .push(
                0,
                2,
                What::Fault {
                    statement: 1,
                    error: "io".into(),
                },
            )
            .answer(2, Code::Retry, "retry")
            .db(&["temp_1_00000001"], &[]);
        assert_eq!(faulted.check(), vec![]);
        let locked = signed_up()
            .sent(2, Kind::Verify, Some("999999"), Some(CodeSource::Wrong))
            .answer(2, Code::InvalidOtp, "no")
            .sent(3, Kind::Verify, Some("999998"), Some(CodeSource::Wrong))
            .answer(3, Code::InvalidOtp, "no")
            .sent(4, Kind::Verify, Some("111111"), Some(CodeSource::Mail(1)))
            .answer(4, Code::Locked, "locked")
            .db(&["temp_1_00000001"], &[]);
        assert_eq!(locked.check(), vec![]);
    }

    #[test]
    fn one_account_catches_a_200_without_an_account() {
        let t = signed_up()
            .sent(2, Kind::Verify, Some("111111"), Some(CodeSource::Mail(1)))
            .answer(2, Code::Ok, "ok")
            .db(&[], &[]);
        // The registration vanished too, without an account to show for it.
        assert_eq!(t.check(), vec![Invariant::SinglePending, Invariant::OneAccount]);
        let twice = signed_up().db(&[], &[ANA, ANA]);
        assert!(twice.check().contains(&Invariant::OneAccount));
    }

    #[test]
    fn no_orphans_catches_a_row_beside_an_account_and_an_unmailed_row() {
        let beside = signed_up()
            .sent(2, Kind::Verify, Some("111111"), Some(CodeSource::Mail(1)))
            .answer(2, Code::Ok, "ok");
        assert_eq!(
            beside.db(&["temp_1_00000001"], &[ANA]).check(),
            vec![Invariant::NoOrphans]
        );
        let unmailed = T(Vec::new())
            .sent(1, Kind::Signup, None, None)
            .push(0, 1, What::Crashed)
            .db(&["temp_1_00000007"], &[]);
        assert_eq!(unmailed.check(), vec![Invariant::NoOrphans]);
    }

    #[test]
    fn clear_errors_catches_500_raw_sql_empty_messages_and_panics() {
        assert_eq!(
            signed_up()
                .answer(2, Code::ServerError, "Internal Server Error")
                .check(),
            vec![Invariant::ClearErrors]
        );
        assert_eq!(
            signed_up()
                .answer(2, Code::Retry, "UNIQUE constraint failed: users.email")
                .check(),
            vec![Invariant::ClearErrors]
        );
        assert_eq!(
            signed_up().answer(2, Code::BadRequest, " ").check(),
            vec![Invariant::ClearErrors]
        );
        assert_eq!(
            signed_up().push(0, 2, What::Panicked("boom".into())).check(),
            vec![Invariant::ClearErrors]
        );
    }

    #[test]
    fn no_false_accept_catches_a_code_never_mailed_to_the_address() {
        let t = signed_up()
            .sent(2, Kind::Verify, Some("999999"), Some(CodeSource::Wrong))
            .answer(2, Code::Ok, "ok")
            .db(&[], &[ANA]);
        assert_eq!(t.check(), vec![Invariant::NoFalseAccept]);
    }

    #[test]
    fn attempts_limited_catches_more_wrong_answers_than_allowed() {
        let mut t = signed_up();
        for r in 2..5 {
            t = t
                .sent(r, Kind::Verify, Some("999999"), Some(CodeSource::Wrong))
                .answer(r, Code::InvalidOtp, "no");
        }
        assert_eq!(
            t.db(&["temp_1_00000001"], &[]).check(),
            vec![Invariant::AttemptsLimited]
        );
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_the_valid_ones() {
        for i in Invariant::ALL {
            assert_eq!(i.name().parse::<Invariant>(), Ok(i));
        }
        assert!("verify_success"
            .parse::<Invariant>()
            .unwrap_err()
            .contains("verify_succeeds"));
    }
}
