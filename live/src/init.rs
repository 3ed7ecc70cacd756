//! `otpsim init target -- COMMAND…`: a draft target file from a running
//! app. It starts the app as a run would (its setup, on a free port, with
//! the SMTP sink), reads its likely pages and their forms, then lives one
//! signup through them with a probe address: the signup, a wrong code, the
//! mailed code, a login with the right and a wrong password. What each
//! answered becomes the answer rules; the mail, the `[mail]` pattern; the
//! database, if the command names `{db}`, the `[observe]` queries. Every
//! guess is a comment in the draft.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use reqwest::cookie::Jar;
use tokio::sync::mpsc;

use crate::run::{start_instances, LiveError, Options};
use crate::smtp::{self, Received};
use crate::target::{hidden_inputs, Target};

/// How to start the app: what a target file's `[start]` says.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// The app's name, for the draft.
    pub name: String,
    /// One instance's command line, with the target file's placeholders.
    pub command: Vec<String>,
    /// Its environment.
    pub env: Vec<(String, String)>,
    /// A command run once before it (a migration).
    pub setup: Option<Vec<String>>,
    /// Where the commands run (default: the run's own folder).
    pub cwd: Option<String>,
}

/// A draft target file, and what it guessed.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The file's text.
    pub text: String,
    /// What the probe saw, in order: for people.
    pub notes: Vec<String>,
}

/// The address and password the probe signs up with.
const PROBE_EMAIL: &str = "init-probe@example.com";
const PROBE_PASSWORD: &str = "Init-probe-9f2!";

/// Pages an app's forms are likely on, besides the links of its home page.
const LIKELY: [&str; 12] = [
    "/",
    "/signup",
    "/signup/",
    "/register",
    "/register/",
    "/accounts/signup/",
    "/verify",
    "/verify/",
    "/login",
    "/login/",
    "/accounts/login/",
    "/auth/login",
];

/// A form on a page.
#[derive(Debug, Clone)]
struct Form {
    /// The page it is on.
    page: String,
    /// Where it posts (a path, its query kept).
    action: String,
    /// Its inputs: (name, type), hidden ones included.
    inputs: Vec<(String, String)>,
    hidden: bool,
}

impl Form {
    fn named(&self, pattern: &str) -> Vec<String> {
        let re = Regex::new(pattern).expect("a fixed pattern");
        self.inputs
            .iter()
            .filter(|(n, t)| t != "hidden" && re.is_match(n))
            .map(|(n, _)| n.clone())
            .collect()
    }
    fn of_type(&self, kind: &str) -> Vec<String> {
        self.inputs
            .iter()
            .filter(|(_, t)| t == kind)
            .map(|(n, _)| n.clone())
            .collect()
    }
    fn code_inputs(&self) -> Vec<String> {
        self.named(r"(?i)(otp|code|token|pin|digit)")
    }
}

/// What one request got: the redirects followed, the final status and
/// page, and the cookies set on the way.
#[derive(Debug, Clone, Default)]
struct Answer {
    redirects: Vec<(u16, String)>,
    status: u16,
    body: String,
    cookies: Vec<String>,
    /// The final page's path.
    at: String,
}

struct Browser {
    client: reqwest::Client,
    base: String,
}

impl Browser {
    /// Submits `fields` to `path` as a person does: the form's page first
    /// when it has hidden inputs (a CSRF token), which go along.
    async fn submit(
        &self,
        page: &Option<String>,
        path: &str,
        fields: Vec<(String, String)>,
    ) -> Result<Answer, LiveError> {
        let mut all = match page {
            Some(p) => hidden_inputs(&self.fetch(false, p, &[]).await?.body),
            None => Vec::new(),
        };
        all.retain(|(n, _)| !fields.iter().any(|(m, _)| m == n));
        all.extend(fields);
        self.fetch(true, path, &all).await
    }

