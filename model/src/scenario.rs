//! Scenario files, formats 1 and 2 (`docs/scenario-format.md`): loading
//! and validation. Every error names the file, line and column and says
//! what was expected; nothing is silently ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use otpsim_core::{DbMode, Email, Kind, Otp, Variant};
use serde::Deserialize;
use toml::Spanned;

use crate::invariant::Invariant;

/// A scenario that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ScenarioError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

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
        let bytes = std::fs::read(path).map_err(|e| ScenarioError {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("cannot read the file: {e}"),
        })?;
        Self::from_bytes(path, bytes)
    }

    /// Validates the bytes of a scenario file; `path` is only for messages.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Scenario, ScenarioError> {
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let valid = std::str::from_utf8(&e.as_bytes()[..at]).unwrap_or("");
            Loader { path, text: valid }.error(at, "the file is not UTF-8 text; expected a TOML scenario")
        })?;
        Self::parse(path, &text)
    }

    /// Validates scenario text; `path` is only for messages.
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        Loader { path, text }.scenario()
    }
}

impl Scenario {
    /// The addresses whose mailbox `browser` reads: those its `[[browser]]`
    /// table lists, or without a table the addresses it signs up for.
    pub fn owns(&self, browser: &str) -> Vec<Email> {
        if let Some(b) = self.browsers.iter().find(|b| b.name == browser) {
            return b.owns.clone();
        }
        let mut owned: Vec<Email> = self
            .requests
            .iter()
            .filter(|r| r.browser == browser && r.kind == Kind::Signup)
            .map(|r| r.email.clone())
            .collect();
        owned.sort();
        owned.dedup();
        owned
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
        let mine = || self.requests.iter().filter(|r| r.browser == browser);
        mine()
            .find(|r| r.kind == Kind::Signup)
            .or_else(|| mine().next())
            .map(|r| r.password.as_str())
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

    /// The scenario as a file that loads back to the same
    /// scenario (defaults written out, so a reader sees every setting).
    pub fn to_toml(&self) -> String {
        use std::fmt::Write as _;
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let d = &self.deployment;
        let mut out = String::new();
        if self.format != 1 {
            let _ = writeln!(out, "format = {}", self.format);
        }
        let _ = writeln!(out, "name = {}", q(&self.name));
        if !self.description.is_empty() {
            let _ = writeln!(out, "description = {}", q(&self.description));
        }
        for b in &self.browsers {
            let owns: Vec<String> = b.owns.iter().map(|e| q(e.as_str())).collect();
            let _ = writeln!(
                out,
                "\n[[browser]]\nname = {}\nowns = [{}]",
                q(&b.name),
                owns.join(", ")
            );
            if let Some(p) = &b.password {
                let _ = writeln!(out, "password = {}", q(p));
            }
        }
        let session = match d.session {
            SessionMode::Cookie => "cookie",
            SessionMode::Server => "server",
        };
        let _ = writeln!(
            out,
            "\n[deployment]\nworkers = {}\nsession = {}\nmail_latency = {}\notp_ttl = {}\nmax_attempts = {}",
            d.workers,
            q(session),
            q(&format_duration(d.mail_latency_ms)),
            q(&format_duration(d.otp_ttl_ms)),
            d.max_attempts
        );
        if d.db_mode != DbMode::Autocommit {
            let _ = writeln!(out, "db_mode = {}", q(d.db_mode.as_str()));
        }
        for r in &self.requests {
            let kind = r.kind.as_str();
            let _ = writeln!(
                out,
                "\n[[request]]\nat = {}\nbrowser = {}\nkind = {}",
                q(&format_duration(r.at_ms)),
                q(&r.browser),
                q(kind)
            );
            let _ = writeln!(out, "email = {}", q(r.email.as_str()));
            if r.kind != Kind::Verify || self.format >= 2 {
                let _ = writeln!(out, "password = {}", q(&r.password));
            }
            match r.kind {
                Kind::Signup | Kind::Login => {}
                Kind::Verify => {
                    let otp = match &r.otp {
                        OtpChoice::Latest => "latest",
                        OtpChoice::First => "first",
                        OtpChoice::Wrong => "wrong",
                        OtpChoice::Literal(o) => o.digits(),
                    };
                    let _ = writeln!(out, "otp = {}", q(otp));
                }
            }
            if r.repeat != 1 {
                let _ = writeln!(out, "repeat = {}", r.repeat);
            }
            if let Some(w) = r.worker {
                let _ = writeln!(out, "worker = {w}");
            }
            if r.response_delay_ms != 0 {
                let _ = writeln!(out, "response_delay = {}", q(&format_duration(r.response_delay_ms)));
            }
            if r.email_delay_ms != 0 {
                let _ = writeln!(out, "email_delay = {}", q(&format_duration(r.email_delay_ms)));
            }
            if r.via == Via::Form {
                let _ = writeln!(out, "via = \"form\"");
            }
        }
        for f in &self.faults {
            let (kind, error) = match f.kind {
                FaultKind::Db(DbFault::Busy) => ("db", Some("busy")),
                FaultKind::Db(DbFault::Io) => ("db", Some("io")),
                FaultKind::Db(DbFault::Full) => ("db", Some("full")),
                FaultKind::Crash => ("crash", None),
                FaultKind::Mail => ("mail", None),
            };
            let _ = writeln!(out, "\n[[fault]]\nkind = {}\nrequest = {}", q(kind), f.request + 1);
            match (f.kind, f.statement) {
                (FaultKind::Mail, _) => {}
                (_, StatementChoice::Nth(n)) => {
                    let _ = writeln!(out, "statement = {n}");
                }
                (_, StatementChoice::Every) => {
                    let _ = writeln!(out, "statement = \"every\"");
                }
            }
            if let Some(e) = error {
                let _ = writeln!(out, "error = {}", q(e));
            }
        }
        let section = if self.format >= 2 { "schedules" } else { "explore" };
        let _ = writeln!(
            out,
            "\n[{section}]\nschedules = {}\nseed = {}",
            self.schedules, self.seed
        );
        if let Some(choices) = &self.choices {
            let list: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
            let _ = writeln!(out, "choices = [{}]", list.join(", "));
        }
        if self.invariants != Invariant::ALL {
            let names: Vec<String> = self.invariants.iter().map(|i| q(i.name())).collect();
            let _ = writeln!(out, "\n[check]\ninvariants = [{}]", names.join(", "));
        }
        if !self.probe {
            let _ = writeln!(out, "\n[probe]\nlogins = false");
        }
        let _ = writeln!(out, "\n[expect]");
        for (variant, expectation) in &self.expect {
            let _ = writeln!(out, "{variant} = {}", q(&expectation.to_string()));
        }
        out
    }
}

// ---- raw TOML shape -------------------------------------------------------

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    format: Option<S<i64>>,
    name: S<String>,
    description: Option<String>,
    #[serde(default, rename = "browser")]
    browsers: Vec<S<RawBrowser>>,
    deployment: Option<S<RawDeployment>>,
    #[serde(default, rename = "request")]
    requests: Vec<S<RawRequest>>,
    #[serde(default, rename = "fault")]
    faults: Vec<S<RawFault>>,
    explore: Option<S<RawExplore>>,
    schedules: Option<S<RawExplore>>,
    check: Option<RawCheck>,
    probe: Option<S<RawProbe>>,
    expect: S<BTreeMap<String, S<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    logins: S<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBrowser {
    name: S<String>,
    owns: S<Vec<S<toml::Value>>>,
    password: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDeployment {
    workers: Option<S<i64>>,
    session: Option<S<String>>,
    mail_latency: Option<S<String>>,
    otp_ttl: Option<S<String>>,
    max_attempts: Option<S<i64>>,
    db_mode: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    at: S<String>,
    browser: Option<S<String>>,
    kind: S<String>,
    email: S<String>,
    password: Option<S<String>>,
    otp: Option<S<String>>,
    repeat: Option<S<i64>>,
    worker: Option<S<i64>>,
    response_delay: Option<S<String>>,
    email_delay: Option<S<String>>,
    via: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    kind: S<String>,
    request: S<i64>,
    statement: Option<S<toml::Value>>,
    error: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExplore {
    schedules: Option<S<i64>>,
    seed: Option<S<i64>>,
    choices: Option<S<Vec<S<i64>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    invariants: S<Vec<S<String>>>,
}

// ---- validation -----------------------------------------------------------

/// The 1-based line and column of byte `offset` in `text`: where an error
/// in a TOML file (a scenario, a target) points.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

struct Loader<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Loader<'_> {
    fn error(&self, offset: usize, message: impl Into<String>) -> ScenarioError {
        let (line, column) = line_column(self.text, offset);
        ScenarioError {
            file: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    fn at<T>(&self, value: &S<T>, message: impl Into<String>) -> ScenarioError {
        self.error(value.span().start, message)
    }

    fn scenario(&self) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = toml::from_str(self.text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            self.error(offset, e.message().trim_end().to_string())
        })?;
        let format = match &raw.format {
            None => 1,
            Some(f) => match f.get_ref() {
                1 => 1,
                2 => 2,
                n => return Err(self.at(f, format!("format {n}; expected 1 or 2"))),
            },
        };
        if raw.name.get_ref().trim().is_empty() {
            return Err(self.at(&raw.name, "`name` is empty; expected a one-line title"));
        }
        let mut browsers: Vec<BrowserSpec> = Vec::new();
        for b in &raw.browsers {
            self.needs_format_2(format, b, "a [[browser]] table")?;
            let spec = self.browser(b)?;
            if browsers.iter().any(|o| o.name == spec.name) {
                return Err(self.at(&b.get_ref().name, format!("browser {:?} is declared twice", spec.name)));
            }
            browsers.push(spec);
        }
        let deployment = self.deployment(format, raw.deployment.as_ref())?;
        let mut requests = Vec::new();
        for r in &raw.requests {
            requests.push(self.request(r, &deployment, format)?);
        }
        if requests.is_empty() {
            return Err(self.error(0, "no [[request]]; expected at least one"));
        }
        let faults = raw
            .faults
            .iter()
            .map(|f| self.fault(f, &requests))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(second) = raw
            .faults
            .iter()
            .zip(&faults)
            .filter(|(_, f)| f.statement == StatementChoice::Every)
            .nth(1)
        {
            return Err(self.at(second.0, "only one fault may use statement = \"every\""));
        }
        // `[schedules]` is format 2's name for format 1's `[explore]`.
        let explore = match (&raw.explore, &raw.schedules) {
            (Some(_), Some(second)) => {
                return Err(self.at(second, "[schedules] and [explore] are one section; keep [schedules]"))
            }
            (None, Some(section)) => {
                self.needs_format_2(format, section, "[schedules]")?;
                Some(section.get_ref())
            }
            (section, None) => section.as_ref().map(|s| s.get_ref()),
        };
        let choices = match explore.and_then(|e| e.choices.as_ref()) {
            None => None,
            Some(list) => Some(
                list.get_ref()
                    .iter()
                    .map(|c| self.int_in(c, 0, 255, "a choice").map(|c| c as u8))
                    .collect::<Result<Vec<u8>, _>>()?,
            ),
        };
        let (schedules, seed) = match explore {
            None => (200, 1),
            Some(e) => (
                match &e.schedules {
                    Some(s) => self.int_in(s, 1, 1_000_000, "`schedules`")? as u32,
                    None => 200,
                },
                match &e.seed {
                    Some(s) => self.int_in(s, 0, i64::MAX, "`seed`")? as u64,
                    None => 1,
                },
            ),
        };
        let invariants = match &raw.check {
            None => Invariant::ALL.to_vec(),
            Some(c) => {
                let mut list = Vec::new();
                for name in c.invariants.get_ref() {
                    let inv = self.invariant(name)?;
                    if list.contains(&inv) {
                        return Err(self.at(name, format!("invariant {inv} is listed twice")));
                    }
                    list.push(inv);
                }
                if list.is_empty() {
                    return Err(self.at(&c.invariants, "`invariants` is empty; expected at least one name"));
                }
                list
            }
        };
        let mut expect = Vec::new();
        for (name, value) in raw.expect.get_ref() {
            let variant: Variant = name.parse().map_err(|e| self.at(value, format!("in [expect]: {e}")))?;
            let expectation = match value.get_ref().as_str() {
                "pass" => Expectation::Pass,
                "fail" => Expectation::Fail,
                other => match other.strip_prefix("fail:") {
                    Some(inv) => {
                        let inv = self.invariant(&S::new(value.span(), inv.to_string()))?;
                        if !invariants.contains(&inv) {
                            return Err(self.at(
                                value,
                                format!("expects a failure of {inv}, which [check] does not check"),
                            ));
                        }
                        Expectation::FailOn(inv)
                    }
                    None => {
                        return Err(self.at(
                            value,
                            format!("{other:?}: expected \"pass\", \"fail\" or \"fail:<invariant>\""),
                        ))
                    }
                },
            };
            expect.push((variant, expectation));
        }
        if expect.is_empty() {
            return Err(self.at(&raw.expect, "[expect] names no variant; expected e.g. naive = \"fail\""));
        }
        // File order, not the map's alphabetical order.
        expect.sort_by_key(|(v, _)| {
            let name = v.to_string();
            raw.expect.get_ref().get(&name).map_or(usize::MAX, |s| s.span().start)
        });
        let probe = match &raw.probe {
            None => true,
            Some(p) => {
                self.needs_format_2(format, p, "[probe]")?;
                *p.get_ref().logins.get_ref()
            }
        };
        Ok(Scenario {
            path: self.path.to_path_buf(),
            format,
            name: raw.name.into_inner(),
            description: raw.description.unwrap_or_default(),
            browsers,
            deployment,
            requests,
            faults,
            schedules,
            seed,
            choices,
            invariants,
            expect,
            probe,
        })
    }

    fn invariant(&self, name: &S<String>) -> Result<Invariant, ScenarioError> {
        name.get_ref().parse().map_err(|e: String| self.at(name, e))
    }

    fn int_in(&self, value: &S<i64>, min: i64, max: i64, what: &str) -> Result<i64, ScenarioError> {
        let n = *value.get_ref();
        if n < min || n > max {
            return Err(self.at(value, format!("{what} is {n}; expected {min} to {max}")));
        }
        Ok(n)
    }

    fn duration(&self, value: &S<String>, what: &str) -> Result<u64, ScenarioError> {
        parse_duration(value.get_ref()).ok_or_else(|| {
            self.at(
                value,
                format!(
                    "{what} {:?} is not a duration; expected e.g. \"0s\", \"1500ms\", \"3s\", \"2m\"",
                    value.get_ref()
                ),
            )
        })
    }

    fn opt_duration(&self, value: &Option<S<String>>, what: &str, default: u64) -> Result<u64, ScenarioError> {
        value.as_ref().map_or(Ok(default), |v| self.duration(v, what))
    }

    fn deployment(&self, format: u8, raw: Option<&S<RawDeployment>>) -> Result<Deployment, ScenarioError> {
        let empty = RawDeployment::default();
        let d = raw.map_or(&empty, |r| r.get_ref());
        let session = match &d.session {
            None => SessionMode::Cookie,
            Some(s) => match s.get_ref().as_str() {
                "cookie" => SessionMode::Cookie,
                "server" => SessionMode::Server,
                other => return Err(self.at(s, format!("session {other:?}; expected \"cookie\" or \"server\""))),
            },
        };
        Ok(Deployment {
            workers: match &d.workers {
                Some(w) => self.int_in(w, 1, 8, "`workers`")? as usize,
                None => 1,
            },
            session,
            mail_latency_ms: self.opt_duration(&d.mail_latency, "`mail_latency`", 0)?,
            otp_ttl_ms: self.opt_duration(&d.otp_ttl, "`otp_ttl`", 10 * 60 * 1000)?,
            max_attempts: match &d.max_attempts {
                Some(m) => self.int_in(m, 1, 1000, "`max_attempts`")? as u32,
                None => 5,
            },
            db_mode: match &d.db_mode {
                Some(m) => {
                    self.needs_format_2(format, m, "`db_mode`")?;
                    m.get_ref().parse().map_err(|e: String| self.at(m, e))?
                }
                None => DbMode::Autocommit,
            },
        })
    }

    fn needs_format_2<T>(&self, format: u8, at: &S<T>, what: &str) -> Result<(), ScenarioError> {
        if format < 2 {
            return Err(self.at(at, format!("{what} needs `format = 2` at the top of the file")));
        }
        Ok(())
    }

    fn browser(&self, raw: &S<RawBrowser>) -> Result<BrowserSpec, ScenarioError> {
        let b = raw.get_ref();
        if b.name.get_ref().trim().is_empty() {
            return Err(self.at(&b.name, "`name` is empty; expected a name such as \"mallory\""));
        }
        let mut owns: Vec<Email> = Vec::new();
        for item in b.owns.get_ref() {
            let toml::Value::String(text) = item.get_ref() else {
                return Err(self.at(
                    item,
                    format!(
                        "{} in `owns`; expected an address in quotes, such as \"ana@example.com\"",
                        item.get_ref()
                    ),
                ));
            };
            let email = Email::parse(text).map_err(|e| self.at(item, format!("in `owns`: {e}")))?;
            if owns.contains(&email) {
                return Err(self.at(item, format!("{email} is listed twice in `owns`")));
            }
            owns.push(email);
        }
        let password = match &b.password {
            Some(p) if p.get_ref().is_empty() => {
                return Err(self.at(p, "`password` is empty; leave it out for the first signup's"))
            }
            Some(p) => Some(p.get_ref().clone()),
            None => None,
        };
        Ok(BrowserSpec {
            name: b.name.get_ref().clone(),
            owns,
            password,
        })
    }

    fn request(&self, raw: &S<RawRequest>, deployment: &Deployment, format: u8) -> Result<RequestSpec, ScenarioError> {
        let r = raw.get_ref();
        let kind = match r.kind.get_ref().as_str() {
            "signup" => Kind::Signup,
            "verify" => Kind::Verify,
            "login" => {
                self.needs_format_2(format, &r.kind, "kind = \"login\"")?;
                Kind::Login
            }
            other => {
                return Err(self.at(
                    &r.kind,
                    format!("kind {other:?}; expected \"signup\", \"verify\" or \"login\""),
                ))
            }
        };
        let email = Email::parse(r.email.get_ref()).map_err(|e| self.at(&r.email, e.to_string()))?;
        let otp = match (&r.otp, kind) {
            (Some(o), Kind::Signup | Kind::Login) => {
                return Err(self.at(o, format!("`otp` is for verify requests only, not {kind}")))
            }
            (None, _) => OtpChoice::Latest,
            (Some(o), Kind::Verify) => match o.get_ref().as_str() {
                "latest" => OtpChoice::Latest,
                "first" => OtpChoice::First,
                "wrong" => OtpChoice::Wrong,
                digits => OtpChoice::Literal(Otp::parse(digits).map_err(|_| {
                    self.at(
                        o,
                        format!("otp {digits:?}; expected \"latest\", \"first\", \"wrong\" or 4 to 20 digits"),
                    )
                })?),
            },
        };
        if let (Some(p), Kind::Verify) = (&r.password, kind) {
            self.needs_format_2(format, p, "`password` on a verify")?;
        }
        let password = r
            .password
            .as_ref()
            .map_or("s3cret!".to_string(), |p| p.get_ref().clone());
        if password.is_empty() {
            return Err(self.at(
                r.password.as_ref().expect("set"),
                "`password` is empty; leave it out for the default",
            ));
        }
        let worker = match &r.worker {
            Some(w) => Some(self.int_in(w, 0, deployment.workers as i64 - 1, "`worker`")? as usize),
            None => None,
        };
        let browser = match &r.browser {
            Some(b) if b.get_ref().trim().is_empty() => {
                return Err(self.at(b, "`browser` is empty; expected a name such as \"b1\""))
            }
            Some(b) => b.get_ref().clone(),
            None => "b1".to_string(),
        };
        Ok(RequestSpec {
            at_ms: self.duration(&r.at, "`at`")?,
            browser,
            kind,
            email,
            password,
            otp,
            repeat: match &r.repeat {
                Some(n) => self.int_in(n, 1, 100, "`repeat`")? as u32,
                None => 1,
            },
            worker,
            response_delay_ms: self.opt_duration(&r.response_delay, "`response_delay`", 0)?,
            email_delay_ms: self.opt_duration(&r.email_delay, "`email_delay`", 0)?,
            via: match &r.via {
                None => Via::Fetch,
                Some(v) => {
                    self.needs_format_2(format, v, "`via`")?;
                    match v.get_ref().as_str() {
                        "fetch" => Via::Fetch,
                        "form" => Via::Form,
                        other => return Err(self.at(v, format!("via {other:?}; expected \"fetch\" or \"form\""))),
                    }
                }
            },
        })
    }

    fn fault(&self, raw: &S<RawFault>, requests: &[RequestSpec]) -> Result<FaultSpec, ScenarioError> {
        let f = raw.get_ref();
        let request = self.int_in(
            &f.request,
            1,
            requests.len() as i64,
            "`request` (a 1-based position in the file)",
        )? as usize
            - 1;
        let kind = match f.kind.get_ref().as_str() {
            "db" => {
                let Some(error) = &f.error else {
                    return Err(self.at(raw, "a db fault needs `error`: \"busy\", \"io\" or \"full\""));
                };
                FaultKind::Db(match error.get_ref().as_str() {
                    "busy" => DbFault::Busy,
                    "io" => DbFault::Io,
                    "full" => DbFault::Full,
                    other => {
                        return Err(self.at(error, format!("error {other:?}; expected \"busy\", \"io\" or \"full\"")))
                    }
                })
            }
            "crash" => FaultKind::Crash,
            "mail" => FaultKind::Mail,
            other => {
                return Err(self.at(
                    &f.kind,
                    format!("fault kind {other:?}; expected \"db\", \"crash\" or \"mail\""),
                ))
            }
        };
        if let (Some(e), false) = (&f.error, matches!(kind, FaultKind::Db(_))) {
            return Err(self.at(e, "`error` is for db faults only"));
        }
        let statement = match (&f.statement, kind) {
            (Some(s), FaultKind::Mail) => return Err(self.at(s, "`statement` is for db and crash faults only")),
            (None, FaultKind::Mail) => StatementChoice::Nth(0),
            (None, _) => return Err(self.at(raw, "this fault needs `statement`: a 1-based position or \"every\"")),
            (Some(s), _) => match s.get_ref() {
                toml::Value::Integer(n) if (1..=64).contains(n) => StatementChoice::Nth(*n as u32),
                toml::Value::String(e) if e == "every" => StatementChoice::Every,
                other => {
                    return Err(self.at(
                        s,
                        format!("statement {other}; expected a position from 1 to 64 or \"every\""),
                    ))
                }
            },
        };
        if kind == FaultKind::Mail && requests[request].kind != Kind::Signup {
            return Err(self.at(
                &f.request,
                "a mail fault must name a signup request (only signup sends email)",
            ));
        }
        Ok(FaultSpec {
            kind,
            request,
            statement,
        })
    }
}

/// A path given as scenarios that holds none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {what}")]
pub struct DiscoveryError {
    /// The path as given.
    pub path: PathBuf,
    /// What is wrong with it.
    pub what: String,
}

/// The scenario files under `paths`, sorted: each file as given, each
/// folder searched recursively for `*.toml`. A path that does not exist,
/// or a folder with no scenario in it, is an error.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, DiscoveryError> {
    fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DiscoveryError> {
        let unreadable = |e: std::io::Error| DiscoveryError {
            path: dir.to_path_buf(),
            what: format!("cannot read the folder: {e}"),
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(unreadable)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(unreadable)?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                collect(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "toml") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            collect(path, &mut found)?;
            if found.is_empty() {
                return Err(DiscoveryError {
                    path: path.clone(),
                    what: "no *.toml scenario files in this folder".to_string(),
                });
            }
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(DiscoveryError {
                path: path.clone(),
                what: "no such file or folder".to_string(),
            });
        }
    }
    Ok(files)
}

/// "0s", "1500ms", "3s", "2m", "1h".
pub fn parse_duration(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// Milliseconds as the shortest duration text that parses back.
pub fn format_duration(ms: u64) -> String {
    match ms {
        0 => "0s".to_string(),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(Path::new("t.toml"), text)
    }

    const MINIMAL: &str =
        "name = \"n\"\n[[request]]\nat = \"0s\"\nkind = \"signup\"\nemail = \"a@x.org\"\n[expect]\nnaive = \"pass\"\n";

    #[test]
    fn a_minimal_file_takes_the_documented_defaults() {
        let s = load(MINIMAL).unwrap();
        assert_eq!(
            s.deployment,
            Deployment {
                workers: 1,
                session: SessionMode::Cookie,
                mail_latency_ms: 0,
                otp_ttl_ms: 600_000,
                max_attempts: 5,
                db_mode: DbMode::Autocommit,
            }
        );
        assert_eq!((s.schedules, s.seed, s.invariants.len()), (200, 1, 10));
        assert!(s.probe, "the end-of-run probe is on unless switched off");
        assert_eq!(s.format, 1);
        assert_eq!(s.requests[0].browser, "b1");
        assert_eq!(s.requests[0].repeat, 1);
    }

    #[test]
    fn errors_point_at_the_line_and_column() {
        let cases = [
            (MINIMAL.replace("at = \"0s\"", "at = \"soon\""), 3, 6, "not a duration"),
            (
                MINIMAL.replace("kind = \"signup\"", "kind = \"signup\"\ncolour = 1"),
                5,
                1,
                "unknown field",
            ),
            (MINIMAL.replace("a@x.org", "nobody"), 5, 9, "not an email"),
            (
                MINIMAL.replace("naive = \"pass\"", "naive = \"maybe\""),
                7,
                9,
                "expected \"pass\"",
            ),
            (MINIMAL.replace("naive =", "seed_fx ="), 7, 11, "unknown variant"),
            (
                format!("{MINIMAL}[[fault]]\nkind = \"db\"\nrequest = 2\nstatement = 1\nerror = \"io\"\n"),
                10,
                11,
                "expected 1 to 1",
            ),
            (
                MINIMAL.replace("[expect]", "[deployment]\nworkers = 9\n[expect]"),
                7,
                11,
                "expected 1 to 8",
            ),
            (MINIMAL.replace("at = \"0s\"\n", ""), 2, 1, "missing field `at`"),
        ];
        for (text, line, column, what) in cases {
            let e = load(&text).unwrap_err();
            assert!(e.message.contains(what), "{e}");
            assert_eq!((e.line, e.column), (line, column), "{e}");
            assert!(e.to_string().starts_with(&format!("t.toml:{line}:{column}: ")));
        }
    }

    const FORMAT_2: &str = "format = 2\nname = \"n\"\n[[browser]]\nname = \"mallory\"\nowns = []\n[[request]]\nat = \"0s\"\nbrowser = \"mallory\"\nkind = \"login\"\nemail = \"a@x.org\"\n[schedules]\nschedules = 3\n[expect]\nnaive = \"pass\"\n";

    #[test]
    fn format_2_loads_owners_logins_and_schedules() {
        let s = load(FORMAT_2).unwrap();
        assert_eq!(s.format, 2);
        assert_eq!(s.owns("mallory"), vec![]);
        assert_eq!(s.requests[0].kind, Kind::Login);
        assert_eq!(s.schedules, 3);
        assert_eq!(s.password_of("mallory"), Some("s3cret!"), "no signup: his login's");
        // A person's probe password: the table's, else the first signup's.
        let p = load(
            &FORMAT_2
                .replace("owns = []", "owns = []\npassword = \"m's\"")
                .replace("[schedules]", "[probe]\nlogins = false\n[schedules]"),
        )
        .unwrap();
        assert_eq!((p.password_of("mallory"), p.probe), (Some("m's"), false));
        assert_eq!(
            load(&p.to_toml()).unwrap(),
            Scenario {
                path: "t.toml".into(),
                ..p
            }
        );
        // An undeclared browser owns what it signs up for.
        let m = load(MINIMAL).unwrap();
        assert_eq!(m.owns("b1"), vec![Email::parse("a@x.org").unwrap()]);
        assert_eq!(
            load(&s.to_toml()).unwrap(),
            Scenario {
                path: "t.toml".into(),
                ..s
            }
        );
    }

    #[test]
    fn format_2_errors_point_at_the_line_and_column() {
        let cases = [
            (
                FORMAT_2.replace("format = 2", "format = 3"),
                1,
                10,
                "format 3; expected 1 or 2",
            ),
            (
                FORMAT_2.replace("owns = []", "owns = \"a@x.org\""),
                5,
                8,
                "invalid type",
            ),
            (
                FORMAT_2.replace("owns = []", "owns = [7]"),
                5,
                9,
                "expected an address in quotes",
            ),
            (
                FORMAT_2.replace("owns = []", "owns = [\"nobody\"]"),
                5,
                9,
                "in `owns`: not an email",
            ),
            (
                FORMAT_2.replace("owns = []", "owns = [\"a@x.org\", \"A@x.org\"]"),
                5,
                20,
                "listed twice",
            ),
            (
                FORMAT_2.replace("[[request]]", "[[browser]]\nname = \"mallory\"\nowns = []\n[[request]]"),
                7,
                8,
                "declared twice",
            ),
            (
                FORMAT_2.replace("kind = \"login\"", "kind = \"login\"\notp = \"latest\""),
                10,
                7,
                "`otp` is for verify requests only, not login",
            ),
            (
                FORMAT_2.replace("format = 2\n", ""),
                2,
                1,
                "a [[browser]] table needs `format = 2`",
            ),
            (
                MINIMAL.replace("kind = \"signup\"", "kind = \"login\""),
                4,
                8,
                "kind = \"login\" needs `format = 2`",
            ),
            (
                FORMAT_2.replace("[schedules]", "[explore]\nseed = 2\n[schedules]"),
                13,
                1,
                "one section",
            ),
            (
                FORMAT_2.replace("[schedules]", "[deployment]\ndb_mode = \"django\"\n[schedules]"),
                12,
                11,
                "expected \"autocommit\" or \"python\"",
            ),
            (
                MINIMAL.replace("[[request]]", "[deployment]\ndb_mode = \"python\"\n[[request]]"),
                3,
                11,
                "`db_mode` needs `format = 2`",
            ),
            (
                FORMAT_2.replace("owns = []", "owns = []\npassword = \"\""),
                6,
                12,
                "`password` is empty",
            ),
            (
                FORMAT_2.replace("[schedules]", "[probe]\nlogins = \"no\"\n[schedules]"),
                12,
                10,
                "invalid type",
            ),
            (
                FORMAT_2.replace("[schedules]", "[probe]\nlogin = false\n[schedules]"),
                12,
                1,
                "unknown field `login`",
            ),
            (
                format!("{MINIMAL}[probe]\nlogins = false\n"),
                8,
                1,
                "[probe] needs `format = 2`",
            ),
        ];
        for (text, line, column, what) in cases {
            let e = load(&text).unwrap_err();
            assert!(e.message.contains(what), "{what:?} not in {e}");
            assert_eq!((e.line, e.column), (line, column), "{e}");
        }
    }

    #[test]
    fn every_corpus_file_prints_back_to_itself() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let mut s = Scenario::load(&path).unwrap();
            s.choices = Some(vec![0, 1, 2, 255]);
            let again = Scenario::parse(&path, &s.to_toml()).unwrap_or_else(|e| panic!("{e}\n{}", s.to_toml()));
            assert_eq!(again, s, "{}", path.display());
        }
    }

    #[test]
    fn durations_parse_and_print_back() {
        for (text, ms) in [
            ("0s", 0),
            ("1500ms", 1500),
            ("3s", 3000),
            ("2m", 120_000),
            ("1h", 3_600_000),
        ] {
            assert_eq!(parse_duration(text), Some(ms));
            assert_eq!(parse_duration(&format_duration(ms)), Some(ms));
        }
        for bad in ["", "3", "s", "1.5s", "-1s", "3 s", "3sec"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
