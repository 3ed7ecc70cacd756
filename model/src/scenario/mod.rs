//! Scenario files, formats 1 and 2 (`docs/scenario-format.md`): loading
//! and validation. Every error names the file, line and column and says
//! what was expected; nothing is silently ignored.

use std::fmt;
use std::path::{Path, PathBuf};

use otpsim_core::{DbMode, Email, Kind, Otp, Variant};

use crate::invariant::Invariant;

/// A scenario that could not be loaded: where, and what was expected.
pub type ScenarioError = crate::file::FileError;

/// How the app keeps sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    /// Flask's signed cookie: the browser keeps the last cookie to arrive.
    Cookie,
    /// Server-side sessions keyed by a session-id cookie; the last save wins.
    Server,
}

/// The deployment under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// Server processes, 1..=8.
    pub workers: usize,
    /// Where sessions live.
    pub session: SessionMode,
    /// How long an SMTP send blocks the handler.
    pub mail_latency_ms: u64,
    /// Lifetime of a code.
    pub otp_ttl_ms: u64,
    /// Wrong codes allowed per pending registration.
    pub max_attempts: u32,
    /// How the app's driver groups writes into transactions (format 2).
    pub db_mode: DbMode,
}

/// Which code a verify types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtpChoice {
    /// The newest email for the address in the browser's inbox.
    Latest,
    /// The oldest.
    First,
    /// A code no email carried.
    Wrong,
    /// Six digits, as written.
    Literal(Otp),
}

/// One `[[browser]]` (format 2): a browser and the mailboxes it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSpec {
    /// The name requests use in `browser`.
    pub name: String,
    /// Exactly the addresses whose mailbox it reads; empty for an attacker.
    pub owns: Vec<Email>,
    /// The person's password, which the end-of-run probe logs in with;
    /// `None`: the password of the browser's first signup.
    pub password: Option<String>,
    /// Whether it types what it saw (`sees = "everything"`): an attacker
    /// whose verify, where it has no mail of the address to type, tries
    /// every code-like string its browser received (mail of the addresses
    /// it owns, pages, headers, cookies, decoded where readable), then
    /// malformed codes, then a wrong one.
    pub sees_everything: bool,
}

/// One `[[request]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSpec {
    /// Simulated send time.
    pub at_ms: u64,
    /// The browser (one cookie jar).
    pub browser: String,
    /// Signup, verify or login.
    pub kind: Kind,
    /// The address.
    pub email: Email,
    /// The password field (signup, login; on a verify, typed again).
    pub password: String,
    /// The code (verify).
    pub otp: OtpChoice,
    /// Identical copies sent at the same instant.
    pub repeat: u32,
    /// A pinned worker, or round-robin.
    pub worker: Option<usize>,
    /// Extra time before the response arrives.
    pub response_delay_ms: u64,
    /// Extra time before this request's email arrives.
    pub email_delay_ms: u64,
    /// How the page sends it (format 2).
    pub via: Via,
}

impl RequestSpec {
    /// A request no file wrote (the end-of-run probe's login, `stress`'s
    /// browsers): sent once by `fetch`, on no pinned worker, with no delay.
    pub fn fetch(at_ms: u64, browser: &str, kind: Kind, email: Email, password: &str) -> RequestSpec {
        RequestSpec {
            at_ms,
            browser: browser.to_string(),
            kind,
            email,
            password: password.to_string(),
            otp: OtpChoice::Latest,
            repeat: 1,
            worker: None,
            response_delay_ms: 0,
            email_delay_ms: 0,
            via: Via::Fetch,
        }
    }
}

/// How a page sends a request: what a browser does with an earlier one
/// still in flight when the user submits again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Via {
    /// `fetch()` or XHR from a script: every response is taken, in the
    /// order they arrive (each one's Set-Cookie applied).
    #[default]
    Fetch,
    /// A plain HTML form: submitting is a navigation, and a later
    /// navigation of the same browser abandons it: its response is dropped
    /// and its Set-Cookie never applied (measured in Chromium).
    Form,
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// An SQL statement fails with this error.
    Db(DbFault),
    /// The worker dies right after the statement.
    Crash,
    /// The request's email is never delivered.
    Mail,
}

/// The SQLite errors a `db` fault can raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DbFault {
    /// SQLITE_BUSY
    Busy,
    /// SQLITE_IOERR
    Io,
    /// SQLITE_FULL
    Full,
}

/// Which statement a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StatementChoice {
    /// The n-th (1-based).
    Nth(u32),
    /// Each position in turn, one run per position.
    Every,
}

/// One `[[fault]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpec {
    /// What it does.
    pub kind: FaultKind,
    /// 0-based index into [`Scenario::requests`].
    pub request: usize,
    /// Which statement (db and crash).
    pub statement: StatementChoice,
}

/// What a variant is expected to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    /// No explored schedule violates a checked invariant.
    Pass,
    /// Some schedule violates some checked invariant.
    Fail,
    /// Some schedule violates this one.
    FailOn(Invariant),
}

impl Expectation {
    /// Whether a run or a sweep that broke `broken` meets it.
    pub fn met_by(self, broken: &std::collections::BTreeSet<crate::invariant::Invariant>) -> bool {
        match self {
            Expectation::Pass => broken.is_empty(),
            Expectation::Fail => !broken.is_empty(),
            Expectation::FailOn(i) => broken.contains(&i),
        }
    }