    /// `method` `path` with `fields`, redirects followed as a browser
    /// follows them (GET, at most 10).
    async fn fetch(&self, post: bool, path: &str, fields: &[(String, String)]) -> Result<Answer, LiveError> {
        let io = |e: reqwest::Error| LiveError::Io(format!("{path}: {e}"));
        let mut request = match post {
            true => self.client.post(format!("{}{path}", self.base)).form(fields),
            false => self.client.get(format!("{}{path}", self.base)),
        };
        let mut answer = Answer::default();
        let mut at = path.to_string();
        loop {
            let response = tokio::time::timeout(Duration::from_secs(30), request.send())
                .await
                .map_err(|_| LiveError::Io(format!("{at} gave no answer within 30s")))?
                .map_err(io)?;
            let status = response.status().as_u16();
            answer.cookies.extend(
                response
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .filter_map(|v| v.split(';').next().map(str::to_string)),
            );
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(str::to_string);
            match location {
                Some(l) if (300..400).contains(&status) && answer.redirects.len() < 10 => {
                    let next = reqwest::Url::parse(&format!("{}{at}", self.base))
                        .and_then(|u| u.join(&l))
                        .map_err(|e| LiveError::Io(format!("{at}: a redirect to {l:?}: {e}")))?;
                    at = match next.query() {
                        Some(q) => format!("{}?{q}", next.path()),
                        None => next.path().to_string(),
                    };
                    answer.redirects.push((status, l));
                    request = self.client.get(format!("{}{at}", self.base));
                }
                _ => {
                    answer.status = status;
                    answer.body = response.text().await.map_err(io)?;
                    answer.at = at;
                    return Ok(answer);
                }
            }
        }
    }
}

