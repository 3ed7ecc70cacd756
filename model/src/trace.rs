//! The trace of one run: every request, handler step, SQL statement,
//! session load/save, mail and response, with simulated time, browser and
//! worker, in the order it happened. The invariants are checked on it, and
//! its text form is what `otpsim replay` prints, byte for byte the same for
//! the same file, variant and seed.
//!
//! Codes and passwords are carried (the checker needs them) but never
//! printed: a mail is named by its number, a typed code by where it came
//! from.

use std::fmt::{self, Write as _};

use otpsim_core::{Code, Email, Kind, Otp, SessionData};

/// Simulated milliseconds as the trace and the reports print them.
pub fn secs(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// What a browser's cookie for the site holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Cookie {
    /// No cookie yet.
    #[default]
    None,
    /// Flask's signed session cookie: the session itself.
    Session(SessionData),
    /// A server-side session's id.
    Sid(u64),
    /// A real server's cookie that is not a readable session (a live run's
    /// server session id, say): shown as it is, shortened.
    Opaque(String),
}

impl Cookie {
    /// The temp_id a session cookie names, if any.
    pub fn temp_user_id(&self) -> Option<&str> {
        match self {
            Cookie::Session(data) => data.temp_user_id.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cookie::None => f.write_str("(none)"),
            Cookie::Session(data) => write!(f, "{data}"),
            Cookie::Sid(sid) => write!(f, "sid={sid}"),
            Cookie::Opaque(raw) if raw.chars().count() > 24 => {
                write!(f, "{}…", raw.chars().take(24).collect::<String>())
            }
            Cookie::Opaque(raw) => f.write_str(raw),
        }
    }
}

/// Where the code a verify typed came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeSource {
    /// From mail number `n` (1-based) in the browser's inbox.
    Mail(usize),
    /// A code no email carried (`otp = "wrong"`, or no email had arrived).
    Wrong,
    /// Digits written in the scenario.
    Literal,
    /// A code-like string its browser saw (`sees = "everything"`): where.
    Seen(String),
    /// Not a code at all (`sees = "everything"`): empty, too short, too
    /// long, or not digits.
    Malformed,
}

/// What a statement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlOutcome {
    /// BEGIN or COMMIT went through.
    Done,
    /// Rows changed or returned.
    Rows(usize),
    /// It failed.
    Error(String),
}

impl fmt::Display for SqlOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlOutcome::Done => f.write_str("ok"),
            SqlOutcome::Rows(1) => f.write_str("1 row"),
            SqlOutcome::Rows(n) => write!(f, "{n} rows"),
            SqlOutcome::Error(e) => write!(f, "ERROR {e}"),
        }
    }
}

/// A database state when no request was in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbState {
    /// `(email, temp_id)` of every pending registration, sorted.
    pub pending: Vec<(String, String)>,
    /// Every account's email, sorted.
    pub accounts: Vec<String>,
}

