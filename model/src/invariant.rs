//! The invariants of `docs/invariants.md`, checked on a trace: one named
//! value each, one function each. Each violation is explained in one
//! sentence that names the requests involved.
//!
//! The checker reads a trace as a history of requests, each taking effect
//! at one instant between when it was sent and when it was answered
//! (linearizability). Where an invariant depends on the order of two
//! requests in flight at once, the checker gives the flow the benefit of
//! every order it could have been: it reports a break only when no
//! placement explains the answers. Every such reading is written out in
//! `docs/invariants.md`; the comments here only point at them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use otpsim_core::{Code, Kind, Otp};

use crate::trace::{CodeSource, DbState, Trace, What};

/// An invariant's stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// At most one pending registration per email; exactly one while a
    /// successful signup awaits verification.
    SinglePending,
    /// A code the owner of the address really received verifies.
    VerifySucceeds,
    /// One account per email, and every successful verify has its account.
    OneAccount,
    /// No pending registration for an email with an account, nor one
    /// whose code was never mailed.
    NoOrphans,
    /// Responses are from the table, never 500, never a panic or raw SQL.
    ClearErrors,
    /// Only a code mailed to the address verifies it, and only once.
    NoFalseAccept,
    /// At most `max_attempts` wrong codes answered per registration.
    AttemptsLimited,
    /// A login succeeds only with a password the address's owner chose.
    NoHijack,
    /// The owner of an account logs in with the password she gave.
    OwnerLogsIn,
    /// A lockout by guesses the owner did not send does not keep her out:
    /// her next signup mails a fresh code that verifies.
    OwnerRecovers,
    /// No code verifies once the lifetime the app promises is over.
    CodesExpire,
}

impl Invariant {
    /// All of them, in the spec's order.
    pub const ALL: [Invariant; 11] = [
        Invariant::SinglePending,
        Invariant::VerifySucceeds,
        Invariant::OneAccount,
        Invariant::NoOrphans,
        Invariant::ClearErrors,
        Invariant::NoFalseAccept,
        Invariant::AttemptsLimited,
        Invariant::NoHijack,
        Invariant::OwnerLogsIn,
        Invariant::OwnerRecovers,
        Invariant::CodesExpire,
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
            Invariant::NoHijack => "no_hijack",
            Invariant::OwnerLogsIn => "owner_logs_in",
            Invariant::OwnerRecovers => "owner_recovers",
            Invariant::CodesExpire => "codes_expire",
        }
    }

    fn checker(self) -> fn(&History, Limits) -> Option<Violation> {
        match self {
            Invariant::SinglePending => single_pending,
            Invariant::VerifySucceeds => verify_succeeds,
            Invariant::OneAccount => one_account,
            Invariant::NoOrphans => no_orphans,
            Invariant::ClearErrors => clear_errors,
            Invariant::NoFalseAccept => no_false_accept,
            Invariant::AttemptsLimited => attempts_limited,
            Invariant::NoHijack => no_hijack,
            Invariant::OwnerLogsIn => owner_logs_in,
            Invariant::OwnerRecovers => owner_recovers,
            Invariant::CodesExpire => codes_expire,
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

/// What broke and how it showed: an invariant, and the code of the
/// answer its violation names (none where it names no request, or one
/// that was never answered). One invariant can be broken by two flaws
/// that answer differently: a Django app's two verifies at once answer
/// its 500 page, its seed incident "No pending signup found". A live
/// search that kept the first break of each invariant saved one of them;
/// it keeps the first of each symptom. Two flaws that answer alike stay
/// one symptom, and a run that shows both is read as the one its checker
/// reports (each reports its first violation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symptom {
    /// The invariant.
    pub invariant: Invariant,
    /// The answer the violation names.
    pub answer: Option<Code>,
}

impl Symptom {
    /// `violation`'s symptom in the run that `trace` records.
    pub fn of(violation: &Violation, trace: &Trace) -> Symptom {
        let answer = violation.request.and_then(|r| {
            trace.events.iter().find_map(|e| match &e.what {
                What::Answered { code, .. } if e.request == Some(r) => Some(*code),
                _ => None,
            })
        });
        Symptom {
            invariant: violation.invariant,
            answer,
        }
    }
}

impl fmt::Display for Symptom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.answer {
            Some(code) => write!(f, "{}, answered {}", self.invariant, code.as_str()),
            None => write!(f, "{}", self.invariant),
        }
    }
}

/// Settings the checker needs from the scenario.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Lifetime of a code.
    pub otp_ttl_ms: u64,
    /// Wrong codes allowed per registration.
    pub max_attempts: u32,
    /// How far, in scenario time, an instant the trace shows may lie from
    /// the one the server's clock read for it. 0 in the simulator, where a
    /// request reaches the flow at its send and a mail is dated at its
    /// acceptance. A live harness sees the send, not the arrival, and the
    /// acceptance, not the app's dating of it: a verify sent this close to
    /// its code's expiry may meet either side of it, and is owed neither.
    pub precision_ms: u64,
}