/// The forms on an HTML page.
fn forms(page: &str, body: &str) -> Vec<Form> {
    let form = Regex::new(r"(?is)<form\b([^>]*)>(.*?)</form>").expect("a fixed pattern");
    let input = Regex::new(r"(?is)<input\b[^>]*>").expect("a fixed pattern");
    let attribute = |tag: &str, name: &str| {
        let re = Regex::new(&format!(r#"(?is)\b{name}\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))"#)).expect("a name");
        re.captures(tag)
            .and_then(|c| c.get(1).or(c.get(2)).or(c.get(3)))
            .map(|m| m.as_str().replace("&amp;", "&"))
    };
    form.captures_iter(body)
        .map(|f| {
            let action = attribute(&f[1], "action")
                .filter(|a| !a.is_empty())
                .unwrap_or(page.to_string());
            let action = match reqwest::Url::parse("http://app.invalid")
                .and_then(|b| b.join(page))
                .and_then(|p| p.join(&action))
            {
                Ok(u) => match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_string(),
                },
                Err(_) => action,
            };
            let inputs: Vec<(String, String)> = input
                .find_iter(&f[2])
                .filter_map(|i| {
                    let tag = i.as_str();
                    let name = attribute(tag, "name")?;
                    let kind = attribute(tag, "type").unwrap_or("text".into()).to_ascii_lowercase();
                    let kind = match attribute(tag, "autocomplete").as_deref() {
                        Some("one-time-code") => "code".to_string(),
                        _ => kind,
                    };
                    Some((name, kind))
                })
                .collect();
            Form {
                page: page.to_string(),
                hidden: !hidden_inputs(&f[2]).is_empty(),
                action,
                inputs,
            }
        })
        .collect()
}

/// The visible text pieces of a page (text between tags, and JSON string
/// values), trimmed.
fn pieces(body: &str) -> Vec<String> {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(body) {
        return json
            .as_object()
            .map(|o| o.values().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
    }
    let hidden = Regex::new(r"(?is)<(style|script|title)\b.*?</(style|script|title)>").expect("a fixed pattern");
    let body = hidden.replace_all(body, " ");
    Regex::new(r"<[^>]*>")
        .expect("a fixed pattern")
        .split(&body)
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .map(|t| {
            t.replace("&#x27;", "'")
                .replace("&#39;", "'")
                .replace("&quot;", "\"")
                .replace("&amp;", "&")
        })
        .filter(|t| t.split(' ').count() >= 3)
        .collect()
}

/// A short pattern for the first piece of `answer` that `baseline` does
/// not show: the answer's own message.
fn message_of(answer: &Answer, baseline: &str) -> Option<String> {
    let seen = pieces(baseline);
    let piece = pieces(&answer.body).into_iter().find(|p| !seen.contains(p))?;
    // A run of words the app wrote: the address or a number is this
    // probe's, and a pattern must match the words as they stand together.
    let ours = |w: &&str| w.contains('@') || w.chars().any(|c| c.is_ascii_digit());
    let words: Vec<&str> = piece.split(' ').collect();
    let runs: Vec<Vec<&str>> = words
        .split(|w| ours(w))
        .map(|run| run.to_vec())
        .filter(|run| !run.is_empty())
        .collect();
    let run = runs.iter().find(|r| r.len() >= 2).or(runs.first())?;
    Some(regex::escape(&run[..run.len().min(5)].join(" ")))
}

/// A TOML string holding `text` as written (a basic string: a pattern's
/// backslashes and quotes are escaped, never dropped).
fn basic(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// The rule that reads `answer` as `code`: by where it was redirected,
/// unless `by_page` (another answer redirects to the same place), else by
/// its status and message.
fn rule_for(answer: &Answer, code: &str, message: Option<&str>, by_page: bool) -> String {
    if let (Some(path), false) = (redirected_to(answer), by_page) {
        // The header may name the host: a rule matches the location as sent.
        let pattern = format!("^(https?://[^/]+)?{}(\\?|$)", regex::escape(&path));
        return format!("{{ location = {}, code = \"{code}\" }}", basic(&pattern));
    }
    match message {
        Some(m) => format!(
            "{{ status = {}, body = {}, code = \"{code}\" }}",
            answer.status,
            basic(m)
        ),
        None => format!("{{ status = {}, code = \"{code}\" }}", answer.status),
    }
}

/// The path of `answer`'s first redirect, host and query left out.
fn redirected_to(answer: &Answer) -> Option<String> {
    let (_, location) = answer.redirects.first()?;
    let path = location.split('?').next().unwrap_or(location);
    let path = path
        .split("://")
        .nth(1)
        .map_or(path, |rest| &rest[rest.find('/').unwrap_or(rest.len())..]);
    Some(path.to_string())
}

/// The mail's code and a pattern that finds it: the words before it. The
/// code is the token after a word like "code", else the first run of 4 to
/// 8 digits, else the first token with 4 digits or more (not a port in a
/// link, nor a year, where a better one is there).
fn mail_pattern(body: &str) -> Option<(String, String)> {
    let token = Regex::new(r"\b([0-9A-Za-z]{4,10})\b").expect("a fixed pattern");
    let tokens: Vec<regex::Match> = token
        .captures_iter(body)
        .filter_map(|c| c.get(1))
        .filter(|m| m.as_str().chars().filter(char::is_ascii_digit).count() >= 4)
        .collect();
    let after_code = |m: &&regex::Match| {
        let before = body[..m.start()].to_ascii_lowercase();
        let near: String = before
            .chars()
            .rev()
            .take(24)
            .collect::<String>()
            .chars()
            .rev()
            .collect();
        near.contains("code") || near.contains("otp") || near.contains("pin")
    };
    let digits = |m: &&regex::Match| m.as_str().chars().all(|c| c.is_ascii_digit()) && m.as_str().len() <= 8;
    let found = tokens
        .iter()
        .find(after_code)
        .or_else(|| tokens.iter().find(digits))
        .or(tokens.first())?;
    let code = found.as_str().to_string();
    let before: Vec<&str> = body[..found.start()].split_whitespace().collect();
    let words: Vec<String> = before[before.len().saturating_sub(2)..]
        .iter()
        .map(|w| regex::escape(w))
        .collect();
    let shape = match code.chars().all(|c| c.is_ascii_digit()) {
        true => format!(r"(\d{{{}}})", code.len()),
        false => format!("([0-9A-Za-z]{{{}}})", code.len()),
    };
    let lead = match words.is_empty() {
        true => String::new(),
        false => format!(r"{}\s*", words.join(r"\s+")),
    };
    Some((code, format!("{lead}{shape}")))
}

/// A different code of the same shape.
fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| match c {
            '0'..='8' => char::from(c as u8 + 1),
            '9' => '0',
            c => c,
        })
        .collect()
}

/// The observer's queries, read off the app's SQLite file: the table that
/// holds the probe's pending code, and the one that holds its account.
fn observe(db: &Path, code: &str, after_signup: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let Ok(conn) = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return Vec::new();
    };
    let tables = |conn: &rusqlite::Connection| -> rusqlite::Result<Vec<(String, Vec<String>)>> {
        let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
        let names: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for name in names {
            let mut cols = conn.prepare(&format!(
                "SELECT name FROM pragma_table_info('{}')",
                name.replace('\'', "")
            ))?;
            let columns: Vec<String> = cols.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            out.push((name, columns));
        }
        Ok(out)
    };
    let mut lines = Vec::new();
    let Ok(tables) = tables(&conn) else { return lines };
    for (table, columns) in &tables {
        let Some(email) = columns.iter().find(|c| c.to_ascii_lowercase().contains("email")) else {
            continue;
        };
        let has_probe = conn
            .query_row(
                &format!("SELECT count(*) FROM \"{table}\" WHERE \"{email}\" = ?1"),
                [PROBE_EMAIL],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_or(0)
            > 0;
        let code_column = after_signup.get(table).and_then(|row| {
            let i = row.iter().position(|v| v == code)?;
            columns.get(i)
        });
        if let Some(code_column) = code_column {
            let key = columns.first().map_or("rowid".to_string(), |c| c.clone());
            lines.push(format!(
                "pending = \"SELECT {email}, CAST({key} AS TEXT) FROM {table} ORDER BY {email}, {key}\""
            ));
            lines.push(format!(
                "registration = \"SELECT CAST({key} AS TEXT) FROM {table} WHERE {email} = ?1 AND {code_column} = ?2\""
            ));
        } else if has_probe && !after_signup.contains_key(table) {
            lines.push(format!("accounts = \"SELECT {email} FROM {table} ORDER BY {email}\""));
        }
    }
    lines
}

/// Every row holding the probe address, by table, as text.
fn rows_with_probe(db: &Path) -> BTreeMap<String, Vec<String>> {
    let mut found = BTreeMap::new();
    let Ok(conn) = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return found;
    };
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .unwrap_or_default();
    for table in names {
        let sql = format!("SELECT * FROM \"{}\"", table.replace('"', ""));
        let Ok(mut stmt) = conn.prepare(&sql) else { continue };
        let width = stmt.column_count();
        let rows = stmt.query_map([], |r| {
            (0..width)
                .map(|i| {
                    r.get_ref(i).map(|v| match v {
                        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                        rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                        _ => String::new(),
                    })
                })
                .collect::<Result<Vec<String>, _>>()
        });
        let Ok(rows) = rows else { continue };
        for row in rows.flatten() {
            if row.iter().any(|v| v == PROBE_EMAIL) {
                found.insert(table.clone(), row);
            }
        }
    }
    found
}

