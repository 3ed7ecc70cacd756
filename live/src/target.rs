//! Target files: how to start, reset, talk to and observe a real server,
//! so that scenario files run against it (`docs/targets.md`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use otpsim_core::{Code, Kind};
use otpsim_model::file::TomlFile;

use crate::clock::{parse_utc, FakeClock, DEFAULT_START_UNIX_MS};
use regex::Regex;
use serde::Deserialize;
use toml::Spanned as S;

/// A target file that could not be loaded: where, and what was expected.
pub type TargetError = otpsim_model::file::FileError;

/// One route: where a kind of request is posted, and its field names.
#[derive(Debug, Clone)]
pub struct Route {
    /// The path, e.g. `/signup`, or `/verify?email={email}`: placeholders
    /// as in `fields`, percent-encoded.
    pub path: String,
    /// The form's field for the address (`None`: the address travels in
    /// the path or in `fields`).
    pub email: Option<String>,
    /// For the password (`None`: the form has none).
    pub password: Option<String>,
    /// For the code (verify): one field, or several that each take one
    /// character (`otp = ["d0", "d1", "d2", "d3"]`, the last taking what
    /// is left); empty when the code travels in the path or `fields`.
    pub otp: Vec<String>,
    /// A page the browser loads before it submits (a template like
    /// `path`): its hidden inputs (Django's `csrfmiddlewaretoken`,
    /// Flask-WTF's `csrf_token`) go with the form, and its cookies into
    /// the jar.
    pub form: Option<String>,
    /// More fields the form has, each a template: `{email}`, `{local}`
    /// (the address before the @), `{password}`, `{otp}`, `{n}` (the
    /// request's number), or a constant (`username = "{local}"`,
    /// `password2 = "{password}"`).
    pub fields: BTreeMap<String, String>,
    /// Answer rules for this route, tried before the global ones: one app
    /// answers a signup and a login to an unverified account alike.
    pub rules: Vec<AnswerRule>,
}

/// What a request puts in its route's templates.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// The address.
    pub email: &'a str,
    /// The password.
    pub password: &'a str,
    /// The typed code, if any.
    pub otp: Option<&'a str>,
    /// The request's number.
    pub n: usize,
}

/// `template` with a request's values in it, percent-encoded for a path
/// if `encode`.
fn fill(template: &str, values: Values, encode: bool) -> String {
    let local = values.email.split('@').next().unwrap_or_default();
    let n = values.n.to_string();
    let mut out = template.to_string();
    for (name, value) in [
        ("{email}", values.email),
        ("{local}", local),
        ("{password}", values.password),
        ("{otp}", values.otp.unwrap_or_default()),
        ("{n}", n.as_str()),
    ] {
        let value = match encode {
            true => form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>(),
            false => value.to_string(),
        };
        out = out.replace(name, &value);
    }
    out
}

impl Route {
    /// The path and the form fields of a request with `values`.
    pub fn request(&self, values: Values) -> (String, Vec<(String, String)>) {
        let mut fields = Vec::new();
        if let Some(name) = &self.email {
            fields.push((name.clone(), values.email.to_string()));
        }
        if let Some(name) = &self.password {
            fields.push((name.clone(), values.password.to_string()));
        }
        if let Some(code) = values.otp {
            let chars: Vec<char> = code.chars().collect();
            for (i, name) in self.otp.iter().enumerate() {
                let part: String = match i + 1 == self.otp.len() {
                    true => chars.iter().skip(i).collect(),
                    false => chars.get(i).map(char::to_string).unwrap_or_default(),
                };
                fields.push((name.clone(), part));
            }
        }
        for (name, template) in &self.fields {
            fields.push((name.clone(), fill(template, values, false)));
        }
        (fill(&self.path, values, true), fields)
    }

    /// The path of the page to load before submitting, if any.
    pub fn form(&self, values: Values) -> Option<String> {
        self.form.as_deref().map(|f| fill(f, values, true))
    }
}

