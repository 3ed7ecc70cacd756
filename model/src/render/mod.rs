//! Showing a run to people: a sequence diagram (Mermaid or standalone
//! SVG), a self-contained HTML page, JSON, and a prose explanation of the
//! violation. All are built from one [`Diagram`] model of the trace, so
//! the pictures agree with each other and with the text trace.

mod explain;
mod html;
mod mermaid;
mod svg;

pub use explain::explain;
pub use html::{html_page, html_report, ReportRow};
pub use mermaid::mermaid;
pub use svg::svg;

use crate::invariant::Violation;
use crate::trace::{secs, CodeSource, Cookie, Trace, What};

/// One arrow or note of the diagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A message from one lane to another.
    Message {
        /// Sending lane.
        from: usize,
        /// Receiving lane.
        to: usize,
        /// The label.
        text: String,
        /// A reply (dashed).
        reply: bool,
    },
    /// A note over one or more lanes.
    Note {
        /// First lane.
        from: usize,
        /// Last lane.
        to: usize,
        /// The text.
        text: String,
        /// A violation or a fault: drawn in red.
        alarm: bool,
    },
}

/// A sequence diagram: lanes and steps, top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagram {
    /// Lane ids (browsers, workers, `db`, `mail`).
    pub lanes: Vec<String>,
    /// Lane titles.
    pub titles: Vec<String>,
    /// The steps.
    pub steps: Vec<Step>,
}

fn short(text: &str, max: usize) -> String {
    let folded: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= max {
        folded
    } else {
        format!("{}…", folded.chars().take(max - 1).collect::<String>())
    }
}

