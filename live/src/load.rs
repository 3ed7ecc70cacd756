//! `otpsim stress --target`: many people at once against a real server,
//! through the live executor with nothing held back.
//!
//! Each person lives one story on an address of her own: a double-clicked
//! signup (its two copies on two workers where there are two), a
//! stranger's two wrong guesses at her address, a double-clicked verify
//! with her newest code, then the end-of-run probe of her address: she
//! logs in, and so does the stranger, each with their own password. The people start spread evenly over the
//! ramp. The probe is the story's own, not the file-wide one, which would
//! have every person try every address: the square of the load. It is one
//! scenario, run once by [`run::run`] with the settle time
//! at zero: every answer and mail is delivered the moment it comes, so the
//! server sees the load as it comes, not one instant at a time. The same
//! browsers, proxy, SMTP sink, recorder, end-of-run probe and checker as
//! every live run; the checker judges each person's part of the history on
//! its own (her browsers, her stranger's, her mails, her rows), so that a
//! break is counted per person and shown with her trace.

use std::path::PathBuf;
use std::time::Duration;

use otpsim_core::{Email, Kind};
use otpsim_model::invariant::{self, Invariant, Violation};
use otpsim_model::scenario::{BrowserSpec, Deployment, OtpChoice, RequestSpec, Scenario, SessionMode, Via};
use otpsim_model::trace::{DbState, Event, Trace, What};

use crate::run::{self, LiveError};
use crate::target::Target;

/// What a load is.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// People, each with her story.
    pub people: usize,
    /// The spread of their starts, in scenario ms.
    pub ramp_ms: u64,
    /// Worker instances of the target.
    pub workers: usize,
}

/// Scenario ms from a person's start to each step of her story.
const STRANGER_MS: u64 = 100;
const VERIFY_MS: u64 = 1000;
const LOGIN_MS: u64 = 2000;

/// A person's address and browser names: hers, and her stranger's. Each
/// browser's password is its name's: a shared one would let anyone log
/// in anywhere.
fn person(i: usize) -> (Email, String, String) {
    let email = Email::parse(&format!("person{i}@example.com")).expect("a valid address");
    (email, format!("person{i}"), format!("stranger{i}"))
}

fn password(browser: &str) -> String {
    format!("{browser}'s password")
}

/// The scenario of `load` against a target: its people's stories.
pub fn scenario(load: &Load, session: SessionMode) -> Scenario {
    let mut browsers = Vec::new();
    let mut requests = Vec::new();
    for i in 0..load.people {
        let (email, owner, stranger) = person(i);
        let start = i as u64 * load.ramp_ms / load.people.max(1) as u64;
        browsers.push(BrowserSpec {
            name: owner.clone(),
            owns: vec![email.clone()],
            password: Some(password(&owner)),
            sees_everything: false,
        });
        browsers.push(BrowserSpec {
            name: stranger.clone(),
            owns: Vec::new(),
            password: Some(password(&stranger)),
            sees_everything: false,
        });
        let request = |at_ms, browser: &str, kind, otp, repeat| RequestSpec {
            at_ms,
            browser: browser.to_string(),
            kind,
            email: email.clone(),
            password: password(browser),
            otp,
            repeat,
            worker: None,
            response_delay_ms: 0,
            email_delay_ms: 0,
            via: Via::Fetch,
        };
        requests.push(request(start, &owner, Kind::Signup, OtpChoice::Latest, 2));
        requests.push(request(
            start + STRANGER_MS,
            &stranger,
            Kind::Verify,
            OtpChoice::Wrong,
            2,
        ));
        requests.push(request(start + VERIFY_MS, &owner, Kind::Verify, OtpChoice::Latest, 2));
        // The end-of-run probe, story by story: each of the two logs in on
        // the address with their own password. The file-wide probe would
        // have every person try every account, a load's square.
        requests.push(request(start + LOGIN_MS, &owner, Kind::Login, OtpChoice::Latest, 1));
        requests.push(request(start + LOGIN_MS, &stranger, Kind::Login, OtpChoice::Latest, 1));
    }
    requests.sort_by_key(|r| r.at_ms);
    Scenario {
        path: PathBuf::from("stress.toml"),
        format: 2,
        name: format!("{} people at once", load.people),
        description: String::new(),
        browsers,
        deployment: Deployment {
            workers: load.workers,
            session,
            mail_latency_ms: 0,
            otp_ttl_ms: 600_000,
            max_attempts: 5,
            db_mode: otpsim_core::DbMode::Autocommit,
        },
        requests,
        faults: Vec::new(),
        schedules: 1,
        seed: 1,
        choices: None,
        invariants: Invariant::ALL.to_vec(),
        expect: Vec::new(),
        probe: false,
    }
}