/// The violations of `invariants` in `trace`: the first of each, in the
/// spec's order.
pub fn violations(trace: &Trace, limits: Limits, invariants: &[Invariant]) -> Vec<Violation> {
    let history = History::of(trace);
    Invariant::ALL
        .into_iter()
        .filter(|i| invariants.contains(i))
        .filter_map(|i| i.checker()(&history, limits))
        .collect()
}

/// An answer: where in the trace, when, what.
#[derive(Debug, Clone)]
struct Answer<'a> {
    index: usize,
    code: Code,
    message: &'a str,
}

/// What the trace says about one request.
#[derive(Debug, Clone)]
struct Req<'a> {
    id: usize,
    kind: Kind,
    email: &'a str,
    browser: &'a str,
    owner: bool,
    sent_at: u64,
    sent_index: usize,
    otp: Option<Otp>,
    source: Option<CodeSource>,
    password: &'a str,
    answer: Option<Answer<'a>>,
    faulted: bool,
    /// Its worker process died while it was in flight.
    died: bool,
    panicked: Option<&'a str>,
}

impl<'a> Req<'a> {
    fn answered(&self) -> Option<&Answer<'a>> {
        self.answer.as_ref()
    }
    /// Answered 200 (`ok` or `already_verified`).
    fn succeeded(&self) -> bool {
        self.answer.as_ref().is_some_and(|a| a.code.is_success())
    }
    /// The trace index by which this request had certainly taken effect:
    /// its answer, or never (a request with no answer may take effect any
    /// time after it was sent).
    fn done_by(&self) -> usize {
        self.answer.as_ref().map_or(usize::MAX, |a| a.index)
    }
}

#[derive(Debug, Clone)]
struct MailFact<'a> {
    number: usize,
    request: usize,
    index: usize,
    to: &'a str,
    otp: Otp,
    temp_id: &'a str,
    sent_at: u64,
    /// The process died during the send: it never went out.
    cut: bool,
    /// Live: the requests that may have sent it, when that is ambiguous.
    senders: &'a [usize],
}

impl MailFact<'_> {
    /// Whether request `id` sent it, or may have (an ambiguous sender is
    /// read every way, so that no reading blames the flow).
    fn may_be_from(&self, id: usize) -> bool {
        self.request == id || self.senders.contains(&id)
    }
}

/// The trace as a history: requests with their sends and answers, mails,
/// and the database at each quiescent point.
///
/// It borrows the trace's strings and database states rather than copying
/// them: the checker runs after every schedule a search tries (borrowing
/// made a search 1.02x faster, BENCHMARKS.md session 24).
struct History<'a> {
    reqs: Vec<Req<'a>>,
    mails: Vec<MailFact<'a>>,
    snapshots: Vec<(usize, &'a DbState)>,
    /// Where the end-of-run probe starts, if it ran.
    probe: Option<usize>,
    /// Whether the probe logged in on addresses not known to have an
    /// account (`What::Probe`).
    probe_guessed: bool,
}

impl<'a> History<'a> {
    fn of(trace: &'a Trace) -> History<'a> {
        let mut reqs: BTreeMap<usize, Req> = BTreeMap::new();
        let mut mails: BTreeMap<usize, MailFact> = BTreeMap::new();
        let mut snapshots = Vec::new();
        let mut probe = None;
        let mut probe_guessed = false;
        for (index, event) in trace.events.iter().enumerate() {
            let r = event.request.unwrap_or(0);
            match &event.what {
                What::Sent {
                    kind,
                    email,
                    owner,
                    otp,
                    source,
                    password,
                    ..
                } => {
                    reqs.insert(
                        r,
                        Req {
                            id: r,
                            kind: *kind,
                            email: email.as_str(),
                            browser: event.browser.as_deref().unwrap_or_default(),
                            owner: *owner,
                            sent_at: event.at_ms,
                            sent_index: index,
                            otp: otp.clone(),
                            source: source.clone(),
                            password,
                            answer: None,
                            faulted: false,
                            died: false,
                            panicked: None,
                        },
                    );
                }
                What::Fault { .. } => {
                    if let Some(q) = reqs.get_mut(&r) {
                        q.faulted = true;
                    }
                }
                What::MailSent {
                    mail,
                    to,
                    otp,
                    temp_id,
                    senders,
                    ..
                } => {
                    mails.insert(
                        *mail,
                        MailFact {
                            number: *mail,
                            request: r,
                            senders,
                            index,
                            to: to.as_str(),
                            otp: otp.clone(),
                            temp_id,
                            sent_at: event.at_ms,
                            cut: false,
                        },
                    );
                }
                What::Crashed | What::DiedWithWorker => {
                    if let Some(q) = reqs.get_mut(&r) {
                        q.died = true;
                    }
                }
                What::MailCut { mail } => {
                    if let Some(m) = mails.get_mut(mail) {
                        m.cut = true;
                    }
                }
                What::Answered { code, message, .. } => {
                    if let Some(q) = reqs.get_mut(&r) {
                        q.answer = Some(Answer {
                            index,
                            code: *code,
                            message,
                        });
                    }
                }
                What::Panicked(m) => {
                    if let Some(q) = reqs.get_mut(&r) {
                        q.panicked = Some(m);
                    }
                }
                What::Quiescent(db) => snapshots.push((index, db)),
                What::Probe { guessed } => {
                    probe = Some(index);
                    probe_guessed = *guessed;
                }
                _ => {}
            }
        }
        History {
            reqs: reqs.into_values().collect(),
            mails: mails.into_values().collect(),
            snapshots,
            probe,
            probe_guessed,
        }
    }

    fn verifies(&self) -> impl Iterator<Item = &Req<'_>> {
        self.reqs.iter().filter(|q| q.kind == Kind::Verify)
    }

