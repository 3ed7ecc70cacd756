//! `otpsim serve`: the flows of otpsim-core as a real web app, one process
//! one worker, as gunicorn runs a Flask app: plain HTML forms for people,
//! the same POST routes for programs (JSON when they ask for it), signed
//! cookie sessions or server sessions, one SQLite file in WAL mode shared
//! by every worker process, and mail over real SMTP.
//!
//! Nothing here is simulated: the clock is the OS clock, codes come from
//! the OS's random source, and each statement waits on SQLite's own locks.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE, COOKIE, SET_COOKIE};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use otpsim_core::platform::Std;
use otpsim_core::store::BUSY_TIMEOUT_MS;
use otpsim_core::{
    Code, Db, DbError, Flow, FlowConfig, Mail, Ports, Request, Response, Sent, Session, SessionData, StatementHook,
    Store, Variant, WorkerCrashed, WorkerMemory,
};
use rusqlite::OptionalExtension as _;
use tokio::net::TcpListener;

/// The largest request body a route reads; a larger one is refused.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

pub use crate::wire::REQUEST_HEADER;

/// Where sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStore {
    /// A signed cookie holding the session (Flask's default).
    Cookie,
    /// A random session id in the cookie, the session in the database.
    Server,
}

/// Everything `otpsim serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The flow this worker runs.
    pub variant: Variant,
    /// Where to listen.
    pub addr: SocketAddr,
    /// The database file every worker of the deployment shares.
    pub db: PathBuf,
    /// The SMTP server mail goes to.
    pub smtp: SocketAddr,
    /// Where sessions live.
    pub session: SessionStore,
    /// Code lifetime and attempt limit.
    pub flow: FlowConfig,
    /// How long each step of a request waits before it runs
    /// (`--step-pause`; zero: none). The simulator may switch requests at
    /// every step; with a pause, two requests that reach this process
    /// together meet there too ([`crate::pause`]).
    pub step_pause: Duration,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database file could not be opened or set up.
    #[error("cannot open the database {path}: {source}")]
    Db {
        /// The file.
        path: PathBuf,
        /// SQLite's reason.
        source: DbError,
    },
    /// The flow's recovery did not finish.
    #[error("the worker's recovery failed; not serving")]
    Recovery,
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS's reason.
        source: std::io::Error,
    },
}

const SESSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS otpsim_sessions (sid TEXT PRIMARY KEY, data TEXT NOT NULL);";

struct App {
    config: ServeConfig,
    store: Store<Std>,
    memory: Mutex<WorkerMemory>,
    next_request: AtomicU64,
    /// A mail server refused a mail since the last outbox sweep.
    mail_owed: AtomicBool,
}

/// How often a worker sweeps its outbox after a mail server refused a
/// mail: a refused mail is retried without waiting for a restart.
const OUTBOX_SWEEP: Duration = Duration::from_secs(2);

/// Opens the database, runs the flow's recovery, binds, prints one line
/// saying where it listens, and serves until the process is stopped.
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let db_error = |source| ServeError::Db {
        path: config.db.clone(),
        source,
    };
    let schema = format!("{}\n{SESSION_TABLE}", config.variant.schema());
    let schema: &'static str = Box::leak(schema.into_boxed_str());
    let store = Store::<Std>::open_file(&config.db, schema, BUSY_TIMEOUT_MS).map_err(db_error)?;
    let app = Arc::new(App {
        config: config.clone(),
        store,
        memory: Mutex::new(WorkerMemory::default()),
        next_request: AtomicU64::new(1),
        mail_owed: AtomicBool::new(false),
    });
    let recovering = Arc::clone(&app);
    // A worker runs its recovery before it takes requests, as the flows ask;
    // one that cannot recover does not serve.
    let recovered = tokio::task::spawn_blocking(move || {
        let ports = recovering.ports(now_ms(), None);
        recovering.config.variant.recover(&ports, &recovering.config.flow)
    })
    .await;
    if !matches!(recovered, Ok(Ok(()))) {
        return Err(ServeError::Recovery);
    }
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.addr,
            source,
        })?;
    let sweeping = Arc::clone(&app);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(OUTBOX_SWEEP).await;
            // Only after a refusal: a sweep beside a signup's own send
            // would mail its code twice.
            if !sweeping.mail_owed.swap(false, Ordering::SeqCst) {
                continue;
            }
            let app = Arc::clone(&sweeping);
            let _ = tokio::task::spawn_blocking(move || {
                let ports = app.ports(now_ms(), None);
                app.config.variant.recover(&ports, &app.config.flow)
            })
            .await;
        }
    });
    let bound = listener.local_addr().unwrap_or(config.addr);
    println!("otpsim serve: {} listening on http://{bound}/", config.variant);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, say: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(app.route(req).await) }
            });
            // A client that hangs up mid-request is its own business.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