/// What a load did.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// People.
    pub people: usize,
    /// Requests answered (the probe's logins included).
    pub answered: usize,
    /// Requests sent.
    pub sent: usize,
    /// Seconds from the first send to the last answer, in real time.
    pub seconds: f64,
    /// Each answered request's wait, send to answer, in real time, sorted.
    pub latencies: Vec<Duration>,
    /// Answers by HTTP status.
    pub statuses: Vec<(u16, usize)>,
    /// People whose story broke each invariant.
    pub breaks: Vec<(Invariant, usize)>,
    /// For each invariant broken, the first person's violation and trace.
    pub examples: Vec<(Violation, Trace)>,
}

impl LoadReport {
    /// Answered requests per second.
    pub fn per_second(&self) -> f64 {
        self.answered as f64 / self.seconds.max(1e-9)
    }

    /// The latency at `p` (0 to 100), if any request was answered.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let n = self.latencies.len();
        (n > 0).then(|| self.latencies[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1])
    }
}

/// Runs `load` against `target`, once.
pub async fn stress(target: &Target, load: &Load, options: &run::Options) -> Result<LoadReport, LiveError> {
    let session = if target.cookie_sessions {
        SessionMode::Cookie
    } else {
        SessionMode::Server
    };
    if !target.routes.contains_key(&Kind::Login) {
        return Err(LiveError::NotRunnable(
            "each story ends with the probe's logins, and the target has no login route".to_string(),
        ));
    }
    let scenario = scenario(load, session);
    // Nothing held: each delivery is made the moment it comes.
    let mut free = target.clone();
    free.settle = Duration::ZERO;
    let ran = run::run(&free, &scenario, &[], options, 0).await?;
    let speed = target.clock.map_or(1, |c| c.speed);
    let real = |ms: u64| Duration::from_millis(ms / u64::from(speed));
    let mut sent_at = std::collections::BTreeMap::new();
    let mut latencies = Vec::new();
    let mut statuses = std::collections::BTreeMap::new();
    let (mut first, mut last) = (None, 0);
    for e in &ran.trace.events {
        match (&e.what, e.request) {
            (What::Sent { .. }, Some(id)) => {
                sent_at.insert(id, e.at_ms);
                first.get_or_insert(e.at_ms);
            }
            (What::Answered { http, code, .. }, Some(id)) => {
                if let Some(at) = sent_at.get(&id) {
                    latencies.push(real(e.at_ms - at));
                }
                let status = http.as_ref().map_or(code.status(), |h| h.status);
                *statuses.entry(status).or_insert(0) += 1;
                last = last.max(e.at_ms);
            }
            _ => {}
        }
    }
    latencies.sort();
    let limits = run::limits(target, &scenario);
    let (judged, _) = run::judged(target, &scenario);
    let mut breaks: std::collections::BTreeMap<Invariant, usize> = std::collections::BTreeMap::new();
    let mut examples: Vec<(Violation, Trace)> = Vec::new();
    for i in 0..load.people {
        let (email, owner, stranger) = person(i);
        let own = story(&ran.trace, &email, &[owner.as_str(), stranger.as_str()]);
        for v in invariant::violations(&own, limits, &judged) {
            *breaks.entry(v.invariant).or_insert(0) += 1;
            if examples.iter().all(|(e, _)| e.invariant != v.invariant) {
                examples.push((v, own.clone()));
            }
        }
    }
    Ok(LoadReport {
        people: load.people,
        answered: latencies.len(),
        sent: sent_at.len(),
        seconds: real(last.saturating_sub(first.unwrap_or(0))).as_secs_f64(),
        latencies,
        statuses: statuses.into_iter().collect(),
        breaks: breaks.into_iter().collect(),
        examples,
    })
}

/// One person's part of a load's history: the events of her browsers and
/// her stranger's, the mails to her address, and the rows for it in every
/// observation of the database.
pub fn story(trace: &Trace, email: &Email, browsers: &[&str]) -> Trace {
    // Her requests and her stranger's, by number: an answer or a mail
    // names its request, not always its browser.
    let requests: std::collections::BTreeSet<usize> = trace
        .events
        .iter()
        .filter(|e| matches!(e.what, What::Sent { .. }))
        .filter(|e| e.browser.as_deref().is_some_and(|b| browsers.contains(&b)))
        .filter_map(|e| e.request)
        .collect();
    let events = trace
        .events
        .iter()
        .filter_map(|e| {
            let mine = e.browser.as_deref().is_some_and(|b| browsers.contains(&b))
                || e.request.is_some_and(|r| requests.contains(&r));
            let what = match &e.what {
                What::Quiescent(db) => What::Quiescent(DbState {
                    pending: db
                        .pending
                        .iter()
                        .filter(|(m, _)| m == email.as_str())
                        .cloned()
                        .collect(),
                    accounts: db.accounts.iter().filter(|m| *m == email.as_str()).cloned().collect(),
                }),
                What::MailSent { to, .. } | What::MailDelivered { to, .. } | What::MailWithoutCode { to, .. } => {
                    if to != email {
                        return None;
                    }
                    e.what.clone()
                }
                What::Restarted => e.what.clone(),
                _ if mine => e.what.clone(),
                _ => return None,
            };
            Some(Event { what, ..e.clone() })
        })
        .fold(Vec::<Event>::new(), |mut kept, e| {
            // The database as she sees it changes far less often than the
            // whole load's: an observation the one just before repeats,
            // with nothing of hers in between, says nothing new.
            let same = |a: &Event| matches!((&a.what, &e.what), (What::Quiescent(x), What::Quiescent(y)) if x == y);
            if !kept.last().is_some_and(same) {
                kept.push(e);
            }
            kept
        });
    Trace { events: probed(events) }
}