/// The hidden inputs of a page's forms, `(name, value)` in page order: what
/// a browser submits with the fields a person fills in.
pub fn hidden_inputs(page: &str) -> Vec<(String, String)> {
    let tag = Regex::new(r"(?is)<input\b[^>]*>").expect("a fixed pattern");
    let attribute =
        Regex::new(r#"(?is)\b([a-z][a-z0-9_-]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))"#).expect("a fixed pattern");
    let mut inputs = Vec::new();
    for input in tag.find_iter(page) {
        let mut name = None;
        let mut value = String::new();
        let mut hidden = false;
        for a in attribute.captures_iter(input.as_str()) {
            let text = a.get(2).or(a.get(3)).or(a.get(4)).map_or("", |m| m.as_str());
            match a[1].to_ascii_lowercase().as_str() {
                "type" => hidden = text.eq_ignore_ascii_case("hidden"),
                "name" => name = Some(unescape(text)),
                "value" => value = unescape(text),
                _ => {}
            }
        }
        if let (true, Some(name)) = (hidden, name) {
            inputs.push((name, value));
        }
    }
    inputs
}

/// A page's text with its five common entities read.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// How a response maps to the spec's table: a rule.
#[derive(Debug, Clone)]
pub struct AnswerRule {
    /// The status it needs, if any: the final page's, or a redirect's on
    /// the way to it.
    pub status: Option<u16>,
    /// A pattern the final page's text must match, if any.
    pub body: Option<Regex>,
    /// A pattern a redirect's location on the way must match, if any.
    pub location: Option<Regex>,
    /// The code it means.
    pub code: Code,
}

/// What to read from the database after each response.
#[derive(Debug, Clone)]
pub struct Observer {
    /// The file (with `{db}` replaced by the run's database).
    pub db: String,
    /// `(email, temp_id)` of every pending registration, if the database
    /// holds them (an app may keep them in its cookie).
    pub pending: Option<String>,
    /// Every account's email, if the database holds them.
    pub accounts: Option<String>,
    /// The registration a mail's code belongs to (`?1` the address, `?2`
    /// the code), for apps whose mail does not name it.
    pub registration: Option<String>,
}

/// A loaded target.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where it came from.
    pub path: PathBuf,
    /// Its name.
    pub name: String,
    /// The `[expect]` key (a variant) a scenario's expectation for this
    /// target is read from; `None` for an app of one's own, which is
    /// expected to break nothing.
    pub expect: Option<otpsim_core::Variant>,
    /// One instance's command line; placeholders `{port}`, `{smtp_port}`,
    /// `{db}`, `{run_dir}`, `{instance}`, `{session}`, `{otp_ttl}`,
    /// `{otp_ttl_ms}`, `{max_attempts}`, `{otpsim}`, `{target_dir}`, and
    /// the pause's `{pause}`, `{pause_ms}`, `{pause_python}`.
    pub command: Vec<String>,
    /// A command run once per run, before the instances start (a
    /// migration, say), with the same placeholders but `{port}` and
    /// `{instance}`; the run stops if it fails.
    pub setup: Option<Vec<String>>,
    /// The folder the commands run in (placeholders as in `command`);
    /// default: the run's own folder.
    pub cwd: Option<String>,
    /// Extra environment for the command.
    pub env: BTreeMap<String, String>,
    /// A GET path polled until it answers below 500.
    pub ready: String,
    /// How long an instance may take to be ready.
    pub ready_timeout: Duration,
    /// Whether the app can keep sessions on the server (`{session}` =
    /// `server`); else a scenario with server sessions is not runnable.
    pub server_sessions: bool,
    /// Whether the app can keep sessions in its cookie (`{session}` =
    /// `cookie`, the default); else a scenario with cookie sessions is not
    /// runnable, rather than silently run with the app's server sessions.
    pub cookie_sessions: bool,
    /// The route of each kind of request.
    pub routes: BTreeMap<Kind, Route>,
    /// Headers every request carries (e.g. `Accept`).
    pub headers: BTreeMap<String, String>,
    /// The JSON key of the code in a response, if the app answers JSON.
    pub json_code: Option<String>,
    /// The JSON key of the message.
    pub json_message: Option<String>,
    /// Rules tried in order when there is no JSON code.
    pub rules: Vec<AnswerRule>,
    /// How many redirects a browser follows to the final page (`[answer]
    /// redirects`, default 10; 0 reads the redirect itself).
    pub redirects: usize,
    /// A pattern whose first group is the message: tried on the page as
    /// sent, then on its text (tags stripped).
    pub message: Option<Regex>,
    /// The name of the session cookie, to show its payload in traces.
    pub session_cookie: String,
    /// A pattern whose first group is the code in a mail.
    pub mail_code: Regex,
    /// A pattern whose first group is the registration in a mail.
    pub mail_temp_id: Option<Regex>,
    /// The database observer, if the target has one.
    pub observe: Option<Observer>,
    /// How long the executor waits for the server's answers to requests
    /// sent up to an instant before it makes that instant's deliveries
    /// without them.
    pub settle: Duration,
    /// The app's own constants, where it fixes them whatever the scenario
    /// says (`[app]`): the checker then judges by them.
    pub app: AppConstants,
    /// The clock the app's processes read, where the harness controls it
    /// (`[time] clock = "faketime"`).
    pub clock: Option<FakeClock>,
    /// How long the app waits before each of its steps (`--pause`), where
    /// the harness asks it to: [`crate::pause`].
    pub pause: Option<Duration>,
}