/// What a live server really answered: the redirects a browser followed,
/// each one's status and location, and the final page's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http {
    /// The redirects, in order.
    pub redirects: Vec<(u16, String)>,
    /// The final page's status.
    pub status: u16,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// A browser sent a request.
    Sent {
        /// Signup, verify or login.
        kind: Kind,
        /// The form's email.
        email: Email,
        /// Whether the sending browser owns `email` (reads its mailbox).
        owner: bool,
        /// The typed code (verify); never printed.
        otp: Option<Otp>,
        /// Where it came from (verify).
        source: Option<CodeSource>,
        /// The password field (signup, verify, login); never printed.
        password: String,
        /// What the request's cookie held.
        cookie: Cookie,
        /// A live target's route, as its file writes it (placeholders
        /// unfilled, so that no code is printed); `None`: `/` and the kind.
        route: Option<String>,
    },
    /// The handler loaded a server-side session.
    SessionLoad(SessionData),
    /// The handler saved a server-side session.
    SessionSave(SessionData),
    /// The handler read or wrote its worker's memory.
    Memory,
    /// An SQL statement ran.
    Sql {
        /// The statement, as the flow wrote it.
        sql: &'static str,
        /// Rows, or the error.
        outcome: SqlOutcome,
    },
    /// An injected fault made a statement fail.
    Fault {
        /// 1-based position among the request's statements.
        statement: u32,
        /// The error.
        error: String,
    },
    /// The mail server accepted an email (the reply to DATA): the mail
    /// counts as sent from this instant.
    MailSent {
        /// 1-based mail number.
        mail: usize,
        /// The recipient.
        to: Email,
        /// The code; never printed.
        otp: Otp,
        /// The registration it belongs to.
        temp_id: String,
        /// Lost by a `mail` fault.
        lost: bool,
        /// Live, when the app's mail names no request and several for
        /// its address were in flight: the ones that may have sent it (the
        /// event then names none). Empty otherwise.
        senders: Vec<usize>,
    },
    /// The mail server accepted a mail that carries no code (a welcome, an
    /// "account verified"): shown, never typed.
    MailWithoutCode {
        /// The recipient.
        to: Email,
        /// Its first words.
        words: String,
    },
    /// The handler waited on the clock (SMTP latency, a busy database).
    Waited(&'static str),
    /// The process died during the SMTP send: the mail never went out.
    MailCut {
        /// Its number.
        mail: usize,
    },
    /// An email reached its address's mailbox.
    MailDelivered {
        /// Its number.
        mail: usize,
        /// The mailbox.
        to: Email,
    },
    /// The handler answered.
    Answered {
        /// The code (and so the status).
        code: Code,
        /// A live server's real answer: the redirects the browser followed
        /// and the final page's status, which need not be the code's own
        /// (a 302 read as `ok`, a 200 page read as `invalid_otp`).
        http: Option<Http>,
        /// The message for people.
        message: String,
        /// The cookie the response sets, if any.
        set_cookie: Option<Cookie>,
    },
    /// A crash fault killed the worker process right after this request's
    /// statement; the request gets no answer.
    Crashed,
    /// The request was in flight on a worker process that died; it gets
    /// no answer.
    DiedWithWorker,
    /// A fresh process replaced the dead worker and ran its recovery.
    Restarted,
    /// The handler panicked.
    Panicked(String),
    /// A response reached a browser that had navigated away from the form
    /// that sent it: dropped, its Set-Cookie never applied.
    Abandoned,
    /// A response reached the browser.
    Delivered {
        /// What the browser's cookie holds now.
        cookie_now: Cookie,
    },
    /// No request was in flight: the database as it stood.
    Quiescent(DbState),
    /// The file's requests are done; the end-of-run probe's logins follow.
    Probe {
        /// The accounts were not observed (a live target with no accounts
        /// query): the probe logs in on every address the file names,
        /// some of which may have no account.
        guessed: bool,
    },
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Simulated time since the scenario started.
    pub at_ms: u64,
    /// 1-based request number (copies numbered in send order), if any.
    pub request: Option<usize>,
    /// The browser involved, if any.
    pub browser: Option<String>,
    /// The worker involved, if any.
    pub worker: Option<usize>,
    /// What happened.
    pub what: What,
}

/// Every event of one run, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// The events.
    pub events: Vec<Event>,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = format!("{}.{:03}s", self.at_ms / 1000, self.at_ms % 1000);
        let who = match (&self.browser, self.worker) {
            (Some(b), Some(w)) => format!("{b} w{w}"),
            (Some(b), None) => b.clone(),
            (None, Some(w)) => format!("w{w}"),
            (None, None) => String::new(),
        };
        // Request 0 is a worker's own start-up work, not a request.
        let req = self
            .request
            .filter(|r| *r != 0)
            .map_or(String::new(), |r| format!("#{r}"));
        write!(f, "{secs:>9} {who:<7} {req:<4} ")?;
        match &self.what {
            What::Sent {
                kind,
                email,
                owner,
                source,
                cookie,
                route,
                ..
            } => {
                match route {
                    Some(route) if *route != format!("/{kind}") => write!(f, "-> POST {route} ({kind}) email={email}")?,
                    _ => write!(f, "-> POST /{kind} email={email}")?,
                }
                if !owner {
                    write!(f, " (not its mailbox)")?;
                }
                match source {
                    Some(CodeSource::Mail(n)) => write!(f, " otp=<code of mail {n}>")?,
                    Some(CodeSource::Wrong) => write!(f, " otp=<a code no email carried>")?,
                    Some(CodeSource::Literal) => write!(f, " otp=<digits from the scenario>")?,
                    Some(CodeSource::Seen(place)) => write!(f, " otp=<a code it saw in {place}>")?,
                    Some(CodeSource::Malformed) => write!(f, " otp=<a malformed code>")?,
                    None => {}
                }
                write!(f, " cookie={cookie}")
            }
            What::SessionLoad(s) => write!(f, "session load {s}"),
            What::SessionSave(s) => write!(f, "session save {s}"),
            What::Memory => write!(f, "worker memory: _request_locks"),
            What::Sql { sql, outcome } => {
                f.write_str("SQL")?;
                for word in sql.split_whitespace() {
                    write!(f, " {word}")?;
                }
                write!(f, " -> {outcome}")
            }
            What::Fault { statement, error } => write!(f, "FAULT statement {statement} fails: {error}"),
            What::MailSent {
                mail,
                to,
                temp_id,
                lost,
                senders,
                ..
            } => {
                write!(
                    f,
                    "mail {mail} to {to} for {temp_id} sent (accepted by the mail server)"
                )?;
                if !senders.is_empty() {
                    let ids: Vec<String> = senders.iter().map(|s| format!("#{s}")).collect();
                    write!(f, " (sender ambiguous: {})", ids.join(" or "))?;
                }
                if *lost {
                    write!(f, " (FAULT: never delivered)")?;
                }
                Ok(())
            }
            What::Waited(why) => write!(f, "waits: {why}"),
            What::MailCut { mail } => write!(f, "mail {mail} never goes out: the process died during the send"),
            What::MailWithoutCode { to, words } => write!(f, "a mail to {to} without a code: {words:?}"),
            What::MailDelivered { mail, to } => write!(f, "<- mail {mail} arrives in {to}'s mailbox"),
            What::Answered {
                code,
                http,
                message,
                set_cookie,
            } => {
                match http {
                    Some(Http { redirects, status }) if !redirects.is_empty() || *status != code.status() => {
                        write!(f, "answers ")?;
                        for (status, location) in redirects {
                            write!(f, "{status} -> GET {location}, ")?;
                        }
                        write!(f, "{status}, read as {} {code}: {message}", code.status())?
                    }
                    _ => write!(f, "answers {} {code}: {message}", code.status())?,
                }
                if let Some(c) = set_cookie {
                    write!(f, " [Set-Cookie {c}]")?;
                }
                Ok(())
            }
            What::Crashed => write!(f, "CRASH: the worker process dies; no answer"),
            What::DiedWithWorker => write!(f, "dies with its worker process; no answer"),
            What::Restarted => write!(f, "a fresh worker process starts (recovery)"),
            What::Panicked(m) => write!(f, "PANIC in the handler: {m}"),
            What::Abandoned => write!(
                f,
                "<- response dropped: the browser had left the form for a later submission; its cookie is never set"
            ),
            What::Delivered { cookie_now } => write!(f, "<- response arrives; cookie now {cookie_now}"),
            What::Probe { guessed: false } => write!(
                f,
                "--- end-of-run probe: each person logs in on each address that has an account ---"
            ),
            What::Probe { guessed: true } => write!(
                f,
                "--- end-of-run probe: each person logs in on each address the file names (accounts not observed) ---"
            ),
            What::Quiescent(db) => {
                let pending: Vec<String> = db.pending.iter().map(|(e, t)| format!("{e}={t}")).collect();
                write!(
                    f,
                    "db: pending [{}]; accounts [{}]",
                    pending.join(", "),
                    db.accounts.join(", ")
                )
            }
        }
    }
}