type Reply = hyper::Response<Full<Bytes>>;

impl App {
    async fn route(self: Arc<Self>, req: hyper::Request<Incoming>) -> Reply {
        // The accept time: what `arrived_ms` reports, before any wait.
        let arrived = now_ms();
        let path = req.uri().path().to_string();
        let kind = match path.as_str() {
            "/" => None,
            "/signup" => Some("signup"),
            "/verify" => Some("verify"),
            "/login" => Some("login"),
            "/resend" => Some("resend"),
            _ => {
                return plain(
                    StatusCode::NOT_FOUND,
                    "No such page. Try /signup, /verify, /login or /resend.",
                )
            }
        };
        match (req.method().clone(), kind) {
            (Method::GET, None) => html(StatusCode::OK, &page::index()),
            (Method::GET, Some(kind)) => {
                // The address carried from the signup page, if any.
                let email = req.uri().query().and_then(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .find(|(n, _)| n == "email")
                        .map(|(_, v)| v.into_owned())
                });
                let password = self.config.variant.password_at_signup();
                html(StatusCode::OK, &page::form(kind, email.as_deref(), password))
            }
            (Method::POST, Some(kind)) => self.post(kind, arrived, req).await,
            _ => {
                let mut reply = plain(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Use GET for the page, POST for the form.",
                );
                let allow = if kind.is_some() { "GET, POST" } else { "GET" };
                reply.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
                reply
            }
        }
    }

    async fn post(self: Arc<Self>, kind: &'static str, arrived: u64, req: hyper::Request<Incoming>) -> Reply {
        let json = req
            .headers()
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
        let label = req
            .headers()
            .get(REQUEST_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_string);
        let form_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim() == "application/x-www-form-urlencoded")
            });
        let cookies = cookie_header(req.headers());
        let refuse = |why: String| answer(json, kind, &Response::new(Code::BadRequest, why), None, None);
        if !form_type {
            return refuse("Expected a form (Content-Type: application/x-www-form-urlencoded).".into());
        }
        let body = match Limited::new(req.into_body(), MAX_BODY_BYTES).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                return refuse(format!(
                    "The form is larger than {MAX_BODY_BYTES} bytes, or was cut off."
                ))
            }
        };
        let request = match parse_form(kind, &body) {
            Ok(r) => r,
            Err(why) => return refuse(why),
        };
        let email = match &request {
            Request::Signup { email, .. }
            | Request::Verify { email, .. }
            | Request::Login { email, .. }
            | Request::Resend { email, .. } => email.clone(),
        };
        let app = Arc::clone(&self);
        let ran = tokio::task::spawn_blocking(move || {
            let (mut session, sid) = match app.load_session(&cookies) {
                Ok(loaded) => loaded,
                Err(_) => {
                    let busy = Response::new(Code::Retry, "The service is busy; nothing was changed. Please retry.");
                    return (Ok(busy), None);
                }
            };
            let ports = app.ports(arrived, label);
            let handled = app
                .config
                .variant
                .handle(&ports, &app.config.flow, &mut session, &request);
            let set_cookie = session.is_modified().then(|| app.save_session(&session, sid));
            (handled, set_cookie)
        })
        .await;
        match ran {
            Ok((Ok(response), set_cookie)) => answer(json, kind, &response, Some(&email), set_cookie.flatten()),
            // Neither happens in a process that keeps running: no crash is
            // injected here, and a panic is the flow's bug.
            _ => answer(
                json,
                kind,
                &Response::new(Code::ServerError, "Internal Server Error"),
                None,
                None,
            ),
        }
    }

    fn ports(&self, arrived_ms: u64, label: Option<String>) -> ServePorts<'_> {
        ServePorts {
            app: self,
            arrived_ms,
            label,
            requester: self.next_request.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A step begins (a statement, a mail, the worker's memory, a server
    /// session: the simulator's steps; not a clock read or a random draw):
    /// where the simulator may switch requests, a paused server waits.
    fn step(&self) {
        let pause = self.config.step_pause;
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }

    /// The request's session and, for a server session, its id; an error
    /// if the session store could not be read (the request is then not
    /// handled: a fresh session would silently log the user out).
    fn load_session(&self, cookies: &[(String, String)]) -> Result<(Session, Option<String>), DbError> {
        let find = |name: &str| cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        match self.config.session {
            SessionStore::Cookie => {
                let data = find("session").and_then(|v| cookie::open(&self.config.flow.secret, v));
                Ok((Session::loaded(data.unwrap_or_default()), None))
            }
            SessionStore::Server => {
                let Some(sid) = find("sid").filter(|s| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
                else {
                    return Ok((Session::default(), None));
                };
                self.step();
                let stored = self.store.inspect(|p| {
                    p.with_statement("SELECT data FROM otpsim_sessions WHERE sid = ?1", |s| {
                        s.query_row([sid], |r| r.get::<_, String>(0)).optional()
                    })
                })?;
                match stored.and_then(|json| cookie::data_from_json(&json)) {
                    Some(data) => Ok((Session::loaded(data), Some(sid.to_string()))),
                    // An unknown id: a fresh session under a fresh id.
                    None => Ok((Session::default(), None)),
                }
            }
        }
    }

    /// The Set-Cookie value for a modified session.
    fn save_session(&self, session: &Session, sid: Option<String>) -> Option<String> {
        let attributes = "Path=/; HttpOnly; SameSite=Lax";
        match self.config.session {
            SessionStore::Cookie => Some(format!(
                "session={}; {attributes}",
                cookie::seal(&self.config.flow.secret, session.data())
            )),
            SessionStore::Server => {
                let sid = sid.unwrap_or_else(|| otpsim_core::crypto::hex(&random_bytes::<16>()));
                let json = cookie::data_to_json(session.data());
                self.step();
                let saved = self.store.inspect(|p| {
                    p.with_statement(
                        "INSERT INTO otpsim_sessions (sid, data) VALUES (?1, ?2) ON CONFLICT(sid) DO UPDATE SET data = excluded.data",
                        |s| s.execute([&sid, &json]),
                    )
                });
                saved.ok().map(|_| format!("sid={sid}; {attributes}"))
            }
        }
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).expect("the OS's random source is readable");
    bytes
}

/// The request's cookies, as `(name, value)`.
fn cookie_header(headers: &hyper::HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The form of route `kind` as a request, or why it is not one.
pub fn parse_form(kind: &str, body: &[u8]) -> Result<Request, String> {
    let wanted: &[&str] = match kind {
        "verify" => &["email", "otp", "password"],
        _ => &["email", "password"],
    };
    let mut fields: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(body) {
        if fields.iter().any(|(n, _)| *n == name) {
            return Err(format!("The field `{name}` is given twice."));
        }
        fields.push((name.into_owned(), value.into_owned()));
    }
    let get = |name: &str| -> Result<String, String> {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                format!(
                    "The field `{name}` is missing; the {kind} form has {}.",
                    wanted.join(", ")
                )
            })
    };
    if let Some((name, _)) = fields.iter().find(|(n, _)| !wanted.contains(&n.as_str())) {
        return Err(format!(
            "Unknown field `{name}`; the {kind} form has {}.",
            wanted.join(", ")
        ));
    }
    Ok(match kind {
        "signup" => Request::Signup {
            email: get("email")?,
            // A flow that takes the password at signup refuses an empty
            // one itself; idempotent's form has no such field.
            password: get("password").unwrap_or_default(),
        },
        // A flow without a resend of its own takes it as the signup sent
        // again, with the password it had; idempotent's form has none.
        "resend" => Request::Resend {
            email: get("email")?,
            password: get("password").unwrap_or_default(),
        },
        "verify" => Request::Verify {
            email: get("email")?,
            otp: get("otp")?.trim().to_string(),
            // The naive flow never asked for it again; an empty field is
            // the flow's to judge.
            password: get("password").unwrap_or_default(),
        },
        _ => Request::Login {
            email: get("email")?,
            password: get("password")?,
        },
    })
}

fn plain(status: StatusCode, text: &str) -> Reply {
    let mut reply = hyper::Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    reply
}

fn html(status: StatusCode, body: &str) -> Reply {
    let mut reply = plain(status, body);
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    reply
}

/// A flow's response: JSON `{"code", "message"}` for a program, a page for
/// a person; the status from the spec's table either way.
/// `email` is the form's address, carried to the next page's form.
fn answer(json: bool, kind: &str, response: &Response, email: Option<&str>, set_cookie: Option<String>) -> Reply {
    let status = StatusCode::from_u16(response.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut reply = if json {
        let body = serde_json::json!({"code": response.code.as_str(), "message": response.message});
        let mut r = plain(status, &body.to_string());
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    } else {
        html(status, &page::result(kind, response, email))
    };
    if let Some(value) = set_cookie.and_then(|v| HeaderValue::from_str(&v).ok()) {
        reply.headers_mut().insert(SET_COOKIE, value);
    }
    reply
}

/// The ports of one request in a real process.
struct ServePorts<'a> {
    app: &'a App,
    arrived_ms: u64,
    label: Option<String>,
    requester: u64,
}

impl ServePorts<'_> {
    fn step(&self) {
        self.app.step();
    }
}