impl Diagram {
    /// The diagram of `trace`, with each violation marked after the answer
    /// of the request it is about (or at the end).
    pub fn of(trace: &Trace, violations: &[Violation]) -> Diagram {
        let mut browsers: Vec<String> = Vec::new();
        let mut workers: Vec<usize> = Vec::new();
        let mut worker_of = std::collections::BTreeMap::new();
        let mut mailbox_lane: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
        for e in &trace.events {
            if let (Some(b), What::Sent { email, owner, .. }) = (&e.browser, &e.what) {
                if !browsers.contains(b) {
                    browsers.push(b.clone());
                }
                if *owner {
                    mailbox_lane.entry(email.to_string()).or_insert_with(|| b.clone());
                }
            }
            if let Some(w) = e.worker {
                if !workers.contains(&w) {
                    workers.push(w);
                }
                if let (Some(r), What::Sent { .. }) = (e.request, &e.what) {
                    worker_of.insert(r, w);
                }
            }
        }
        workers.sort_unstable();
        let mut lanes: Vec<String> = browsers.clone();
        let mut titles: Vec<String> = browsers.iter().map(|b| format!("browser {b}")).collect();
        for w in &workers {
            lanes.push(format!("w{w}"));
            titles.push(format!("worker w{w}"));
        }
        lanes.extend(["db".to_string(), "mail".to_string()]);
        titles.extend(["SQLite".to_string(), "mail".to_string()]);
        let lane = |id: &str| lanes.iter().position(|l| l == id).unwrap_or(0);
        let (db, mail) = (lane("db"), lane("mail"));
        let last = lanes.len() - 1;
        let mut steps = Vec::new();
        let mut last_db = None;
        for e in &trace.events {
            let t = secs(e.at_ms);
            let req = e
                .request
                .filter(|r| *r != 0)
                .map_or(String::new(), |r| format!("req {r} "));
            let w = e.worker.map(|w| lane(&format!("w{w}"))).unwrap_or(db);
            let b = e.browser.as_deref().map(lane).unwrap_or(0);
            let note = |text: String, alarm: bool| Step::Note {
                from: w,
                to: w,
                text,
                alarm,
            };
            match &e.what {
                What::Sent {
                    kind,
                    email,
                    source,
                    cookie,
                    ..
                } => {
                    let kind = kind.as_str();
                    let otp = match source {
                        Some(CodeSource::Mail(n)) => format!(" code of mail {n}"),
                        Some(CodeSource::Wrong) => " a wrong code".to_string(),
                        Some(CodeSource::Literal) => " typed digits".to_string(),
                        Some(CodeSource::Seen(place)) => format!(" a code seen in {place}"),
                        Some(CodeSource::Malformed) => " a malformed code".to_string(),
                        None => String::new(),
                    };
                    let text = format!("{t} {req}POST /{kind} {email}{otp}, cookie {}", cookie_temp(cookie));
                    steps.push(Step::Message {
                        from: b,
                        to: w,
                        text,
                        reply: false,
                    });
                }
                What::Sql { sql, outcome } => {
                    steps.push(Step::Message {
                        from: w,
                        to: db,
                        text: format!("{t} {req}{} → {outcome}", short(sql, 48)),
                        reply: false,
                    });
                }
                What::Fault { statement, error } => {
                    steps.push(Step::Note {
                        from: w,
                        to: db,
                        text: format!("{t} {req}FAULT: statement {statement} fails, {error}"),
                        alarm: true,
                    });
                }
                What::MailSent {
                    mail: n,
                    to,
                    temp_id,
                    lost,
                    ..
                } => {
                    let lost = if *lost { " (lost)" } else { "" };
                    steps.push(Step::Message {
                        from: w,
                        to: mail,
                        text: format!("{t} {req}mail {n} to {to} for {temp_id}{lost}"),
                        reply: false,
                    });
                }
                What::MailDelivered { mail: n, to } => {
                    // Mailboxes belong to addresses: the mail lands in the
                    // lane of the first browser that reads this one.
                    let reader = mailbox_lane.get(to.as_str()).map_or(0, |b| lane(b));
                    steps.push(Step::Message {
                        from: mail,
                        to: reader,
                        text: format!("{t} mail {n} arrives for {to}"),
                        reply: true,
                    });
                }
                What::MailCut { mail: n } => {
                    steps.push(note(format!("{t} {req}mail {n} never goes out"), true));
                }
                What::MailWithoutCode { to, .. } => {
                    steps.push(note(format!("{t} {req}a mail to {to} without a code"), true));
                }
                What::Answered { code, message, .. } => {
                    steps.push(note(
                        format!("{t} {req}answers {} {code}: {}", code.status(), short(message, 60)),
                        false,
                    ));
                    for v in violations
                        .iter()
                        .filter(|v| v.request.is_some() && v.request == e.request)
                    {
                        steps.push(Step::Note {
                            from: 0,
                            to: last,
                            text: format!("VIOLATED {}: {}", v.invariant, v.why),
                            alarm: true,
                        });
                    }
                }
                What::Delivered { cookie_now } => {
                    let from = e
                        .request
                        .and_then(|r| worker_of.get(&r))
                        .map(|w| lane(&format!("w{w}")))
                        .unwrap_or(db);
                    let text = format!("{t} {req}response arrives, cookie now {}", cookie_temp(cookie_now));
                    steps.push(Step::Message {
                        from,
                        to: b,
                        text,
                        reply: true,
                    });
                }
                What::Abandoned => steps.push(note(
                    format!("{t} {req}response dropped: the browser left the form"),
                    false,
                )),
                What::SessionLoad(s) => steps.push(note(format!("{t} {req}session load {s}"), false)),
                What::SessionSave(s) => steps.push(note(format!("{t} {req}session save {s}"), false)),
                What::Memory => steps.push(note(format!("{t} {req}_request_locks"), false)),
                What::Waited(why) => steps.push(note(format!("{t} {req}waits: {why}"), false)),
                What::Crashed => steps.push(note(format!("{t} {req}CRASH: the worker process dies"), true)),
                What::DiedWithWorker => steps.push(note(format!("{t} {req}dies with its process"), true)),
                What::Restarted => steps.push(note(format!("{t} a fresh worker starts"), false)),
                What::Probe { .. } => steps.push(note(format!("{t} end-of-run probe: everyone logs in"), false)),
                What::Panicked(m) => steps.push(note(format!("{t} {req}PANIC: {m}"), true)),
                What::Quiescent(state) => {
                    if last_db.as_ref() != Some(state) {
                        let pending: Vec<String> = state.pending.iter().map(|(e, t)| format!("{e}={t}")).collect();
                        let text = format!(
                            "{t} pending [{}], accounts [{}]",
                            pending.join(", "),
                            state.accounts.join(", ")
                        );
                        steps.push(Step::Note {
                            from: db,
                            to: db,
                            text,
                            alarm: false,
                        });
                        last_db = Some(state.clone());
                    }
                }
            }
        }
        for v in violations.iter().filter(|v| v.request.is_none()) {
            steps.push(Step::Note {
                from: 0,
                to: last,
                text: format!("VIOLATED {}: {}", v.invariant, v.why),
                alarm: true,
            });
        }
        Diagram { lanes, titles, steps }
    }
}

/// A cookie as the diagram shows it: the temp_id it names, if any.
fn cookie_temp(cookie: &Cookie) -> String {
    match cookie.temp_user_id() {
        Some(temp) => temp.to_string(),
        None => cookie.to_string(),
    }
}

/// The run as JSON: what the checker said and every event as text. Codes
/// are not in it: the trace never prints them.
pub fn json(title: &str, trace: &Trace, violations: &[Violation], explanation: &str) -> String {
    let events: Vec<serde_json::Value> = trace
        .events
        .iter()
        .map(|e| {
            serde_json::json!({
                "at_ms": e.at_ms,
                "request": e.request,
                "browser": e.browser,
                "worker": e.worker,
                "event": e.to_string().trim_end(),
            })
        })
        .collect();
    let violations: Vec<serde_json::Value> = violations
        .iter()
        .map(|v| serde_json::json!({"invariant": v.invariant.name(), "request": v.request, "why": v.why}))
        .collect();
    let doc = serde_json::json!({"run": title, "violations": violations, "explanation": explanation, "events": events});
    serde_json::to_string_pretty(&doc).expect("plain values") + "\n"
}
