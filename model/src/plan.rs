//! The plan of a run's requests, the same for the simulator and the live
//! executor: which copies are sent when and to which worker, the
//! end-of-run probe's logins, and the code each verify types.

use otpsim_core::{Email, Kind, Otp};

use crate::scenario::{OtpChoice, RequestSpec, Scenario};
use crate::trace::CodeSource;

/// One request as sent: a copy of a `[[request]]`.
#[derive(Debug, Clone)]
pub struct Planned {
    /// 1-based number, copies numbered in send order.
    pub id: usize,
    /// 0-based index of its `[[request]]`.
    pub spec: usize,
    /// The first copy of its `[[request]]` (the one faults target).
    pub first_copy: bool,
    /// When it is sent.
    pub at_ms: u64,
    /// The worker it goes to.
    pub worker: usize,
}

/// Expands copies, orders by time then file order, and routes round-robin:
/// the requests of a run, simulated or live.
pub fn plan_requests(scenario: &Scenario) -> Vec<Planned> {
    let mut order: Vec<(u64, usize, u32)> = Vec::new();
    for (i, r) in scenario.requests.iter().enumerate() {
        for copy in 0..r.repeat {
            order.push((r.at_ms, i, copy));
        }
    }
    order.sort();
    let workers = scenario.deployment.workers;
    let mut next_worker = 0;
    order
        .into_iter()
        .enumerate()
        .map(|(n, (at_ms, spec, copy))| {
            let worker = scenario.requests[spec].worker.unwrap_or_else(|| {
                let w = next_worker % workers;
                next_worker += 1;
                w
            });
            Planned {
                id: n + 1,
                spec,
                first_copy: copy == 0,
                at_ms,
                worker,
            }
        })
        .collect()
}

/// The end-of-run probe (`docs/invariants.md`): once every request is
/// answered and every mail delivered, each person logs in once on each
/// address that has an account, with that person's password, from their
/// own browser. Numbered after the file's `already` requests, sent at
/// `now`, routed round-robin. The simulator and the live executor both
/// probe with it.
pub fn probe_logins(scenario: &Scenario, accounts: &[String], already: usize, now: u64) -> Vec<(Planned, RequestSpec)> {
    let mut logins = Vec::new();
    for person in scenario.people() {
        let Some(password) = scenario.password_of(person) else {
            continue;
        };
        for account in accounts {
            let Ok(email) = Email::parse(account) else { continue };
            let n = logins.len();
            let spec = RequestSpec::fetch(now, person, Kind::Login, email, password);
            let planned = Planned {
                id: already + n + 1,
                spec: usize::MAX,
                first_copy: false,
                at_ms: now,
                worker: n % scenario.deployment.workers,
            };
            logins.push((planned, spec));
        }
    }
    logins
}

/// The code a request types, and where it came from: none for a signup
/// or a login; for a verify, the file's digits, or the newest or oldest
/// mail among `readable` (mail numbers, 1-based, in the mailboxes its
/// browser reads), or else a code no mail carried. `mails` are every mail
/// so far, `(to, code)` in order. The simulator and the live executor
/// both type codes with it.
pub fn typed_code(spec: &RequestSpec, readable: &[usize], mails: &[(Email, Otp)]) -> (Option<Otp>, Option<CodeSource>) {
    match (&spec.kind, &spec.otp) {
        (Kind::Signup | Kind::Login | Kind::Resend, _) => (None, None),
        (Kind::Verify, OtpChoice::Literal(o)) => (Some(o.clone()), Some(CodeSource::Literal)),
        (Kind::Verify, choice) => {
            let picked = match choice {
                OtpChoice::Latest => readable.last(),
                OtpChoice::First => readable.first(),
                _ => None,
            };
            match picked {
                Some(&m) => (Some(mails[m - 1].1.clone()), Some(CodeSource::Mail(m))),
                None => (Some(wrong_code(mails)), Some(CodeSource::Wrong)),
            }
        }
    }
}

/// A code that no email sent so far carried (one sent later may, with
/// probability one in a million per email).
pub(crate) fn wrong_code(mails: &[(Email, Otp)]) -> Otp {
    (0..)
        .map(|n| Otp::from_number(999_999 - n))
        .find(|o| !mails.iter().any(|(_, m)| m == o))
        .expect("fewer than a million emails")
}