/// What an app fixes for itself (`[app]`); `None`: it follows the
/// scenario (through `{otp_ttl}` and `{max_attempts}`, say).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppConstants {
    /// A code's lifetime, in ms.
    pub otp_ttl_ms: Option<u64>,
    /// Wrong codes a registration takes before it locks.
    pub max_attempts: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: S<String>,
    expect: Option<S<String>>,
    start: RawStart,
    routes: BTreeMap<S<String>, S<RawRoute>>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    answer: RawAnswer,
    mail: RawMail,
    observe: Option<RawObserve>,
    #[serde(default)]
    time: RawTime,
    #[serde(default)]
    app: RawApp,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApp {
    otp_ttl: Option<S<String>>,
    max_attempts: Option<S<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStart {
    command: S<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    ready: S<String>,
    ready_timeout: Option<S<String>>,
    #[serde(default)]
    server_sessions: bool,
    #[serde(default = "yes")]
    cookie_sessions: bool,
    setup: Option<S<Vec<String>>>,
    cwd: Option<String>,
}

fn yes() -> bool {
    true
}

/// A field, or several.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMore {
    One(String),
    More(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    path: String,
    email: Option<String>,
    password: Option<String>,
    otp: Option<OneOrMore>,
    form: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnswer {
    json_code: Option<String>,
    json_message: Option<String>,
    message: Option<S<String>>,
    #[serde(default)]
    rule: Vec<RawRule>,
    session_cookie: Option<String>,
    redirects: Option<S<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    status: Option<S<u16>>,
    body: Option<S<String>>,
    location: Option<S<String>>,
    code: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    code: S<String>,
    temp_id: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObserve {
    db: String,
    pending: Option<String>,
    accounts: Option<String>,
    registration: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTime {
    settle: Option<S<String>>,
    clock: Option<S<String>>,
    start: Option<S<String>>,
    speed: Option<S<u32>>,
}

impl Target {
    /// Reads and validates a target file.
    pub fn load(path: &Path) -> Result<Target, TargetError> {
        let text = std::fs::read_to_string(path).map_err(|e| TargetError::unreadable(path, e))?;
        Target::parse(path, &text)
    }

    /// This target with its app waiting `pause` before each step; an error
    /// says why not when no line of its `[start]` takes a pause.
    pub fn with_pause(mut self, pause: Duration) -> Result<Target, String> {
        if !crate::pause::PLACEHOLDERS.iter().any(|p| self.names(p)) {
            return Err(format!(
                "{}: --pause needs a target whose command, cwd or env names {{pause}}, {{pause_ms}} or {{pause_python}} (not only its setup, which runs unpaused), and this one names none (docs/targets.md, \"A pause before each of the app's steps\")",
                self.path.display()
            ));
        }
        self.pause = Some(pause);
        Ok(self)
    }

    /// Whether a line an instance starts with (command, cwd, env) names
    /// `placeholder`. The setup is left out: it runs alone, unpaused.
    pub fn names(&self, placeholder: &str) -> bool {
        self.command
            .iter()
            .chain(self.cwd.iter())
            .chain(self.env.values())
            .any(|line| line.contains(placeholder))
    }

    /// Validates a target file's text.
    pub fn parse(path: &Path, text: &str) -> Result<Target, TargetError> {
        let file = TomlFile { path, text };
        let error = |offset: usize, message: String| file.error(offset, message);
        let raw: Raw = file.parse()?;
        let regex = |s: &S<String>, groups: usize| -> Result<Regex, TargetError> {
            let re = Regex::new(s.get_ref()).map_err(|e| file.at(s, format!("not a regex: {e}")))?;
            if re.captures_len() <= groups {
                return Err(file.at(
                    s,
                    format!("the pattern needs {groups} capture group(s), e.g. (\\d{{6}})"),
                ));
            }
            Ok(re)
        };
        // Bounded, so that no sum of instants overflows and no wait is
        // endless.
        let duration = |s: &Option<S<String>>, default: u64| -> Result<Duration, TargetError> {
            file.duration(s.as_ref(), default, 600_000).map(Duration::from_millis)
        };
        let expect = match &raw.expect {
            None => None,
            Some(key) => Some(
                key.get_ref()
                    .parse::<otpsim_core::Variant>()
                    .map_err(|e| file.at(key, format!("expect: {e}; or leave expect out for an app of your own")))?,
            ),
        };
        for (name, value) in &raw.headers {
            // A Cookie header would replace the browser's jar on the wire,
            // while the trace showed the jar as sent: refused, so that a
            // trace shows only what went out.
            if name.eq_ignore_ascii_case("cookie") {
                return Err(error(
                    0,
                    "[headers] may not set Cookie: each browser sends its own cookie jar; set cookies through the app's own pages".into(),
                ));
            }
            let valid = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
                && reqwest::header::HeaderValue::from_str(value).is_ok();
            if !valid {
                return Err(error(
                    0,
                    format!("[headers] {name:?} = {value:?} is not a valid HTTP header"),
                ));
            }
        }
        if !raw.start.server_sessions && !raw.start.cookie_sessions {
            return Err(error(
                0,
                "[start] offers no session mode: set cookie_sessions or server_sessions to true".into(),
            ));
        }
        if let Some(setup) = &raw.start.setup {
            if setup.get_ref().is_empty() {
                return Err(file.at(setup, "the setup command is empty; expected [\"program\", \"arg\", …]"));
            }
        }
        if raw.start.command.get_ref().is_empty() {
            return Err(error(
                raw.start.command.span().start,
                "the command is empty; expected [\"program\", \"arg\", …]".into(),
            ));
        }
        if !raw.start.ready.get_ref().starts_with('/') {
            return Err(error(
                raw.start.ready.span().start,
                "ready is a path, e.g. \"/\"".into(),
            ));
        }
        let rule = |rule: &RawRule| -> Result<AnswerRule, TargetError> {
            let code = Code::ALL
                .into_iter()
                .find(|c| c.as_str() == rule.code.get_ref())
                .ok_or_else(|| {
                    let names: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
                    file.at(
                        &rule.code,
                        format!(
                            "unknown code {:?}; expected one of {}",
                            rule.code.get_ref(),
                            names.join(", ")
                        ),
                    )
                })?;
            let pattern = |p: &Option<S<String>>| p.as_ref().map(|p| regex(p, 0)).transpose();
            Ok(AnswerRule {
                status: rule.status.as_ref().map(|s| *s.get_ref()),
                body: pattern(&rule.body)?,
                location: pattern(&rule.location)?,
                code,
            })
        };
        let mut routes = BTreeMap::new();
        for (name, route) in &raw.routes {
            let kind = Kind::ALL
                .into_iter()
                .find(|k| k.as_str() == name.get_ref())
                .ok_or_else(|| {
                    error(
                        name.span().start,
                        format!(
                            "unknown route {:?}; expected signup, verify, login or resend",
                            name.get_ref()
                        ),
                    )
                })?;
            let r = route.get_ref();
            if !r.path.starts_with('/') {
                return Err(error(route.span().start, format!("the {kind} path must start with /")));
            }
            let mentions =
                |placeholder: &str| r.path.contains(placeholder) || r.fields.values().any(|v| v.contains(placeholder));
            let otp = match &r.otp {
                None => Vec::new(),
                Some(OneOrMore::One(name)) => vec![name.clone()],
                Some(OneOrMore::More(names)) if names.is_empty() => {
                    return Err(error(
                        route.span().start,
                        format!("the {kind} route's otp lists no field"),
                    ));
                }
                Some(OneOrMore::More(names)) => names.clone(),
            };
            if r.form.as_ref().is_some_and(|f| !f.starts_with('/')) {
                return Err(error(route.span().start, format!("the {kind} form must start with /")));
            }
            if kind == Kind::Verify && otp.is_empty() && !mentions("{otp}") {
                return Err(error(
                    route.span().start,
                    "the verify route never sends the code: give otp = \"field\", or {otp} in the path or a field"
                        .into(),
                ));
            }
            // A verify may take the address from the session (the app's
            // pending signup); a signup or a login must send it.
            if kind != Kind::Verify && r.email.is_none() && !mentions("{email}") && !mentions("{local}") {
                return Err(error(
                    route.span().start,
                    format!("the {kind} route never sends the address: give email = \"field\", or {{email}} in the path or a field"),
                ));
            }
            let rules = r.rule.iter().map(&rule).collect::<Result<Vec<_>, _>>()?;
            routes.insert(
                kind,
                Route {
                    path: r.path.clone(),
                    email: r.email.clone(),
                    password: r.password.clone(),
                    otp,
                    form: r.form.clone(),
                    fields: r.fields.clone(),
                    rules,
                },
            );
        }
        for kind in [Kind::Signup, Kind::Verify] {
            if !routes.contains_key(&kind) {
                return Err(error(
                    0,
                    format!("no [routes] {kind}; signup and verify are required, login is optional"),
                ));
            }
        }
        let rules = raw.answer.rule.iter().map(&rule).collect::<Result<Vec<_>, _>>()?;
        if raw.answer.json_code.is_none() && rules.is_empty() && routes.values().any(|r: &Route| r.rules.is_empty()) {
            return Err(error(
                0,
                "[answer] needs json_code = \"…\" or at least one [[answer.rule]]".into(),
            ));
        }
        let message = match &raw.answer.message {
            Some(m) => Some(regex(m, 1)?),
            None => None,
        };
        let mail_temp_id = match &raw.mail.temp_id {
            Some(t) => Some(regex(t, 1)?),
            None => None,
        };
        Ok(Target {
            path: path.to_path_buf(),
            name: raw.name.into_inner(),
            expect,
            command: raw.start.command.into_inner(),
            setup: raw.start.setup.map(S::into_inner),
            cwd: raw.start.cwd,
            env: raw.start.env,
            ready: raw.start.ready.into_inner(),
            ready_timeout: duration(&raw.start.ready_timeout, 20_000)?,
            server_sessions: raw.start.server_sessions,
            cookie_sessions: raw.start.cookie_sessions,
            routes,
            headers: raw.headers,
            json_code: raw.answer.json_code,
            json_message: raw.answer.json_message,
            rules,
            redirects: match &raw.answer.redirects {
                Some(n) if *n.get_ref() > 20 => {
                    return Err(file.at(n, "redirects is at most 20, as in a browser"));
                }
                n => n.as_ref().map_or(10, |n| *n.get_ref()),
            },
            message,
            session_cookie: raw.answer.session_cookie.unwrap_or_else(|| "session".to_string()),
            mail_code: regex(&raw.mail.code, 1)?,
            mail_temp_id,
            observe: raw.observe.map(|o| Observer {
                db: o.db,
                pending: o.pending,
                accounts: o.accounts,
                registration: o.registration,
            }),
            settle: duration(&raw.time.settle, 1000)?,
            pause: None,
            clock: match raw.time.clock.as_ref().map(|c| (c, c.get_ref().as_str())) {
                None | Some((_, "real")) => {
                    let set = [
                        raw.time.start.as_ref().map(S::span),
                        raw.time.speed.as_ref().map(S::span),
                    ];
                    if let Some(span) = set.into_iter().flatten().next() {
                        return Err(error(span.start, "start and speed are for clock = \"faketime\"".into()));
                    }
                    None
                }
                Some((_, "faketime")) => Some(FakeClock {
                    start_unix_ms: match &raw.time.start {
                        None => DEFAULT_START_UNIX_MS,
                        Some(s) => parse_utc(s.get_ref()).ok_or_else(|| {
                            file.at(
                                s,
                                format!(
                                    "start {:?}; expected a UTC instant such as \"2026-12-02T10:00:00Z\"",
                                    s.get_ref()
                                ),
                            )
                        })?,
                    },
                    speed: match &raw.time.speed {
                        None => 1,
                        Some(n) if (1..=100).contains(n.get_ref()) => *n.get_ref(),
                        Some(n) => return Err(file.at(n, format!("speed {}; expected 1 to 100", n.get_ref()))),
                    },
                }),
                Some((c, other)) => {
                    return Err(file.at(
                        c,
                        format!("clock {other:?}; expected \"real\" (the default) or \"faketime\""),
                    ))
                }
            },
            app: AppConstants {
                otp_ttl_ms: match &raw.app.otp_ttl {
                    Some(t) => Some(file.duration(Some(t), 0, 24 * 3_600_000)?),
                    None => None,
                },
                max_attempts: match &raw.app.max_attempts {
                    Some(n) if *n.get_ref() == 0 => {
                        return Err(file.at(n, "max_attempts is at least 1"));
                    }
                    n => n.as_ref().map(|n| *n.get_ref()),
                },
            },
        })
    }

    /// The route a `kind` request posts to: its own, or for a resend on an
    /// app with none, the signup's (the browser sends its signup again,
    /// with the password its form held).
    pub fn route(&self, kind: Kind) -> Option<&Route> {
        self.routes.get(&kind).or_else(|| match kind {
            Kind::Resend => self.routes.get(&Kind::Signup),
            _ => None,
        })
    }

    /// The spec's code and the message of the response to a `kind`
    /// request, or why it maps to none: the route's own rules first, then
    /// the global ones. `status` and `body` are the final page's,
    /// `redirects` the redirects followed to it.
    pub fn read_answer(
        &self,
        kind: Kind,
        (status, redirects): (u16, &[(u16, String)]),
        body: &str,
    ) -> Result<(Code, String), String> {
        let text = strip_tags(body);
        let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let from_json = |key: &Option<String>| {
            key.as_ref()
                .and_then(|k| json.as_ref()?.get(k)?.as_str().map(str::to_string))
        };
        let message = from_json(&self.json_message)
            .or_else(|| {
                // On the page as sent (`class="error">([^<]*)`), else on its
                // text.
                let re = self.message.as_ref()?;
                let found = re.captures(body).or_else(|| re.captures(&text))?.get(1)?;
                Some(strip_tags(found.as_str()))
            })
            .unwrap_or_else(|| text.chars().take(200).collect::<String>().trim().to_string());
        if let Some(code) = from_json(&self.json_code) {
            return Code::ALL
                .into_iter()
                .find(|c| c.as_str() == code)
                .map(|c| (c, message.clone()))
                .ok_or_else(|| format!("the answer's code {code:?} is not in the spec's table"));
        }
        let own = self.route(kind).map_or(&[][..], |r| &r.rules[..]);
        own.iter()
            .chain(&self.rules)
            .find(|r| {
                r.status
                    .is_none_or(|s| s == status || redirects.iter().any(|(r, _)| *r == s))
                    && r.body.as_ref().is_none_or(|re| re.is_match(&text))
                    && r.location
                        .as_ref()
                        .is_none_or(|re| redirects.iter().any(|(_, l)| re.is_match(l)))
            })
            .map(|r| (r.code, message.clone()))
            .ok_or_else(|| {
                let chain: String = redirects.iter().map(|(s, l)| format!("{s} to {l:?}, then ")).collect();
                format!("no [[answer.rule]] matches status {chain}{status} with body {message:?}")
            })
    }

    /// Whether the target can observe `invariant`: the database ones need
    /// their `[observe]` queries, the per-registration ones each mail's registration
    /// (named in the mail, or looked up by `[observe] registration`).
    pub fn observes(&self, invariant: otpsim_model::Invariant) -> bool {
        use otpsim_model::Invariant::*;
        let registrations =
            self.mail_temp_id.is_some() || self.observe.as_ref().is_some_and(|o| o.registration.is_some());
        let pending = self.observe.as_ref().is_some_and(|o| o.pending.is_some());
        let accounts = self.observe.as_ref().is_some_and(|o| o.accounts.is_some());
        match invariant {
            // A pending registration is excused by its account.
            SinglePending => pending && accounts,
            OneAccount => accounts,
            NoOrphans => pending && accounts && registrations,
            AttemptsLimited => registrations,
            VerifySucceeds | ClearErrors | NoFalseAccept | NoHijack | OwnerRecovers | CodesExpire => true,
            // The end-of-run probe logs in: without a login route there is
            // no probe, and nothing says whether the owner could.
            OwnerLogsIn => self.routes.contains_key(&otpsim_core::Kind::Login),
        }
    }
}

/// A page's text without its tags, whitespace collapsed.
fn strip_tags(body: &str) -> String {
    let mut text = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        rest = &rest[open..];
        let Some(close) = rest.find('>') else {
            rest = "";
            break;
        };
        let tag = rest[1..close].trim_start().to_ascii_lowercase();
        rest = &rest[close + 1..];
        text.push(' ');
        // What a browser does not show is no message: a debug page's CSS
        // and scripts would otherwise read as its text.
        for hidden in ["style", "script"] {
            if tag.starts_with(hidden) && !tag[hidden.len()..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
                let end = format!("</{hidden}");
                rest = match rest.to_ascii_lowercase().find(&end) {
                    Some(at) => &rest[at..],
                    None => "",
                };
            }
        }
    }
    text.push_str(rest);
    let text = text
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pages_text_leaves_out_its_styles_and_scripts() {
        let page = "<html><head><style>body { color: red }</style><SCRIPT type=x>var a = 1 < 2;</SCRIPT></head>\
                    <body><h1>Server Error</h1><p>That code is not right &amp; expired.</p><stylish>kept</stylish></body></html>";
        assert_eq!(strip_tags(page), "Server Error That code is not right & expired. kept");
    }

    const GOOD: &str = r#"
name = "t"
expect = "naive"
[start]
command = ["app", "{port}"]
ready = "/"
[routes]
signup = { path = "/signup", email = "email", password = "password" }
verify = { path = "/verify", email = "email", otp = "otp" }
[answer]
[[answer.rule]]
status = 404
body = "No temp_registration"
code = "no_registration"
[[answer.rule]]
status = 200
code = "ok"
[mail]
code = '(\d{6})'
"#;

    #[test]
    fn a_pause_is_taken_only_by_a_target_whose_start_names_it() {
        let plain = Target::parse(Path::new("t.toml"), GOOD).unwrap();
        let why = plain.with_pause(Duration::from_millis(2)).unwrap_err();
        assert!(
            why.starts_with("t.toml: --pause needs") && why.contains("{pause_python}"),
            "{why}"
        );
        // A setup runs unpaused, so a pause named only there is none.
        let setup_only = GOOD.replace(
            "command = [\"app\", \"{port}\"]",
            "command = [\"app\", \"{port}\"]\nsetup = [\"migrate\", \"{pause}\"]",
        );
        let why = Target::parse(Path::new("t.toml"), &setup_only)
            .unwrap()
            .with_pause(Duration::from_millis(2))
            .unwrap_err();
        assert!(why.contains("not only its setup"), "{why}");
        for start in [
            "command = [\"app\", \"{port}\", \"--pause\", \"{pause}\"]",
            "command = [\"app\", \"{port}\"]\nenv = { PYTHONPATH = \"{pause_python}\" }",
        ] {
            let text = GOOD.replace("command = [\"app\", \"{port}\"]", start);
            let paused = Target::parse(Path::new("t.toml"), &text)
                .unwrap()
                .with_pause(Duration::from_millis(2))
                .unwrap();
            assert_eq!(paused.pause, Some(Duration::from_millis(2)), "{start}");
        }
    }

    #[test]
    fn a_route_fills_its_path_and_extra_fields_from_the_request() {
        let text = GOOD.replace(
            "verify = { path = \"/verify\", email = \"email\", otp = \"otp\" }",
            "verify = { path = \"/verify?email={email}&n={n}\", fields = { username = \"{local}\", code = \"{otp}\", password2 = \"{password}\", agree = \"yes\" } }",
        );
        let t = Target::parse(Path::new("t.toml"), &text).unwrap();
        let values = Values {
            email: "ana+x@example.com",
            password: "s3cret!",
            otp: Some("123456"),
            n: 7,
        };
        let (path, fields) = t.routes[&Kind::Verify].request(values);
        assert_eq!(path, "/verify?email=ana%2Bx%40example.com&n=7");
        let fields: BTreeMap<String, String> = fields.into_iter().collect();
        assert_eq!(fields["username"], "ana+x");
        assert_eq!(fields["code"], "123456");
        assert_eq!(fields["password2"], "s3cret!");
        assert_eq!(fields["agree"], "yes");
        assert!(!fields.contains_key("email"), "the address travels in the path only");
        let (_, signup) = t.routes[&Kind::Signup].request(values);
        assert_eq!(
            signup,
            vec![
                ("email".to_string(), "ana+x@example.com".to_string()),
                ("password".to_string(), "s3cret!".to_string())
            ]
        );
    }

    #[test]
    fn a_code_splits_over_its_inputs_and_a_form_pages_hidden_inputs_are_read() {
        let text = GOOD.replace(
            "verify = { path = \"/verify\", email = \"email\", otp = \"otp\" }",
            "verify = { path = \"/verify/\", form = \"/verify/?for={email}\", otp = [\"d0\", \"d1\", \"d2\", \"d3\"], fields = { e = \"{email}\" } }",
        );
        let t = Target::parse(Path::new("t.toml"), &text).unwrap();
        let route = &t.routes[&Kind::Verify];
        let values = |otp| Values {
            email: "a+b@x.org",
            password: "p",
            otp,
            n: 1,
        };
        let fields = |otp| route.request(values(otp)).1;
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields(Some("4821")),
            pairs(&[("d0", "4"), ("d1", "8"), ("d2", "2"), ("d3", "1"), ("e", "a+b@x.org")])
        );
        // A malformed code fills what it can; the last input takes the rest.
        assert_eq!(
            fields(Some("48")),
            pairs(&[("d0", "4"), ("d1", "8"), ("d2", ""), ("d3", ""), ("e", "a+b@x.org")])
        );
        assert_eq!(fields(Some("482177"))[3], ("d3".to_string(), "177".to_string()));
        assert_eq!(route.form(values(None)).as_deref(), Some("/verify/?for=a%2Bb%40x.org"));
        let page = r#"<form method="post"><input type="hidden" name="csrfmiddlewaretoken" value="Ab&amp;9">
            <INPUT name='next' TYPE='HIDDEN' value='/home'><input type="text" name="otp_digit_0" value="">
            <input type=hidden name=flag></form>"#;
        assert_eq!(
            hidden_inputs(page),
            pairs(&[("csrfmiddlewaretoken", "Ab&9"), ("next", "/home"), ("flag", "")])
        );
        // A verify may take the address from the app's session; a signup
        // may not.
        let from_session = GOOD.replace(
            "verify = { path = \"/verify\", email = \"email\", otp = \"otp\" }",
            "verify = { path = \"/verify\", otp = \"otp\" }",
        );
        assert!(Target::parse(Path::new("t.toml"), &from_session).is_ok());
        let mute = GOOD.replace(
            "signup = { path = \"/signup\", email = \"email\",",
            "signup = { path = \"/signup\",",
        );
        assert!(Target::parse(Path::new("t.toml"), &mute)
            .unwrap_err()
            .message
            .contains("the signup route never sends the address"));
        let empty = GOOD.replace("otp = \"otp\"", "otp = []");
        assert!(Target::parse(Path::new("t.toml"), &empty)
            .unwrap_err()
            .message
            .contains("lists no field"));
    }

    #[test]
    fn a_controlled_clock_is_read_from_time_and_bad_settings_are_refused() {
        let with = |time: &str| Target::parse(Path::new("t.toml"), &format!("{GOOD}[time]\n{time}"));
        assert_eq!(with("").unwrap().clock, None);
        let c = with("clock = \"faketime\"\nspeed = 10\nstart = \"2030-01-01T00:00:00Z\"\n")
            .unwrap()
            .clock
            .unwrap();
        assert_eq!((c.speed, c.start_unix_ms), (10, 1_893_456_000_000));
        assert_eq!(
            with("clock = \"faketime\"\n").unwrap().clock.unwrap().start_unix_ms,
            crate::clock::DEFAULT_START_UNIX_MS
        );
        for (time, why) in [
            ("clock = \"fake\"\n", "expected \"real\" (the default) or \"faketime\""),
            ("speed = 10\n", "start and speed are for clock = \"faketime\""),
            ("clock = \"faketime\"\nspeed = 0\n", "speed 0; expected 1 to 100"),
            (
                "clock = \"faketime\"\nstart = \"2030-01-01\"\n",
                "expected a UTC instant",
            ),
        ] {
            let e = with(time).unwrap_err().message;
            assert!(e.contains(why), "{time:?}: {e}");
        }
    }

    #[test]
    fn a_resend_posts_its_own_route_or_else_the_signup_again() {
        let t = Target::parse(Path::new("t.toml"), GOOD).unwrap();
        assert_eq!(t.route(Kind::Resend).unwrap().path, t.routes[&Kind::Signup].path);
        assert!(t.route(Kind::Login).is_none(), "only a resend falls back");
        let own = GOOD.replace(
            "[answer]",
            "resend = { path = \"/again\", email = \"email\" }\n[answer]",
        );
        let t = Target::parse(Path::new("t.toml"), &own).unwrap();
        assert_eq!(t.route(Kind::Resend).unwrap().path, "/again");
        let mute = GOOD.replace("[answer]", "resend = { path = \"/again\" }\n[answer]");
        let e = Target::parse(Path::new("t.toml"), &mute).unwrap_err().message;
        assert!(e.contains("the resend route never sends the address"), "{e}");
    }

    #[test]
    fn a_routes_own_rules_come_before_the_global_ones() {
        // One app answers a signup and a login to an unverified account
        // with the same 302: only the route can say what it means.
        let text = GOOD.replace(
            "[answer]",
            "login = { path = \"/login\", email = \"email\", password = \"password\", rule = [{ status = 200, code = \"bad_request\" }] }\n[answer]",
        );
        let t = Target::parse(Path::new("t.toml"), &text).unwrap();
        assert_eq!(t.read_answer(Kind::Login, (200, &[]), "x").unwrap().0, Code::BadRequest);
        assert_eq!(t.read_answer(Kind::Signup, (200, &[]), "x").unwrap().0, Code::Ok);
        let mute = GOOD.replace(
            "verify = { path = \"/verify\", email = \"email\", otp = \"otp\" }",
            "verify = { path = \"/verify\", email = \"email\" }",
        );
        let err = Target::parse(Path::new("t.toml"), &mute).unwrap_err();
        assert!(err.message.contains("never sends the code"), "{err}");
    }

    #[test]
    fn an_apps_own_constants_judge_it_and_a_file_they_make_moot_is_vacuous() {
        let app = GOOD.to_string() + "[app]\notp_ttl = \"5m\"\nmax_attempts = 3\n";
        let t = Target::parse(Path::new("t.toml"), &app).unwrap();
        assert_eq!(t.app.otp_ttl_ms, Some(300_000));
        assert_eq!(t.app.max_attempts, Some(3));
        let scenario = |last: &str, verifies: u32| {
            let text = format!(
                "name = \"s\"\ndescription = \"d\"\n[deployment]\notp_ttl = \"8s\"\n\
                 [[request]]\nat = \"0s\"\nbrowser = \"b\"\nkind = \"signup\"\nemail = \"ana@example.com\"\n\
                 [[request]]\nat = \"{last}\"\nbrowser = \"b\"\nkind = \"verify\"\nemail = \"ana@example.com\"\nrepeat = {verifies}\n\
                 [expect]\nnaive = \"pass\"\n"
            );
            otpsim_model::Scenario::parse(Path::new("s.toml"), &text).unwrap()
        };
        // The file's code dies at 8 s; the app's lives 5 minutes: a verify
        // at 9 s tests nothing of this app's expiry.
        let why = crate::run::vacuous(&t, &scenario("9s", 1)).unwrap();
        assert!(why.contains("its codes live 8s, but the app's live 5m"), "{why}");
        assert_eq!(crate::run::vacuous(&t, &scenario("2s", 1)), None);
        // Five codes against the file's limit of 5, the app locking after 3.
        let why = crate::run::vacuous(&t, &scenario("2s", 5)).unwrap();
        assert!(why.contains("locks after 3"), "{why}");
        // The checker holds the app to its own lifetime.
        assert_eq!(crate::run::limits(&t, &scenario("2s", 1)).otp_ttl_ms, 300_000);
        // On a controlled clock the file is stretched to the app's lifetime
        // instead, every time by 300/8: the verify at 9 s comes at 337.5 s.
        let mut fast = t.clone();
        fast.clock = Some(crate::clock::FakeClock {
            start_unix_ms: crate::clock::DEFAULT_START_UNIX_MS,
            speed: 100,
        });
        assert_eq!(crate::run::vacuous(&fast, &scenario("9s", 1)), None);
        assert_eq!(crate::run::scale(&fast, &scenario("9s", 1)), Some((300_000, 8000)));
        let stretched = crate::run::fitted(&fast, &scenario("9s", 1));
        assert_eq!(stretched.requests[1].at_ms, 337_500);
        assert_eq!(stretched.deployment.otp_ttl_ms, 300_000);
        assert_eq!(crate::run::scale(&fast, &scenario("2s", 1)), None, "nothing to stretch");
        assert!(
            crate::run::vacuous(&fast, &scenario("2s", 5)).is_some(),
            "a count is not stretched"
        );
        let zero = GOOD.to_string() + "[app]\nmax_attempts = 0\n";
        assert!(Target::parse(Path::new("t.toml"), &zero)
            .unwrap_err()
            .message
            .contains("at least 1"));
    }

    #[test]
    fn rules_read_a_redirect_chain_by_its_locations_and_its_final_page() {
        // A signup that redirects to the verify page, a login to an
        // unverified account that redirects there too, and one that lands
        // on the home page.
        let text = GOOD.replace(
            "[answer]",
            "login = { path = \"/login\", email = \"email\", password = \"password\", rule = [{ status = 302, location = '^/verify', code = \"bad_credentials\" }, { location = '^/$', body = \"Welcome\", code = \"ok\" }] }\n[answer]\nredirects = 3",
        );
        let t = Target::parse(Path::new("t.toml"), &text).unwrap();
        assert_eq!(t.redirects, 3);
        let to_verify = [(302, "/verify?email=a%40b".to_string())];
        let home = [(302, "/".to_string())];
        assert_eq!(
            t.read_answer(Kind::Login, (200, &to_verify), "<p>Enter the code</p>")
                .unwrap()
                .0,
            Code::BadCredentials
        );
        assert_eq!(
            t.read_answer(Kind::Login, (200, &home), "<p>Welcome back</p>")
                .unwrap()
                .0,
            Code::Ok
        );
        // The global 200 rule takes a home page that does not welcome.
        assert_eq!(
            t.read_answer(Kind::Login, (200, &home), "<p>Hi</p>").unwrap().0,
            Code::Ok
        );
        let none = t.read_answer(Kind::Signup, (500, &home), "boom").unwrap_err();
        assert!(none.contains("status 302 to \"/\", then 500"), "{none}");
        assert_eq!(Target::parse(Path::new("t.toml"), GOOD).unwrap().redirects, 10);
        let many = GOOD.replace("[answer]", "[answer]\nredirects = 21");
        assert!(Target::parse(Path::new("t.toml"), &many)
            .unwrap_err()
            .message
            .contains("at most 20"));
    }

    #[test]
    fn each_observe_query_is_optional_and_its_invariants_not_observable_without_it() {
        use otpsim_model::Invariant::*;
        let observe = |queries: &str| {
            let text = format!("{GOOD}[observe]\ndb = \"{{db}}\"\n{queries}");
            Target::parse(Path::new("t.toml"), &text).unwrap()
        };
        let judged = |t: &Target| {
            [SinglePending, OneAccount, NoOrphans, AttemptsLimited]
                .into_iter()
                .filter(|i| t.observes(*i))
                .collect::<Vec<_>>()
        };
        // An app that keeps its pending signup in its cookie.
        assert_eq!(
            judged(&observe("accounts = \"SELECT email FROM users\"\n")),
            [OneAccount]
        );
        assert_eq!(judged(&observe("pending = \"SELECT email, id FROM p\"\n")), []);
        let both = "pending = \"SELECT email, id FROM p\"\naccounts = \"SELECT email FROM users\"\nregistration = \"SELECT id FROM p WHERE email = ?1 AND code = ?2\"\n";
        assert_eq!(
            judged(&observe(both)),
            [SinglePending, OneAccount, NoOrphans, AttemptsLimited]
        );
    }

    #[test]
    fn a_target_may_name_no_expect_key() {
        let own = GOOD.replace("expect = \"naive\"\n", "");
        assert_eq!(Target::parse(Path::new("t.toml"), &own).unwrap().expect, None);
        let t = Target::parse(Path::new("t.toml"), GOOD).unwrap();
        assert_eq!(t.expect, Some(otpsim_core::Variant::Naive));
    }

    #[test]
    fn rules_map_answers_in_order() {
        let t = Target::parse(Path::new("t.toml"), GOOD).unwrap();
        assert_eq!(
            t.read_answer(
                Kind::Signup,
                (404, &[]),
                "<p>No temp_registration found for temp_id: temp_1_0000000a</p>"
            )
            .unwrap(),
            (
                Code::NoRegistration,
                "No temp_registration found for temp_id: temp_1_0000000a".to_string()
            )
        );
        assert_eq!(t.read_answer(Kind::Signup, (200, &[]), "fine").unwrap().0, Code::Ok);
        // A message pattern may name the page's markup, or only its text.
        let page = "<title>Accounts</title><p class=\"error\">That code &amp; no other</p><p>Enter it</p>";
        for pattern in [r#"class="error">([^<]*)"#, "Accounts (.*) Enter"] {
            let text = GOOD.replace("[answer]", &format!("[answer]\nmessage = '{pattern}'"));
            let t = Target::parse(Path::new("t.toml"), &text).unwrap();
            assert_eq!(
                t.read_answer(Kind::Signup, (200, &[]), page).unwrap().1,
                "That code & no other"
            );
        }
        assert!(t
            .read_answer(Kind::Signup, (500, &[]), "boom")
            .unwrap_err()
            .contains("no [[answer.rule]] matches status 500"));
        assert!(!t.observes(otpsim_model::Invariant::SinglePending));
    }

    #[test]
    fn errors_point_at_the_line_and_column() {
        for (bad, from, to, line, what) in [
            (
                GOOD,
                "code = \"no_registration\"",
                "code = \"gone\"",
                14,
                "unknown code \"gone\"",
            ),
            (GOOD, "code = '(\\d{6})'", "code = '\\d{6}'", 19, "capture group"),
            (GOOD, "ready = \"/\"", "ready = \"x\"", 6, "ready is a path"),
            (GOOD, "[mail]", "[mail]\nbody = 1", 19, "unknown field `body`"),
            (
                GOOD,
                "expect = \"naive\"",
                "expect = \"seedfix\"",
                3,
                "expect: unknown variant",
            ),
            (
                GOOD,
                "ready = \"/\"",
                "ready = \"/\"\nsetup = []",
                7,
                "the setup command is empty",
            ),
            (
                GOOD,
                "ready = \"/\"",
                "ready = \"/\"\ncookie_sessions = false",
                1,
                "offers no session mode",
            ),
            (
                GOOD,
                "[answer]",
                "[headers]\nCookie = \"sessionid=abc\"\n[answer]",
                1,
                "may not set Cookie",
            ),
        ] {
            let text = bad.replacen(from, to, 1);
            let err = Target::parse(Path::new("t.toml"), &text).unwrap_err();
            assert_eq!((err.line, err.message.contains(what)), (line, true), "{err}");
        }
    }
}