impl StatementHook for ServePorts<'_> {
    fn requester(&self) -> u64 {
        self.requester
    }
    fn before(&self, _sql: &'static str) -> Result<(), DbError> {
        self.step();
        Ok(())
    }
    fn wait_for_lock(&self, attempt: u32) -> Result<(), DbError> {
        // Another request of this process holds the write lock (SQLite's
        // own busy timeout covers other processes): poll, as its busy
        // handler does, until the same timeout.
        const POLL_MS: u64 = 5;
        if u64::from(attempt) * POLL_MS > BUSY_TIMEOUT_MS {
            return Err(DbError::Busy);
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
        Ok(())
    }
}

impl Ports for ServePorts<'_> {
    type Platform = Std;
    fn db(&self) -> Db<'_, Std> {
        self.app.store.db(self)
    }
    fn now_ms(&self) -> u64 {
        now_ms()
    }
    fn arrived_ms(&self) -> u64 {
        self.arrived_ms
    }
    fn random_u64(&self) -> u64 {
        u64::from_le_bytes(random_bytes::<8>())
    }
    fn send_mail(&self, mail: Mail) -> Result<Sent, WorkerCrashed> {
        self.step();
        match smtp_send(self.app.config.smtp, &mail, self.label.as_deref()) {
            Ok(()) => Ok(Sent::Accepted),
            Err(e) => {
                // The address and the reason; never the code.
                eprintln!("otpsim serve: mail to {} not sent: {e}", mail.to);
                self.app.mail_owed.store(true, Ordering::SeqCst);
                Ok(Sent::Refused)
            }
        }
    }
    fn with_memory<R>(&self, f: impl FnOnce(&mut WorkerMemory) -> R) -> Result<R, WorkerCrashed> {
        self.step();
        Ok(f(&mut self.app.memory.lock().unwrap_or_else(|p| p.into_inner())))
    }
}

