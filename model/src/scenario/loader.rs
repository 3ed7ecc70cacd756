//! The raw TOML shape and the loader that validates it, every error
//! located at its line and column.

use std::collections::BTreeMap;

use otpsim_core::{DbMode, Email, Kind, Otp, Variant};
use serde::Deserialize;
use toml::Spanned;

use crate::file::TomlFile;

use super::*;

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
    sees: Option<S<String>>,
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

pub(super) struct Loader<'a> {
    pub(super) file: TomlFile<'a>,
}

impl Loader<'_> {
    pub(super) fn error(&self, offset: usize, message: impl Into<String>) -> ScenarioError {
        self.file.error(offset, message)
    }

    fn at<T>(&self, value: &S<T>, message: impl Into<String>) -> ScenarioError {
        self.file.at(value, message)
    }

    pub(super) fn scenario(&self) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = self.file.parse()?;
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
        let mut scenario = Scenario {
            path: self.file.path.to_path_buf(),
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
        };
        scenario.fill_resend_passwords();
        Ok(scenario)
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
        let sees_everything = match b.sees.as_ref().map(|s| (s, s.get_ref().as_str())) {
            None | Some((_, "mail")) => false,
            Some((_, "everything")) => true,
            Some((s, other)) => {
                return Err(self.at(
                    s,
                    format!("`sees = {other:?}`; expected \"mail\" (the default: it types codes from its mailboxes) or \"everything\""),
                ))
            }
        };
        Ok(BrowserSpec {
            name: b.name.get_ref().clone(),
            owns,
            password,
            sees_everything,
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
            "resend" => {
                self.needs_format_2(format, &r.kind, "kind = \"resend\"")?;
                Kind::Resend
            }
            other => {
                return Err(self.at(
                    &r.kind,
                    format!("kind {other:?}; expected \"signup\", \"verify\", \"login\" or \"resend\""),
                ))
            }
        };
        let email = Email::parse(r.email.get_ref()).map_err(|e| self.at(&r.email, e.to_string()))?;
        let otp = match (&r.otp, kind) {
            (Some(o), Kind::Signup | Kind::Login | Kind::Resend) => {
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
        match (&r.password, kind) {
            (Some(p), Kind::Verify) => self.needs_format_2(format, p, "`password` on a verify")?,
            (Some(p), Kind::Resend) => {
                return Err(self.at(
                    p,
                    "a resend carries no password: a flow without a resend of its own takes it as its browser's signup sent again, with the password of the browser's [[browser]] table or first signup",
                ))
            }
            _ => {}
        }
        let password = r
            .password
            .as_ref()
            .map_or(DEFAULT_PASSWORD.to_string(), |p| p.get_ref().clone());
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
        if kind == FaultKind::Mail && !requests[request].kind.mails() {
            return Err(self.at(
                &f.request,
                "a mail fault must name a signup or a resend (only they send email)",
            ));
        }
        Ok(FaultSpec {
            kind,
            request,
            statement,
        })
    }
}