    /// Whether a sweep that broke `broken` meets it, judged only on what
    /// can be seen: `None` if it is about an invariant in
    /// `not_observable` (a live target that cannot read it).
    pub fn judged(
        self,
        broken: &std::collections::BTreeSet<crate::invariant::Invariant>,
        not_observable: &[crate::invariant::Invariant],
    ) -> Option<bool> {
        match self {
            Expectation::FailOn(i) if not_observable.contains(&i) => None,
            e => Some(e.met_by(broken)),
        }
    }

    /// What was found, in an expectation's words: `pass`, or `fail:` and
    /// the broken invariants.
    pub fn found(broken: &std::collections::BTreeSet<crate::invariant::Invariant>) -> String {
        if broken.is_empty() {
            "pass".to_string()
        } else {
            let names: Vec<&str> = broken.iter().map(|i| i.name()).collect();
            format!("fail:{}", names.join(","))
        }
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::Pass => f.pad("pass"),
            Expectation::Fail => f.pad("fail"),
            Expectation::FailOn(i) => f.pad(&format!("fail:{i}")),
        }
    }
}

/// A loaded, validated scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Where it came from.
    pub path: PathBuf,
    /// The file format, 1 or 2.
    pub format: u8,
    /// Its name.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// The browsers declared with `[[browser]]` (format 2).
    pub browsers: Vec<BrowserSpec>,
    /// The deployment.
    pub deployment: Deployment,
    /// The requests, in file order.
    pub requests: Vec<RequestSpec>,
    /// The faults.
    pub faults: Vec<FaultSpec>,
    /// Interleavings tried per variant.
    pub schedules: u32,
    /// Base seed.
    pub seed: u64,
    /// A pinned schedule: the choices of the engine's choice scheduler.
    /// When set, `check` runs exactly this one schedule.
    pub choices: Option<Vec<u8>>,
    /// The invariants checked.
    pub invariants: Vec<Invariant>,
    /// Expected outcome per variant, in file order.
    pub expect: Vec<(Variant, Expectation)>,
    /// Whether the end-of-run probe logs everyone in (`[probe] logins`).
    pub probe: bool,
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let bytes = std::fs::read(path).map_err(|e| ScenarioError::unreadable(path, e))?;
        Self::from_bytes(path, bytes)
    }

    /// Validates the bytes of a scenario file; `path` is only for messages.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Scenario, ScenarioError> {
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let valid = std::str::from_utf8(&e.as_bytes()[..at]).unwrap_or("");
            Loader {
                file: TomlFile { path, text: valid },
            }
            .error(at, "the file is not UTF-8 text; expected a TOML scenario")
        })?;
        Self::parse(path, &text)
    }

    /// Validates scenario text; `path` is only for messages.
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        Loader {
            file: TomlFile { path, text },
        }
        .scenario()
    }
}

/// The password of a request whose file gives none.
pub const DEFAULT_PASSWORD: &str = "s3cret!";

impl Scenario {
    /// The addresses whose mailbox `browser` reads: those its `[[browser]]`
    /// table lists, or without a table the addresses it signs up for (or
    /// asks a code again for).
    pub fn owns(&self, browser: &str) -> Vec<Email> {
        if let Some(b) = self.browsers.iter().find(|b| b.name == browser) {
            return b.owns.clone();
        }
        let mut owned: Vec<Email> = self
            .requests
            .iter()
            .filter(|r| r.browser == browser && r.kind.mails())
            .map(|r| r.email.clone())
            .collect();
        owned.sort();
        owned.dedup();
        owned
    }

    /// Whether `browser` types what it saw (`sees = "everything"`).
    pub fn sees_everything(&self, browser: &str) -> bool {
        self.browsers.iter().any(|b| b.name == browser && b.sees_everything)
    }

    /// The password `browser` logs in with at the end-of-run probe: its
    /// `[[browser]]` password, else that of its first signup, else that of
    /// its first request (every request carries one).
    pub fn password_of(&self, browser: &str) -> Option<&str> {
        if let Some(p) = self
            .browsers
            .iter()
            .find(|b| b.name == browser)
            .and_then(|b| b.password.as_deref())
        {
            return Some(p);
        }
        // A resend's password is itself this one.
        let mine = || {
            self.requests
                .iter()
                .filter(|r| r.browser == browser && r.kind != Kind::Resend)
        };
        mine()
            .find(|r| r.kind == Kind::Signup)
            .or_else(|| mine().next())
            .map(|r| r.password.as_str())
    }

    /// Gives each resend the password its browser's signup form holds
    /// ([`Scenario::password_of`], else the default one), which a flow
    /// without a resend of its own sends as that signup again.
    pub fn fill_resend_passwords(&mut self) {
        let passwords: Vec<Option<String>> = self
            .requests
            .iter()
            .map(|r| {
                (r.kind == Kind::Resend).then(|| self.password_of(&r.browser).unwrap_or(DEFAULT_PASSWORD).to_string())
            })
            .collect();
        for (r, p) in self.requests.iter_mut().zip(passwords) {
            if let Some(p) = p {
                r.password = p;
            }
        }
    }

    /// Every person (browser) of the file: the declared ones, then the
    /// others in the order they first send.
    pub fn people(&self) -> Vec<&str> {
        let mut people: Vec<&str> = self.browsers.iter().map(|b| b.name.as_str()).collect();
        for r in &self.requests {
            if !people.contains(&r.browser.as_str()) {
                people.push(&r.browser);
            }
        }
        people
    }
}

mod discovery;
mod loader;
mod printer;
#[cfg(test)]
mod tests;

pub use crate::file::line_column;
use crate::file::TomlFile;
pub use crate::file::{format_duration, parse_duration};
pub use discovery::{discover, DiscoveryError};
use loader::Loader;