    fn mail(&self, number: usize) -> Option<&MailFact<'_>> {
        self.mails.iter().find(|m| m.number == number)
    }

    fn last_state(&self) -> DbState {
        self.snapshots.last().map(|(_, db)| (*db).clone()).unwrap_or_default()
    }

    /// Whether `email` had an account at a quiescent point before `index`.
    fn account_before(&self, email: &str, index: usize) -> bool {
        self.snapshots
            .iter()
            .any(|(i, db)| *i < index && db.accounts.iter().any(|a| a == email))
    }

    /// Whether a signup for `w`'s address, in flight at some time while `w`
    /// was, may have made a registration other than `registration`: it
    /// mailed another one's code, or it answered 200 and mailed nothing
    /// (its mail may be later, or a retry's).
    fn may_replace_during(&self, w: &Req, registration: &str) -> bool {
        let w_done = w.done_by();
        self.reqs
            .iter()
            .filter(|s| s.kind.mails() && s.email == w.email && s.id != w.id)
            .filter(|s| s.sent_index < w_done && s.done_by() > w.sent_index)
            .any(|s| {
                let mut mailed = self.mails.iter().filter(|m| m.may_be_from(s.id)).peekable();
                if mailed.peek().is_none() {
                    return s.succeeded() || s.answer.is_none();
                }
                mailed.any(|m| m.temp_id != registration)
            })
    }

    /// The registration (temp_id) a guess `w` could meet at trace index
    /// `index`: that of the newest mail for its address handed to the mail
    /// system before `index`.
    fn registration_at(&self, w: &Req, index: usize) -> Option<&str> {
        self.mails
            .iter()
            .filter(|m| m.to == w.email && m.index < index)
            .max_by_key(|m| m.index)
            .map(|m| m.temp_id)
    }
}

fn violation(invariant: Invariant, request: Option<usize>, why: String) -> Option<Violation> {
    Some(Violation {
        invariant,
        request,
        why,
    })
}

/// `single_pending`, at each point where no request was in flight.
fn single_pending(h: &History, _: Limits) -> Option<Violation> {
    for (index, db) in &h.snapshots {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for (email, _) in &db.pending {
            *count.entry(email).or_default() += 1;
        }
        if let Some((email, n)) = count.iter().find(|(_, n)| **n > 1) {
            return violation(
                Invariant::SinglePending,
                None,
                format!("{n} pending registrations for {email} when no request was in flight"),
            );
        }
        // Exactly one after a signup answered 200, unless a verify for the
        // address answered 200 since or the address has its account (a
        // verify that committed and then died with its process).
        let emails: BTreeSet<&str> = h.reqs.iter().map(|q| q.email).collect();
        for email in emails {
            let answered = |q: &&Req| q.email == email && q.answered().is_some_and(|a| a.index < *index);
            let Some(signup) = h
                .reqs
                .iter()
                .filter(answered)
                .filter(|q| q.kind.mails() && q.succeeded())
                .max_by_key(|q| q.done_by())
            else {
                continue;
            };
            let verified_since = h
                .verifies()
                .filter(answered)
                .any(|v| v.succeeded() && v.done_by() > signup.done_by());
            let has_account = db.accounts.iter().any(|a| a == email);
            if !count.contains_key(email) && !verified_since && !has_account {
                return violation(
                    Invariant::SinglePending,
                    Some(signup.id),
                    format!(
                        "signup #{} for {email} answered 200, yet no pending registration and no account remain for it",
                        signup.id
                    ),
                );
            }
        }
    }
    None
}