/// Starts the app, reads its forms, lives one signup through them and
/// writes what it learnt as a draft target file.
/// `place` is where the draft will live: its folder is `{target_dir}`.
pub async fn draft(launch: &Launch, options: &Options, place: &Path) -> Result<Draft, LiveError> {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let list = |v: &[String]| format!("[{}]", v.iter().map(|a| quote(a)).collect::<Vec<_>>().join(", "));
    let env = launch
        .env
        .iter()
        .map(|(k, v)| format!("{k} = {}", quote(v)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut start = format!(
        "command = {}\nenv = {{ {env} }}\nready = \"/\"\n",
        list(&launch.command)
    );
    if let Some(setup) = &launch.setup {
        start += &format!("setup = {}\n", list(setup));
    }
    if let Some(cwd) = &launch.cwd {
        start += &format!("cwd = {}\n", quote(cwd));
    }
    // The provisional target starts the app as a run does.
    let provisional = format!(
        "name = {}\n[start]\n{start}ready_timeout = \"30s\"\n[routes]\nsignup = {{ path = \"/\", email = \"e\" }}\nverify = {{ path = \"/\", otp = \"o\" }}\n[answer]\n[[answer.rule]]\ncode = \"ok\"\n[mail]\ncode = '(x)'\n",
        quote(&launch.name)
    );
    let here = place.to_path_buf();
    let target = Target::parse(&here, &provisional).map_err(|e| LiveError::Io(e.to_string()))?;
    let scenario = otpsim_model::Scenario::parse(
        &options.scratch.join("init-scenario.toml"),
        "name = \"init\"\ndescription = \"init\"\n[[request]]\nat = \"0s\"\nkind = \"signup\"\nemail = \"a@example.com\"\n[expect]\nnaive = \"pass\"\n",
    )
    .map_err(|e| LiveError::Io(e.to_string()))?;
    let dir = options.scratch.join("init");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| LiveError::Io(format!("{}: {e}", dir.display())))?;
    let db = dir.join("app.sqlite");
    let (mail_tx, mut mail_rx) = mpsc::unbounded_channel::<Received>();
    let sink = smtp::start(mail_tx, Duration::ZERO)
        .await
        .map_err(|e| LiveError::Io(format!("the SMTP sink: {e}")))?;
    let (instances, _) = start_instances(&target, &scenario, options, &dir, &db, sink.addr).await?;
    let addr = instances[0].addr;
    let browser = || -> Result<Browser, LiveError> {
        let client = reqwest::Client::builder()
            .cookie_provider(Arc::new(Jar::default()))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| LiveError::Io(e.to_string()))?;
        Ok(Browser {
            client,
            base: format!("http://{addr}"),
        })
    };
    let mut notes = Vec::new();

    // 1. The pages and their forms.
    let reader = browser()?;
    let home = reader.fetch(false, "/", &[]).await?;
    let links = Regex::new(r##"href\s*=\s*"(/[^"#?]*)""##).expect("a fixed pattern");
    let mut pages: Vec<String> = LIKELY.iter().map(|p| p.to_string()).collect();
    pages.extend(links.captures_iter(&home.body).map(|c| c[1].to_string()));
    pages.dedup();
    let mut found: Vec<Form> = Vec::new();
    let mut seen_pages = Vec::new();
    for page in pages {
        if seen_pages.contains(&page) {
            continue;
        }
        seen_pages.push(page.clone());
        let Ok(answer) = reader.fetch(false, &page, &[]).await else {
            continue;
        };
        if answer.status != 200 {
            continue;
        }
        for form in forms(&answer.at, &answer.body) {
            if !found.iter().any(|f| f.action == form.action) {
                notes.push(format!("a form on {} posts to {}", form.page, form.action));
                found.push(form);
            }
        }
    }
    let signup_form = found
        .iter()
        .find(|f| f.code_inputs().is_empty() && !f.named(r"(?i)mail").is_empty() && !f.action.contains("login"))
        .cloned();
    let login_form = found
        .iter()
        .find(|f| f.action.contains("login") || f.action.contains("signin") || f.page.contains("login"))
        .cloned();

    // 2. One signup lived through: the signup, its mail, a wrong code, the
    // right one, a login with the right password and with a wrong one.
    let person = browser()?;
    let (signup_path, signup_form_page, signup_fields) = match &signup_form {
        Some(f) => (f.action.clone(), f.hidden.then(|| f.page.clone()), fields_of(f)),
        None => {
            notes.push("no signup form found: guessed POST /signup with email and password".into());
            (
                "/signup".to_string(),
                None,
                vec![
                    ("email".into(), "{email}".into()),
                    ("password".into(), "{password}".into()),
                ],
            )
        }
    };
    // As a run fills a route: a code over several inputs, one character
    // each, the last taking the rest.
    let fill = |fields: &[(String, String)], code: &str| -> Vec<(String, String)> {
        let inputs = fields.iter().filter(|(_, v)| v == "{otp}").count();
        let mut chars = code.chars();
        let mut seen = 0;
        fields
            .iter()
            .map(|(n, v)| {
                if v == "{otp}" && inputs > 1 {
                    seen += 1;
                    let part: String = match seen == inputs {
                        true => chars.by_ref().collect(),
                        false => chars.next().map(String::from).unwrap_or_default(),
                    };
                    return (n.clone(), part);
                }
                let v = v
                    .replace("{email}", PROBE_EMAIL)
                    .replace("{local}", PROBE_EMAIL.split('@').next().unwrap_or_default())
                    .replace("{password}", PROBE_PASSWORD)
                    .replace("{otp}", code);
                (n.clone(), v)
            })
            .collect()
    };
    let signed_up = person
        .submit(&signup_form_page, &signup_path, fill(&signup_fields, ""))
        .await?;
    notes.push(format!("signup answered {}", describe(&signed_up)));
    let mail = tokio::time::timeout(Duration::from_secs(10), mail_rx.recv())
        .await
        .ok()
        .flatten();
    let (code, mail_code) = match mail.as_ref().and_then(|m| mail_pattern(&m.body)) {
        Some(found) => found,
        None => {
            notes.push("no mail with a code came within 10 s of the signup".into());
            return Err(LiveError::Target {
                file: here,
                why: format!(
                    "the signup at {signup_path} answered {}, and no mail with a code reached the SMTP sink within 10 s: does the command send mail to 127.0.0.1:{{smtp_port}}?",
                    describe(&signed_up)
                ),
            });
        }
    };
    notes.push(format!("a mail came; its code has {} characters", code.len()));
    let pending = rows_with_probe(&db);

    // The verify form: on the page the signup landed on, else any form
    // with a code input.
    let landed = forms(&signed_up.at, &signed_up.body);
    let verify_form = landed
        .iter()
        .chain(&found)
        .find(|f| !f.code_inputs().is_empty())
        .cloned();
    let (verify_path, verify_form_page, verify_fields) = match &verify_form {
        Some(f) => (f.action.clone(), f.hidden.then(|| f.page.clone()), fields_of(f)),
        None => {
            notes.push("no verify form found: guessed POST /verify with code".into());
            ("/verify".to_string(), None, vec![("code".into(), "{otp}".into())])
        }
    };
    let verify_page = match &verify_form {
        Some(f) => person
            .fetch(false, &f.page, &[])
            .await
            .map(|a| a.body)
            .unwrap_or_default(),
        None => String::new(),
    };
    let bad = wrong(&code);
    let refused = person
        .submit(&verify_form_page, &verify_path, fill(&verify_fields, &bad))
        .await?;
    notes.push(format!("a wrong code answered {}", describe(&refused)));
    let verified = person
        .submit(&verify_form_page, &verify_path, fill(&verify_fields, &code))
        .await?;
    notes.push(format!("the mailed code answered {}", describe(&verified)));

    let stranger = browser()?;
    let (login_path, login_form_page, login_fields) = match &login_form {
        Some(f) => (f.action.clone(), f.hidden.then(|| f.page.clone()), fields_of(f)),
        None => (
            "/login".to_string(),
            None,
            vec![
                ("email".into(), "{email}".into()),
                ("password".into(), "{password}".into()),
            ],
        ),
    };
    let login_page = match &login_form {
        Some(f) => stranger
            .fetch(false, &f.page, &[])
            .await
            .map(|a| a.body)
            .unwrap_or_default(),
        None => String::new(),
    };
    let login_with = |password: &'static str| {
        let fields: Vec<(String, String)> = fill(&login_fields, "")
            .into_iter()
            .map(|(n, v)| match v == PROBE_PASSWORD {
                true => (n, password.to_string()),
                false => (n, v),
            })
            .collect();
        let stranger = &stranger;
        let page = login_form_page.clone();
        let path = login_path.clone();
        async move { stranger.submit(&page, &path, fields).await }
    };
    let logged_out = login_with("not-the-password").await?;
    let logged_in = login_with(PROBE_PASSWORD).await?;
    notes.push(format!("a wrong password answered {}", describe(&logged_out)));
    notes.push(format!("the right password answered {}", describe(&logged_in)));
    let observed = match launch
        .command
        .iter()
        .chain(launch.env.iter().map(|(_, v)| v))
        .any(|a| a.contains("{db}"))
    {
        true => observe(&db, &code, &pending),
        false => Vec::new(),
    };
    drop(instances);
    drop(sink);
    let _ = std::fs::remove_dir_all(&dir);

    // 3. The draft.
    let route = |path: &str, form: &Option<String>, fields: &[(String, String)], rules: &[String]| {
        let mut parts = vec![format!("path = {}", quote(&template(path)))];
        if let Some(page) = form {
            parts.push(format!("form = {}", quote(&template(page))));
        }
        let mut named = Vec::new();
        for (name, value) in fields {
            match value.as_str() {
                "{email}" => parts.push(format!("email = {}", quote(name))),
                "{password}" if !parts.iter().any(|p| p.starts_with("password =")) => {
                    parts.push(format!("password = {}", quote(name)))
                }
                "{otp}" => {}
                _ => named.push(format!("{} = {}", quote(name), quote(value))),
            }
        }
        let otp: Vec<String> = fields
            .iter()
            .filter(|(_, v)| v == "{otp}")
            .map(|(n, _)| n.clone())
            .collect();
        match otp.len() {
            0 => {}
            1 => parts.push(format!("otp = {}", quote(&otp[0]))),
            _ => parts.push(format!("otp = {}", list(&otp))),
        }
        if !named.is_empty() {
            parts.push(format!("fields = {{ {} }}", named.join(", ")));
        }
        if !rules.is_empty() {
            parts.push(format!("rule = [\n    {},\n]", rules.join(",\n    ")));
        }
        format!("{{ {} }}", parts.join(", "))
    };
    let signup_rules = vec![rule_for(&signed_up, "ok", None, false)];
    // A refusal and a success, read on the page they were sent from; two
    // answers redirected to one place are told apart by their pages.
    let refused_then_ok = |no: &Answer, code: &str, yes: &Answer, page: &str| {
        let same = redirected_to(no).is_some() && redirected_to(no) == redirected_to(yes);
        vec![
            rule_for(no, code, message_of(no, page).as_deref(), same),
            rule_for(yes, "ok", message_of(yes, page).as_deref(), same),
        ]
    };
    let verify_rules = refused_then_ok(&refused, "invalid_otp", &verified, &verify_page);
    let login_rules = refused_then_ok(&logged_out, "bad_credentials", &logged_in, &login_page);
    let json = serde_json::from_str::<serde_json::Value>(&refused.body).ok();
    let json_message = json
        .as_ref()
        .and_then(|j| j.as_object())
        .and_then(|o| o.iter().find(|(_, v)| v.as_str().is_some_and(|s| s.contains(' '))))
        .map(|(k, _)| k.clone());
    // The session cookie: one named so, else the first that is not a CSRF
    // or a flash cookie. Readable without the key, the app keeps sessions
    // in it; an opaque id names a session on the server.
    let candidates: Vec<(String, String)> = signed_up
        .cookies
        .iter()
        .filter_map(|c| c.split_once('=').map(|(n, v)| (n.to_string(), v.to_string())))
        .filter(|(n, _)| !n.to_ascii_lowercase().contains("csrf"))
        .collect();
    let session = candidates
        .iter()
        .find(|(n, _)| n.to_ascii_lowercase().contains("session"))
        .or_else(|| {
            candidates
                .iter()
                .find(|(n, _)| !n.to_ascii_lowercase().contains("message"))
        })
        .cloned();
    let in_cookie = session
        .as_ref()
        .is_none_or(|(_, v)| crate::wire::readable(v).iter().any(|t| t.contains('{')));
    let session_cookie = session.map(|(n, _)| n);
    let mut text = String::new();
    text += &format!(
        "# A draft by `otpsim init target` ({}): what the app answered when a\n# probe lived one signup through it. Lines marked GUESS are guesses: check\n# them, then run the check at the end of this file.\nname = {}\n\n[start]\n{start}",
        env!("CARGO_PKG_VERSION"),
        quote(&launch.name)
    );
    text += "# For --pause (a wait before each of the app's steps, which lets two\n# requests that arrive together meet inside it; docs/targets.md): a Python\n# app takes otpsim's tracer with PYTHONPATH = \"{pause_python}\" in env, an\n# app with a pause of its own takes {pause} or {pause_ms} in its command.\n";
    text += match in_cookie {
        true => "# GUESS: the app keeps sessions in its readable cookie. If it can keep\n# them on the server when told ({session} = server), add:\n# server_sessions = true\n",
        false => "# GUESS: the session cookie is an opaque id: sessions on the server. If the\n# app can keep them in its cookie when told ({session} = cookie), remove\n# cookie_sessions = false.\nserver_sessions = true\ncookie_sessions = false\n",
    };
    text += "\n[routes]\n";
    text += &format!(
        "signup = {}\n",
        route(&signup_path, &signup_form_page, &signup_fields, &signup_rules)
    );
    if verify_form.is_none() {
        text += "# GUESS: no form with a code input was found.\n";
    }
    text += &format!(
        "verify = {}\n",
        route(&verify_path, &verify_form_page, &verify_fields, &verify_rules)
    );
    if login_form.is_none() {
        text += "# GUESS: no login form was found.\n";
    }
    text += &format!(
        "login = {}\n",
        route(&login_path, &login_form_page, &login_fields, &login_rules)
    );
    text += "\n[answer]\n";
    if let Some(key) = json_message {
        text += &format!("json_message = {}\n", quote(&key));
    }
    if let Some(cookie) = session_cookie {
        text += &format!("session_cookie = {}\n", quote(&cookie));
    }
    text += "# Answers the probe did not meet: add a rule for each your app gives\n# (no_registration, otp_expired, locked, too_many_requests, retry).\n";
    text += "[[answer.rule]]\nstatus = 500\ncode = \"server_error\"\n[[answer.rule]]\nstatus = 403\ncode = \"bad_request\"\n";
    text += &format!("\n[mail]\ncode = {}\n", basic(&mail_code));
    if observed.is_empty() {
        text += "\n# [observe]: no SQLite file named by {db} holds the probe's signup. If the\n# app has one, read it (docs/targets.md):\n# [observe]\n# db = \"{db}\"\n# accounts = \"SELECT email FROM users\"\n";
    } else {
        text += "\n# GUESS: the tables that held the probe's pending code and its account.\n[observe]\ndb = \"{db}\"\n";
        for line in &observed {
            text += &format!("{line}\n");
        }
    }
    text += "\n# GUESS: the code's lifetime and attempt limit, if the app fixes its own:\n# [app]\n# otp_ttl = \"10m\"\n# max_attempts = 5\n";
    text += "\n# First verdict:\n#   otpsim check --target THIS_FILE scenarios/seed_incident.toml\n";
    Ok(Draft { text, notes })
}