impl Trace {
    /// The network's part of the trace: sends, responses taken or dropped,
    /// and mail arrivals, in order. What the simulator and a live run of
    /// one scenario are compared on; two runs of one live schedule have
    /// the same.
    pub fn network_order(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| {
                let id = e.request.unwrap_or(0);
                match &e.what {
                    What::Sent { kind, .. } => Some(format!("send #{id} {kind}")),
                    What::Delivered { .. } => Some(format!("response #{id}")),
                    What::Abandoned => Some(format!("dropped #{id}")),
                    What::MailDelivered { to, .. } => Some(format!("mail for {to}")),
                    _ => None,
                }
            })
            .collect()
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        for e in &self.events {
            writeln!(text, "{e}")?;
        }
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(what: What) -> String {
        let e = Event {
            at_ms: 1500,
            request: Some(2),
            browser: Some("ana".into()),
            worker: Some(0),
            what,
        };
        e.to_string()
    }

    #[test]
    fn a_live_trace_shows_the_real_route_and_status_beside_the_reading() {
        let sent = |route: Option<&str>| What::Sent {
            kind: Kind::Verify,
            email: Email::parse("ana@example.com").unwrap(),
            owner: true,
            otp: Some(Otp::parse("123456").unwrap()),
            source: Some(CodeSource::Mail(1)),
            password: "s3cret!".into(),
            cookie: Cookie::None,
            route: route.map(str::to_string),
        };
        let line = event(sent(Some("/verify?email={email}")));
        assert!(
            line.contains("-> POST /verify?email={email} (verify) email=ana@example.com"),
            "{line}"
        );
        assert!(!line.contains("123456"), "a code is never printed: {line}");
        assert!(event(sent(Some("/verify"))).contains("-> POST /verify email="));
        assert!(event(sent(None)).contains("-> POST /verify email="));
        let answered = |status: Option<u16>, redirects: &[(u16, &str)]| What::Answered {
            code: Code::Ok,
            http: status.map(|status| Http {
                redirects: redirects.iter().map(|(s, l)| (*s, l.to_string())).collect(),
                status,
            }),
            message: "Welcome".into(),
            set_cookie: None,
        };
        assert!(event(answered(Some(302), &[])).contains("answers 302, read as 200 ok: Welcome"));
        assert!(event(answered(Some(200), &[])).contains("answers 200 ok: Welcome"));
        assert!(event(answered(None, &[])).contains("answers 200 ok: Welcome"));
        let followed = event(answered(Some(200), &[(302, "/verify?email=a%40b"), (303, "/done")]));
        assert!(
            followed.contains("answers 302 -> GET /verify?email=a%40b, 303 -> GET /done, 200, read as 200 ok: Welcome"),
            "{followed}"
        );
    }
}