/// `verify_succeeds`: an owner typing a code from a mail it received.
fn verify_succeeds(h: &History, limits: Limits) -> Option<Violation> {
    for q in h.verifies().filter(|q| q.owner) {
        let (Some(CodeSource::Mail(n)), Some(answer)) = (&q.source, q.answered()) else {
            continue;
        };
        let Some(mail) = h.mail(*n) else { continue };
        let code = answer.code;
        if code.is_success() || (q.faulted && code == Code::Retry) {
            continue;
        }
        // Every mail promises its code the interval [sent, sent + otp_ttl);
        // after it, the code is owed nothing (410, or a code since replaced).
        if q.sent_at + limits.precision_ms >= mail.sent_at + limits.otp_ttl_ms {
            continue;
        }
        // Locked by guesses that may be placed first: owed a 423, or, once
        // another code has made the account, the account's "not right".
        // Made by another code: a verify of another code answered 200 first,
        // or a quiet moment showed the account while no verify of this
        // code had answered 200 (a repeat of the right code is owed
        // `already_verified`).
        let by_this = |v: &Req| v.otp.as_ref() == Some(&mail.otp);
        let account = h.verifies().any(|v| {
            v.email == q.email && !by_this(v) && v.succeeded() && v.answered().is_some_and(|a| a.index < answer.index)
        }) || (h.account_before(q.email, answer.index)
            && !h.verifies().any(|v| v.email == q.email && by_this(v) && v.succeeded()));
        let dead = code == Code::Locked || (code == Code::InvalidOtp && account);
        if dead && wrong_codes_placeable_before(h, q, mail) >= limits.max_attempts as usize {
            continue;
        }
        // Its sender died with its worker after the mail server took it:
        // the app may not know this mail went, and dates the code by the
        // ones it knows of (a restart mails it again, with its own promise).
        let unrecorded = h
            .reqs
            .iter()
            .any(|r| mail.may_be_from(r.id) && r.died && r.answer.is_none());
        if unrecorded && code == Code::OtpExpired {
            continue;
        }
        let fault = if q.faulted {
            " A fault hit it, so it had to answer 503 retry."
        } else {
            ""
        };
        let sender = match h.reqs.iter().find(|r| r.id == mail.request) {
            Some(r) => format!("{} #{}", r.kind, r.id),
            None if !mail.senders.is_empty() => {
                let ids: Vec<String> = mail.senders.iter().map(|s| format!("#{s}")).collect();
                format!("one of {}", ids.join(" or "))
            }
            None => "a restarted worker's recovery".to_string(),
        };
        return violation(
            Invariant::VerifySucceeds,
            Some(q.id),
            format!(
                "verify #{} ({}) typed the code of mail {n}, which {sender} sent to {} at {}, yet it answered {} {code}: {:?}.{fault}",
                q.id,
                q.browser,
                mail.to,
                crate::trace::secs(mail.sent_at),
                code.status(),
                answer.message
            ),
        );
    }
    None
}

/// How many verifies with another code than `mail`'s, for the same
/// address, may have counted as wrong attempts on `mail`'s registration
/// before `q`: answered `invalid_otp` or not at all (a lockout answered to
/// another verify is no attempt that caused it), sent before `q` was
/// answered, and not answered before the request that made the
/// registration was sent.
fn wrong_codes_placeable_before(h: &History, q: &Req, mail: &MailFact) -> usize {
    // The registration was made by the request that mailed its code, or,
    // for a code a restarted worker's recovery mailed, by a signup for the
    // address sent before that mail that mailed no other registration's
    // code (the one that died before its own mail went out).
    let made_at = h
        .mails
        .iter()
        .filter(|m| m.temp_id == mail.temp_id)
        .flat_map(|m| match h.reqs.iter().find(|r| r.id == m.request) {
            Some(r) => vec![r.sent_index],
            None => h
                .reqs
                .iter()
                .filter(|r| r.kind.mails() && r.email == m.to && r.sent_index < m.index)
                .filter(|r| {
                    h.mails
                        .iter()
                        .all(|other| other.request != r.id || other.temp_id == m.temp_id)
                })
                .map(|r| r.sent_index)
                .collect(),
        })
        .min()
        .unwrap_or(0);
    h.verifies()
        .filter(|w| w.id != q.id && w.email == q.email && w.otp.as_ref() != Some(&mail.otp))
        .filter(|w| w.answered().is_none_or(|a| a.code == Code::InvalidOtp))
        .filter(|w| w.sent_index < q.done_by() && w.done_by() > made_at)
        .count()
}

/// `one_account`, on the final state.
fn one_account(h: &History, _: Limits) -> Option<Violation> {
    let last = h.last_state();
    let mut seen = BTreeSet::new();
    for a in &last.accounts {
        if !seen.insert(a) {
            return violation(Invariant::OneAccount, None, format!("{a} has more than one account"));
        }
    }
    for q in h.verifies().filter(|q| q.succeeded()) {
        if !last.accounts.iter().any(|a| a == q.email) {
            let code = q.answered().map_or(Code::Ok, |a| a.code);
            return violation(
                Invariant::OneAccount,
                Some(q.id),
                format!("verify #{} answered 200 {code} but {} has no account", q.id, q.email),
            );
        }
    }
    None
}