fn smtp_send(server: SocketAddr, mail: &Mail, label: Option<&str>) -> Result<(), String> {
    use lettre::message::header::{HeaderName, HeaderValue as MailHeader};
    use lettre::Transport as _;
    let mut message = lettre::Message::builder()
        .from("otpsim <noreply@otpsim.test>".parse().map_err(|e| format!("{e}"))?)
        .to(mail.to.as_str().parse().map_err(|e| format!("{e}"))?)
        .subject("Your verification code");
    if let Some(label) = label {
        message = message.raw_header(MailHeader::new(
            HeaderName::new_from_ascii_str("X-Otpsim-Request"),
            label.to_string(),
        ));
    }
    let body = format!(
        "Your verification code is {}.\r\nReference: {}\r\n",
        mail.otp.digits(),
        mail.temp_id
    );
    let message = message.body(body).map_err(|e| e.to_string())?;
    let transport = lettre::SmtpTransport::builder_dangerous(server.ip().to_string())
        .port(server.port())
        .timeout(Some(Duration::from_secs(30)))
        .build();
    transport.send(&message).map(|_| ()).map_err(|e| e.to_string())
}

/// Signed session cookies: `base64url(JSON).base64url(HMAC-SHA256)`, the
/// payload readable (as Flask's is) and unforgeable without the secret.
pub mod cookie {
    use super::*;
    pub use crate::wire::{data_from_json, data_to_json, read};

    fn sign(secret: &[u8], payload: &str) -> String {
        URL_SAFE_NO_PAD.encode(otpsim_core::crypto::mac(secret, &[b"session", payload.as_bytes()]))
    }