/// A route's fields, as templates: the address, the password (twice, if
/// the form asks twice), a username from the address, the code.
fn fields_of(form: &Form) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let codes = form.code_inputs();
    let passwords = form.of_type("password");
    for (name, kind) in &form.inputs {
        if kind == "hidden" || kind == "submit" || kind == "button" || kind == "checkbox" {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        let value = if codes.contains(name) {
            "{otp}"
        } else if kind == "email" || lower.contains("mail") {
            "{email}"
        } else if passwords.contains(name) {
            "{password}"
        } else if lower.contains("user") || lower.contains("name") {
            "{local}"
        } else {
            continue;
        };
        fields.push((name.clone(), value.to_string()));
    }
    fields
}

/// A path with the probe's address made a placeholder.
fn template(path: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(PROBE_EMAIL.as_bytes()).collect();
    path.replace(&encoded, "{email}").replace(PROBE_EMAIL, "{email}")
}

fn describe(a: &Answer) -> String {
    let chain: String = a.redirects.iter().map(|(s, l)| format!("{s} to {l}, then ")).collect();
    format!("{chain}{}", a.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pages_forms_and_a_mails_code_are_read_as_a_draft_needs_them() {
        let page = r#"<form method="post" action="/verify/?email=init-probe%40example.com"><input type="hidden" name="csrf" value="x">
            <input name="otp_digit_0" maxlength="1"><input name="otp_digit_1"><input name=username><input type="password" name="password">
            <button>Go</button></form><form action="login"><input type=email name=mail><input type=password name=pw></form>"#;
        let found = forms("/signup/", page);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].action, "/verify/?email=init-probe%40example.com");
        assert!(found[0].hidden);
        assert_eq!(template(&found[0].action), "/verify/?email={email}");
        assert_eq!(
            fields_of(&found[0]),
            [
                ("otp_digit_0".to_string(), "{otp}".to_string()),
                ("otp_digit_1".to_string(), "{otp}".to_string()),
                ("username".to_string(), "{local}".to_string()),
                ("password".to_string(), "{password}".to_string()),
            ]
        );
        assert_eq!(found[1].action, "/signup/login");
        let (code, pattern) =
            mail_pattern("Hello,\nYour verification code is 4821. It is valid for 10 minutes.").unwrap();
        assert_eq!(code, "4821");
        assert_eq!(pattern, r"code\s+is\s*(\d{4})");
        assert!(Regex::new(&pattern).unwrap().is_match("Your code is\n\n0000"));
        // Not the port of a link, nor a year, before the code.
        let (code, _) = mail_pattern("Open http://127.0.0.1:54321/verify (2026) or type the code: 482913").unwrap();
        assert_eq!(code, "482913");
        assert!(Regex::new(&pattern).unwrap().is_match("Your code is 0000."));
        let tries = Answer {
            status: 400,
            body: r#"{"error": "wrong_code", "message": "Wrong code, 2 tries left"}"#.into(),
            ..Answer::default()
        };
        assert_eq!(message_of(&tries, "").as_deref(), Some("wrong_code"));
        let tries = Answer {
            body: "<p>Wrong code, 2 tries left isn't it</p>".into(),
            ..tries
        };
        let pattern = message_of(&tries, "").unwrap();
        assert_eq!(pattern, "Wrong code,");
        assert!(Regex::new(&pattern).unwrap().is_match("Wrong code, 2 tries left"));
        let moved = Answer {
            redirects: vec![(302, "http://127.0.0.1:8000/done?x=1".into())],
            ..Answer::default()
        };
        let rule = rule_for(&moved, "ok", None, false);
        let t: toml::Value = toml::from_str(&format!("r = {rule}")).unwrap();
        let location = Regex::new(t["r"]["location"].as_str().unwrap()).unwrap();
        assert!(location.is_match("http://127.0.0.1:8000/done?x=1") && location.is_match("/done"));
        assert!(!location.is_match("/done/more"));
        assert_eq!(wrong("4829"), "5930");
        let answer = Answer {
            status: 200,
            body: "<h1>Enter your code</h1><p class=error>That code is not right, init-probe@example.com.</p>".into(),
            ..Answer::default()
        };
        assert_eq!(
            message_of(&answer, "<h1>Enter your code</h1>").as_deref(),
            Some(r"That code is not right,")
        );
    }
}