/// `no_orphans`, on the final state.
fn no_orphans(h: &History, _: Limits) -> Option<Violation> {
    let last = h.last_state();
    for (email, temp_id) in &last.pending {
        if last.accounts.contains(email) {
            return violation(
                Invariant::NoOrphans,
                None,
                format!("{email} has an account and still a pending registration {temp_id}"),
            );
        }
        if !h.mails.iter().any(|m| m.temp_id == temp_id && !m.cut) {
            return violation(
                Invariant::NoOrphans,
                None,
                format!("pending registration {temp_id} for {email} remains, and its code was never mailed"),
            );
        }
    }
    None
}

/// `clear_errors`, on every answer.
fn clear_errors(h: &History, _: Limits) -> Option<Violation> {
    for q in &h.reqs {
        if let Some(m) = &q.panicked {
            return violation(
                Invariant::ClearErrors,
                Some(q.id),
                format!("the handler of request #{} panicked: {m}", q.id),
            );
        }
        let Some(Answer { code, message, .. }) = q.answered() else {
            continue;
        };
        if code.status() == 500 {
            return violation(
                Invariant::ClearErrors,
                Some(q.id),
                format!("request #{} answered 500 {code}: {message:?}", q.id),
            );
        }
        if message.trim().is_empty() || raw_sql(message) {
            return violation(
                Invariant::ClearErrors,
                Some(q.id),
                format!(
                    "request #{} answered {code} with message {message:?}, which is no message for people",
                    q.id
                ),
            );
        }
    }
    None
}

/// `no_false_accept`: only a code mailed to the address, and only once.
fn no_false_accept(h: &History, _: Limits) -> Option<Violation> {
    let mailed = |to: &str, otp: &Otp| h.mails.iter().any(|m| m.to == to && &m.otp == otp && !m.cut);
    let mut verified: BTreeMap<(&str, &Otp), usize> = BTreeMap::new();
    for q in h.verifies().filter(|q| q.succeeded()) {
        let (Some(otp), Some(answer)) = (&q.otp, q.answered()) else {
            continue;
        };
        if !mailed(q.email, otp) {
            let what = match q.source {
                Some(CodeSource::Wrong) => "a code no email carried".to_string(),
                _ => format!("a code never mailed to {}", q.email),
            };
            return violation(
                Invariant::NoFalseAccept,
                Some(q.id),
                format!(
                    "verify #{} for {} answered 200 {} to {what}",
                    q.id, q.email, answer.code
                ),
            );
        }
        // Mailed to the address, but read where only an attacker reads it.
        if let (false, Some(CodeSource::Seen(place))) = (q.owner, &q.source) {
            return violation(
                Invariant::NoFalseAccept,
                Some(q.id),
                format!(
                    "verify #{} ({}) for {} answered 200 {} to a code it saw in {place}, not in the mailbox of {}, which it does not read",
                    q.id, q.browser, q.email, answer.code, q.email
                ),
            );
        }
        if answer.code == Code::Ok {
            if let Some(first) = verified.insert((q.email, otp), q.id) {
                return violation(
                    Invariant::NoFalseAccept,
                    Some(q.id),
                    format!(
                        "verify #{} and verify #{first} both answered 200 ok for {} with the same code: a code verifies an account once",
                        q.id, q.email
                    ),
                );
            }
        }
    }
    // A repeat may answer already_verified only with the code that verified.
    for q in h.verifies() {
        let (Some(otp), Some(answer)) = (&q.otp, q.answered()) else {
            continue;
        };
        let oks: Vec<&Otp> = verified
            .keys()
            .filter(|(e, _)| *e == q.email)
            .map(|(_, o)| *o)
            .collect();
        if answer.code == Code::AlreadyVerified && !oks.is_empty() && !oks.contains(&otp) {
            return violation(
                Invariant::NoFalseAccept,
                Some(q.id),
                format!(
                    "verify #{} for {} answered already_verified to a code other than the one that verified the account",
                    q.id, q.email
                ),
            );
        }
    }
    None
}