    /// The cookie value for `data`.
    pub fn seal(secret: &[u8], data: &SessionData) -> String {
        let payload = URL_SAFE_NO_PAD.encode(data_to_json(data));
        let signature = sign(secret, &payload);
        format!("{payload}.{signature}")
    }

    /// The session in a cookie value, if its signature holds.
    pub fn open(secret: &[u8], value: &str) -> Option<SessionData> {
        let (payload, signature) = value.split_once('.')?;
        let expected = sign(secret, payload);
        if !otpsim_core::crypto::constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
            return None;
        }
        read(payload)
    }
}

/// The pages: plain HTML forms a person can use.
mod page {
    use otpsim_core::{Code, Response};

    fn escape(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }

    fn layout(title: &str, body: &str) -> String {
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
             <style>body{{font-family:sans-serif;max-width:32em;margin:2em auto;padding:0 1em}}label{{display:block;margin:.6em 0}}\
             input{{font-size:1em;padding:.3em;width:100%;box-sizing:border-box}}button{{font-size:1em;padding:.4em 1.2em}}\
             .code{{color:#666;font-family:monospace}}</style></head>\n<body>\n<h1>{title}</h1>\n{body}\n\
             <p><a href=\"/signup\">Sign up</a> · <a href=\"/verify\">Verify</a> · <a href=\"/login\">Log in</a></p>\n</body></html>"
        )
    }

    pub fn index() -> String {
        layout(
            "otpsim serve",
            "<p>A signup flow with email codes, served by otpsim for testing.</p>",
        )
    }

    /// One input: its name, type, label and `autocomplete` token.
    struct Field(&'static str, &'static str, &'static str, &'static str);

    /// The form of `kind`, its address filled in with `email`; signup asks
    /// for a password only where the flow takes it there.
    pub fn form(kind: &str, email: Option<&str>, password_at_signup: bool) -> String {
        let address = Field("email", "email", "Email", "email");
        let (title, fields, button) = match kind {
            "signup" if password_at_signup => (
                "Sign up",
                vec![address, Field("password", "password", "Password", "new-password")],
                "Send me a code",
            ),
            "signup" => ("Sign up", vec![address], "Send me a code"),
            "resend" if password_at_signup => (
                "Send the code again",
                vec![address, Field("password", "password", "Password", "current-password")],
                "Send it again",
            ),
            "resend" => ("Send the code again", vec![address], "Send it again"),
            "verify" => (
                "Verify your email",
                vec![
                    address,
                    Field("otp", "text", "Code from the email", "one-time-code"),
                    Field("password", "password", "Password", "new-password"),
                ],
                "Verify",
            ),
            _ => (
                "Log in",
                vec![address, Field("password", "password", "Password", "current-password")],
                "Log in",
            ),
        };
        let inputs: String = fields
            .iter()
            .map(|Field(name, kind, label, autocomplete)| {
                let value = match (*name, email) {
                    ("email", Some(e)) => format!(" value=\"{}\"", escape(e)),
                    _ => String::new(),
                };
                let numeric = if *name == "otp" { " inputmode=\"numeric\"" } else { "" };
                format!(
                    "<label>{label} <input name=\"{name}\" id=\"{name}\" type=\"{kind}\" autocomplete=\"{autocomplete}\"{numeric} required{value}></label>\n"
                )
            })
            .collect();
        // Most apps offer to mail the code again beside its form.
        let resend = if kind == "verify" {
            format!(
                "\n<p><a href=\"/resend{}\" id=\"resend\">Send the code again</a></p>",
                carried(email)
            )
        } else {
            String::new()
        };
        layout(
            title,
            &format!("<form method=\"post\" action=\"/{kind}\" id=\"{kind}-form\">\n{inputs}<button type=\"submit\" id=\"submit\">{button}</button>\n</form>{resend}"),
        )
    }

    /// `?email=…` for a link that carries the address, or nothing.
    fn carried(email: Option<&str>) -> String {
        email
            .map(|e| {
                format!(
                    "?email={}",
                    form_urlencoded::byte_serialize(e.as_bytes()).collect::<String>()
                )
            })
            .unwrap_or_default()
    }

    /// The page after a form: a heading in words, the flow's message, its
    /// code for programs and tests, and the next step.
    pub fn result(kind: &str, response: &Response, email: Option<&str>) -> String {
        let carried = carried(email);
        let next = match (kind, response.code) {
            ("signup" | "resend", Code::Ok) => {
                format!("<p><a href=\"/verify{carried}\" id=\"next\">Enter the code</a></p>")
            }
            ("verify", Code::Ok | Code::AlreadyVerified) => {
                format!("<p><a href=\"/login{carried}\" id=\"next\">Log in</a></p>")
            }
            _ => String::new(),
        };
        let heading = match (kind, response.code.is_success()) {
            ("signup" | "resend", true) => "Check your email",
            ("verify", true) => "Your email is verified",
            ("login", true) => "You are signed in",
            (_, false) if response.code == Code::Retry => "Please try again",
            _ => "That did not work",
        };
        layout(
            heading,
            &format!(
                "<p id=\"message\">{}</p>\n<p class=\"code\" id=\"code\">{}</p>\n{next}",
                escape(&response.message),
                response.code
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_open_only_with_their_own_secret_and_payload() {
        let data = SessionData {
            temp_user_id: Some("temp_1_0000000a".into()),
            email: Some("ana@example.com".into()),
            user: None,
        };
        let sealed = cookie::seal(b"k", &data);
        assert_eq!(cookie::open(b"k", &sealed), Some(data.clone()));
        assert_eq!(cookie::read(&sealed), Some(data.clone()));
        assert_eq!(cookie::open(b"other", &sealed), None);
        let (_, signature) = sealed.split_once('.').unwrap();
        let forged = SessionData {
            user: Some("ana@example.com".into()),
            ..data
        };
        let forged = format!("{}.{signature}", URL_SAFE_NO_PAD.encode(cookie::data_to_json(&forged)));
        assert_eq!(cookie::open(b"k", &forged), None);
    }

    #[test]
    fn pages_carry_the_address_and_ask_only_for_what_the_flow_uses() {
        let signup = page::form("signup", None, false);
        assert!(!signup.contains("name=\"password\""), "{signup}");
        assert!(page::form("signup", None, true).contains("autocomplete=\"new-password\""));
        let verify = page::form("verify", Some("ana+1@example.com"), false);
        assert!(verify.contains("value=\"ana+1@example.com\""), "{verify}");
        assert!(verify.contains("autocomplete=\"one-time-code\""), "{verify}");
        assert!(verify.contains("name=\"viewport\""), "{verify}");
        assert_eq!(verify.matches(" required").count(), 3, "{verify}");
        assert!(
            verify.contains("href=\"/resend?email=ana%2B1%40example.com\""),
            "{verify}"
        );
        assert!(page::form("resend", None, false).contains("action=\"/resend\""));
        let done = page::result("signup", &Response::new(Code::Ok, "sent"), Some("ana+1@example.com"));
        assert!(done.contains("<h1>Check your email</h1>"), "{done}");
        assert!(done.contains("href=\"/verify?email=ana%2B1%40example.com\""), "{done}");
        let refused = page::result("verify", &Response::new(Code::InvalidOtp, "no"), None);
        assert!(
            refused.contains("<h1>That did not work</h1>") && refused.contains("id=\"code\">invalid_otp<"),
            "{refused}"
        );
        // Bad input is escaped where it is shown again.
        assert!(page::form("verify", Some("\"><script>"), true).contains("&quot;&gt;&lt;script&gt;"));
    }

    #[test]
    fn forms_are_read_strictly() {
        assert_eq!(
            parse_form("resend", b"email=ana%40example.com"),
            Ok(Request::Resend {
                email: "ana@example.com".into(),
                password: String::new()
            })
        );
        assert_eq!(
            parse_form("signup", b"email=ana%40example.com&password=p+w"),
            Ok(Request::Signup {
                email: "ana@example.com".into(),
                password: "p w".into()
            })
        );
        for (kind, body, why) in [
            ("signup", &b"password=x"[..], "`email` is missing"),
            ("signup", b"email=a&email=b&password=x", "given twice"),
            ("login", b"email=a&password=x&admin=1", "Unknown field `admin`"),
            ("verify", b"email=a&password=x", "`otp` is missing"),
            ("resend", b"password=x", "`email` is missing"),
            ("resend", b"email=a&otp=1", "Unknown field `otp`"),
        ] {
            let err = parse_form(kind, body).unwrap_err();
            assert!(err.contains(why), "{kind} {body:?}: {err}");
        }
    }
}