/// Her story with the probe's mark before its logins, where every other
/// request of hers was answered before they were sent (then they are the
/// end-of-run probe of her address, and `owner_logs_in` is judged);
/// unmarked otherwise, and the checker then owes her login nothing.
fn probed(mut events: Vec<Event>) -> Vec<Event> {
    let login = |e: &Event| matches!(e.what, What::Sent { kind: Kind::Login, .. });
    let Some(first) = events.iter().position(login) else {
        return events;
    };
    let logins: std::collections::BTreeSet<usize> =
        events.iter().filter(|e| login(e)).filter_map(|e| e.request).collect();
    let asked: std::collections::BTreeSet<usize> = events[..first]
        .iter()
        .filter(|e| matches!(e.what, What::Sent { .. }))
        .filter_map(|e| e.request)
        .collect();
    let answered = events[..first]
        .iter()
        .filter(|e| matches!(e.what, What::Answered { .. }))
        .filter_map(|e| e.request)
        .filter(|r| !logins.contains(r))
        .collect::<std::collections::BTreeSet<usize>>();
    if asked.is_subset(&answered) {
        let at = events[first].clone();
        events.insert(
            first,
            Event {
                // Her login goes to her address whether or not an account
                // was made there.
                what: What::Probe { guessed: true },
                request: None,
                browser: None,
                worker: None,
                ..at
            },
        );
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use otpsim_core::Code;
    use otpsim_model::trace::Cookie;

    fn event(at_ms: u64, request: Option<usize>, browser: Option<&str>, what: What) -> Event {
        Event {
            at_ms,
            request,
            browser: browser.map(str::to_string),
            worker: None,
            what,
        }
    }

    fn sent(at_ms: u64, request: usize, browser: &str, kind: Kind) -> Event {
        let what = What::Sent {
            kind,
            email: Email::parse("person0@example.com").unwrap(),
            owner: browser == "person0",
            otp: None,
            source: None,
            password: String::new(),
            cookie: Cookie::None,
            route: None,
        };
        event(at_ms, Some(request), Some(browser), what)
    }

    fn answered(at_ms: u64, request: usize) -> Event {
        let what = What::Answered {
            code: Code::Ok,
            http: None,
            message: String::new(),
            set_cookie: None,
        };
        event(at_ms, Some(request), None, what)
    }

    fn rows(pending: &[&str]) -> Event {
        let db = DbState {
            pending: pending
                .iter()
                .map(|e| (e.to_string(), "temp_1_0".to_string()))
                .collect(),
            accounts: Vec::new(),
        };
        event(0, None, None, What::Quiescent(db))
    }

    #[test]
    fn her_story_keeps_an_unchanged_observation_after_her_own_answer_and_marks_her_probe() {
        let me = Email::parse("person0@example.com").unwrap();
        let trace = Trace {
            events: vec![
                rows(&[]),
                sent(0, 1, "person0", Kind::Signup),
                sent(0, 2, "person1", Kind::Signup),
                answered(5, 1),
                answered(6, 2),
                // Someone else's row changed; hers did not: still no row
                // for her after a signup answered ok, which must stay.
                rows(&["person1@example.com"]),
                rows(&["person1@example.com"]),
                sent(2000, 3, "person0", Kind::Login),
                answered(2001, 3),
            ],
        };
        let story = story(&trace, &me, &["person0", "stranger0"]);
        let kinds: Vec<&str> = story
            .events
            .iter()
            .map(|e| match e.what {
                What::Quiescent(_) => "rows",
                What::Sent { .. } => "sent",
                What::Answered { .. } => "answered",
                What::Probe { .. } => "probe",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["rows", "sent", "answered", "rows", "probe", "sent", "answered"]);
    }

    #[test]
    fn logins_sent_before_her_verify_was_answered_are_no_probe() {
        let me = Email::parse("person0@example.com").unwrap();
        let trace = Trace {
            events: vec![
                sent(0, 1, "person0", Kind::Verify),
                sent(2000, 2, "person0", Kind::Login),
                answered(2100, 1),
                answered(2101, 2),
            ],
        };
        let story = story(&trace, &me, &["person0"]);
        assert!(story.events.iter().all(|e| !matches!(e.what, What::Probe { .. })));
    }
}