/// `attempts_limited`: wrong codes answered per pending registration.
fn attempts_limited(h: &History, limits: Limits) -> Option<Violation> {
    let mut wrong: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for w in h.verifies() {
        let Some(answer) = w.answered().filter(|a| a.code == Code::InvalidOtp) else {
            continue;
        };
        // Not counted: wrong codes that may have met the account rather
        // than the registration: an account was seen before it was sent,
        // or a verify that answered 200, or that died without an answer
        // carrying a code mailed to the address (it may have committed),
        // was sent before it was answered.
        let could_verify = |v: &Req| {
            v.otp
                .as_ref()
                .is_some_and(|otp| h.mails.iter().any(|m| m.to == v.email && &m.otp == otp))
        };
        let account_first = h.account_before(w.email, w.sent_index)
            || h.verifies().any(|v| {
                v.email == w.email
                    && v.id != w.id
                    && (v.succeeded() || (v.answer.is_none() && could_verify(v)))
                    && v.sent_index < answer.index
            });
        if account_first {
            continue;
        }
        // Counted against a registration only where every placement puts
        // it there (docs/invariants.md): the registration in force for the
        // whole time it was in flight, and no signup that may have made a
        // newer one committed meanwhile.
        let at_send = h.registration_at(w, w.sent_index);
        let at_answer = h.registration_at(w, answer.index);
        let (Some(registration), true) = (at_send, at_send == at_answer) else {
            continue;
        };
        if h.may_replace_during(w, registration) {
            continue;
        }
        wrong.entry((w.email, registration)).or_default().push(w.id);
    }
    for ((email, registration), ids) in &wrong {
        if ids.len() > limits.max_attempts as usize {
            let list: Vec<String> = ids.iter().map(|r| format!("#{r}")).collect();
            return violation(
                Invariant::AttemptsLimited,
                ids.last().copied(),
                format!(
                    "{} wrong codes were answered invalid_otp for registration {registration} of {email} ({}), more than max_attempts = {}",
                    ids.len(),
                    list.join(" "),
                    limits.max_attempts
                ),
            );
        }
    }
    None
}

/// `no_hijack`: a successful login's password was chosen by an owner.
fn no_hijack(h: &History, _: Limits) -> Option<Violation> {
    for login in h.reqs.iter().filter(|q| q.kind == Kind::Login && q.succeeded()) {
        let chose = |q: &&Req| {
            // A resend carries its browser's password, which a flow
            // without its own resend signs up with.
            matches!(q.kind, Kind::Signup | Kind::Verify | Kind::Resend)
                && q.email == login.email
                && q.password == login.password
                && q.sent_index < login.done_by()
        };
        if h.reqs.iter().filter(chose).any(|q| q.owner) {
            continue;
        }
        let by = match h.reqs.iter().find(chose) {
            Some(q) => format!(", the password {} sent in {} #{}", q.browser, q.kind, q.id),
            None => String::new(),
        };
        return violation(
            Invariant::NoHijack,
            Some(login.id),
            format!(
                "login #{} ({}) answered 200 for {} with a password no browser owning that address sent{by}",
                login.id, login.browser, login.email
            ),
        );
    }
    None
}

/// `codes_expire`: a verify sent more than `otp_ttl` after the newest mail
/// of its code to its address accepted by its answer answers no 200 ok. The code
/// was made before its mail and the app reads it after the send, so the
/// code was older than its lifetime however the server's work fell; a live
/// harness, which sees the send and not the arrival, and the acceptance
/// and not the app's dating of it, asks that past its precision.
fn codes_expire(h: &History, limits: Limits) -> Option<Violation> {
    for q in h.verifies() {
        let (Some(otp), Some(answer)) = (&q.otp, q.answered()) else {
            continue;
        };
        if answer.code != Code::Ok {
            continue;
        }
        // Mails accepted by the answer: one accepted while the verify was in
        // flight may be what the server judged by; a later one cannot be.
        let newest = h
            .mails
            .iter()
            .filter(|m| m.to == q.email && &m.otp == otp && !m.cut && m.index < answer.index)
            .map(|m| m.sent_at)
            .max();
        let Some(mailed) = newest else { continue };
        if q.sent_at > mailed + limits.otp_ttl_ms + limits.precision_ms {
            return violation(
                Invariant::CodesExpire,
                Some(q.id),
                format!(
                    "verify #{} for {} answered 200 ok to a code last mailed at {}, sent {} later: its lifetime is {}",
                    q.id,
                    q.email,
                    crate::trace::secs(mailed),
                    crate::trace::secs(q.sent_at - mailed),
                    crate::trace::secs(limits.otp_ttl_ms)
                ),
            );
        }
    }
    None
}

/// `owner_logs_in`, on the end-of-run probe: for each address with an
/// account, the owners who verified it (answered 200) or signed up for it,
/// with the password the probe logs them in with, are not all refused.
/// (Two browsers owning one address are one person's two tabs: the account
/// holds one of her passwords.)
fn owner_logs_in(h: &History, _: Limits) -> Option<Violation> {
    let start = h.probe?;
    let probes: Vec<&Req> = h
        .reqs
        .iter()
        .filter(|q| q.kind == Kind::Login && q.sent_index > start)
        .collect();
    let mut accounts: BTreeSet<&str> = probes.iter().map(|q| q.email).collect();
    if h.probe_guessed {
        // The probe logged in on addresses not known to have an account:
        // an account is known where a quiet moment showed it, or a verify
        // or a login at the probe answered 200 for it.
        accounts.retain(|email| {
            h.account_before(email, usize::MAX)
                || h.reqs.iter().any(|q| {
                    q.email == *email
                        && q.succeeded()
                        && (q.kind == Kind::Verify || (q.kind == Kind::Login && q.sent_index > start))
                })
        });
    }
    for email in accounts {
        let mut claims: Vec<(&Req, &Req)> = Vec::new();
        for login in probes.iter().filter(|q| q.email == email && q.owner) {
            let gave = |q: &&Req| {
                q.browser == login.browser
                    && q.email == email
                    && q.sent_index < start
                    && q.password == login.password
                    && (q.kind == Kind::Signup || (q.kind == Kind::Verify && q.succeeded()))
            };
            if let Some(claim) = h.reqs.iter().find(gave) {
                claims.push((claim, login));
            }
        }
        let refused = |(_, login): &(&Req, &Req)| login.answered().is_some_and(|a| !a.code.is_success());
        if !claims.is_empty() && claims.iter().all(refused) {
            let (claim, login) = claims[0];
            let code = login.answered().map_or(Code::Ok, |a| a.code);
            return violation(
                Invariant::OwnerLogsIn,
                Some(login.id),
                format!(
                    "{} has an account, and {} gave her password for it in {} #{}, yet her login #{} at the end of the run answered {} {code}",
                    email,
                    login.browser,
                    claim.kind,
                    claim.id,
                    login.id,
                    code.status()
                ),
            );
        }
    }
    None
}

/// `owner_recovers`: after the first lockout (423) of an address that the
/// owner's own wrong codes do not explain, her next signup from an owning
/// browser answers 200, the first mail to the address after it carries a
/// code never mailed to it before the lockout, and her verify of that code
/// from any browser of hers, sent within its lifetime, answers 200 (unless
/// she herself then sent `max_attempts` wrong codes).
fn owner_recovers(h: &History, limits: Limits) -> Option<Violation> {
    let addresses: BTreeSet<&str> = h.reqs.iter().map(|q| q.email).collect();
    for email in addresses {
        let for_it = || h.reqs.iter().filter(move |q| q.email == email);
        // Locked: a 423 answered, or the max_attempts-th wrong code.
        let refused = for_it().filter_map(|q| q.answered().filter(|a| a.code == Code::Locked).map(|a| (q, a.index)));
        let mut wrong: Vec<(&Req, usize)> = for_it()
            .filter(|q| q.kind == Kind::Verify)
            .filter_map(|q| {
                q.answered()
                    .filter(|a| a.code == Code::InvalidOtp)
                    .map(|a| (q, a.index))
            })
            .collect();
        wrong.sort_by_key(|(_, at)| *at);
        let limit = wrong.get(limits.max_attempts as usize - 1).copied();
        let Some((lock, at)) = refused.chain(limit).min_by_key(|(_, at)| *at) else {
            continue;
        };
        // A verify that died may have counted its attempt: where the
        // owner's own may explain the lockout, it is hers. And the lockout
        // may have taken effect as early as the max_attempts-th such guess
        // was sent: only a code mailed before then is surely the locked one.
        // Only guesses that could have met a registration: answered after a
        // signup for the address was sent, and, for one that died, with a
        // code no mail to the address carried (one that did may have been
        // right).
        let first_signup = for_it().filter(|q| q.kind.mails()).map(|q| q.sent_index).min();
        let mailed = |q: &Req| {
            q.otp
                .as_ref()
                .is_some_and(|otp| h.mails.iter().any(|m| m.to == email && &m.otp == otp))
        };
        let may_count = |q: &&Req| {
            q.kind == Kind::Verify
                && first_signup.is_some_and(|s| q.done_by() > s)
                && match q.answered() {
                    Some(a) => a.code == Code::InvalidOtp,
                    None => !mailed(q),
                }
        };
        let own_wrong = for_it()
            .filter(may_count)
            .filter(|q| q.owner && q.sent_index < at)
            .count();
        let mut possible: Vec<usize> = for_it().filter(may_count).map(|q| q.sent_index).collect();
        possible.sort_unstable();
        let earliest = possible
            .get(limits.max_attempts as usize - 1)
            .map_or(at, |&i| i.min(at));
        if own_wrong >= limits.max_attempts as usize {
            continue;
        }
        let Some(signup) = for_it()
            .filter(|q| q.kind == Kind::Signup && q.owner && q.sent_index > at)
            .min_by_key(|q| q.sent_index)
        else {
            continue;
        };
        let Some(answer) = signup.answered() else { continue };
        if signup.faulted && answer.code == Code::Retry {
            continue;
        }
        // An address that already has its account locks nobody out (wrong
        // codes against an account are no_false_accept's business).
        let verified = h
            .verifies()
            .any(|v| v.email == email && v.succeeded() && v.sent_index < signup.done_by());
        if verified || h.account_before(email, signup.done_by()) {
            continue;
        }
        // Refused 429 because the fresh code was already asked for often
        // (other signups' mails, perhaps still on their way): that keeps
        // her out only if none of those mails reaches her address after
        // the lockout, alive when she asked.
        let mailed_already = (answer.code == Code::TooManyRequests)
            .then(|| {
                h.mails
                    .iter()
                    .filter(|m| m.to == email && !m.cut && m.index > earliest)
                    // Asked for before her signup was answered, by a signup
                    // or a restarted worker: not one she asked for later.
                    .filter(|m| {
                        h.reqs
                            .iter()
                            .find(|r| r.id == m.request)
                            .is_none_or(|r| r.sent_index < answer.index)
                    })
                    .filter(|m| signup.sent_at < m.sent_at + limits.otp_ttl_ms + limits.precision_ms)
                    // A late mail of the locked code is no way out: none
                    // whose code went out before the lockout was certain
                    // (a code mailed while the guess was in flight may be
                    // the one it locked).
                    .filter(|m| {
                        !h.mails
                            .iter()
                            .any(|old| old.to == email && old.index < at && old.otp == m.otp)
                    })
                    // Of the registrations mailed, the newest: a locked
                    // code's own first mail may be slow and come after the
                    // lockout (seed 10 of the ten-minute runs).
                    .filter(|m| {
                        h.mails
                            .iter()
                            .filter(|n| n.to == email && !n.cut)
                            .max_by_key(|n| n.index)
                            .is_none_or(|newest| newest.temp_id == m.temp_id)
                    })
                    .min_by_key(|m| m.index)
            })
            .flatten();
        if !answer.code.is_success() && mailed_already.is_none() {
            return violation(
                Invariant::OwnerRecovers,
                Some(signup.id),
                format!(
                    "{email} was locked (by {} #{}) by guesses its owner did not send, and her signup #{} ({}) then answered {} {}: {:?}",
                    lock.kind,
                    lock.id,
                    signup.id,
                    signup.browser,
                    answer.code.status(),
                    answer.code,
                    answer.message
                ),
            );
        }
        // Her signup's own mail, else the first to the address after it.
        let after = || {
            h.mails
                .iter()
                .filter(|m| m.to == email && !m.cut && m.index > signup.sent_index)
        };
        let Some(mail) = mailed_already.or_else(|| {
            after()
                .filter(|m| m.may_be_from(signup.id))
                .min_by_key(|m| m.index)
                .or_else(|| after().min_by_key(|m| m.index))
        }) else {
            return violation(
                Invariant::OwnerRecovers,
                Some(signup.id),
                format!(
                    "{email} was locked by guesses its owner did not send; her signup #{} answered 200, yet no mail reached the address after it",
                    signup.id
                ),
            );
        };
        let stale = h
            .mails
            .iter()
            .any(|m| m.to == email && m.index < earliest && m.otp == mail.otp);
        if stale {
            return violation(
                Invariant::OwnerRecovers,
                Some(signup.id),
                format!(
                    "{email} was locked by guesses its owner did not send; after her signup #{}, mail {} carried a code mailed before the lockout, not a fresh one",
                    signup.id, mail.number
                ),
            );
        }
        for v in for_it().filter(|q| q.kind == Kind::Verify && q.owner && q.sent_index > signup.sent_index) {
            let (Some(CodeSource::Mail(n)), Some(a)) = (&v.source, v.answered()) else {
                continue;
            };
            let Some(typed) = h.mail(*n).filter(|m| m.otp == mail.otp) else {
                continue;
            };
            if a.code.is_success() || (v.faulted && a.code == Code::Retry) {
                continue;
            }
            if v.sent_at + limits.precision_ms >= typed.sent_at + limits.otp_ttl_ms {
                continue;
            }
            let own_since = for_it()
                .filter(|q| q.kind == Kind::Verify && q.owner && q.sent_index > signup.sent_index)
                .filter(|q| q.answered().is_some_and(|a| a.code == Code::InvalidOtp))
                .count();
            if own_since >= limits.max_attempts as usize {
                continue;
            }
            return violation(
                Invariant::OwnerRecovers,
                Some(v.id),
                format!(
                    "{email} was locked by guesses its owner did not send; verify #{} ({}) typed the fresh code of mail {} her signup #{} brought, yet it answered {} {}: {:?}",
                    v.id,
                    v.browser,
                    typed.number,
                    signup.id,
                    a.code.status(),
                    a.code,
                    a.message
                ),
            );
        }
    }
    None
}

fn raw_sql(message: &str) -> bool {
    let upper = message.to_ascii_uppercase();
    ["SELECT ", "INSERT ", "DELETE ", "UPDATE ", "SQLITE", "CONSTRAINT"]
        .iter()
        .any(|w| upper.contains(w))
}

#[cfg(test)]
mod tests;
