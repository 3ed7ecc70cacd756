//! The signup/verify flow behind one trait, [`Flow`], and its three
//! variants ([`Variant`]), as `docs/flows.md` describes them.
//!
//! Each flow is straight-line code over [`Ports`]; every port call is a step.

mod idempotent;
mod naive;
mod seed_fix;

pub use idempotent::MAX_SENDS;
pub use seed_fix::DEDUP_WINDOW_MS;

use std::fmt;
use std::str::FromStr;

use rusqlite::params;

use crate::crypto::{constant_time_eq, password_hash};
use crate::domain::{Code, Email, Otp, Request, Response, Session, TempId};
use crate::ports::Ports;
pub use crate::ports::WorkerCrashed;
use crate::store::DbError;

/// Settings shared by every variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowConfig {
    /// Lifetime of a code, in milliseconds.
    pub otp_ttl_ms: u64,
    /// Wrong codes allowed per pending registration.
    pub max_attempts: u32,
    /// The server's secret (password hashes, code MACs).
    pub secret: Vec<u8>,
    /// How the app's database driver groups statements into transactions.
    pub db_mode: DbMode,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            otp_ttl_ms: 10 * 60 * 1000,
            max_attempts: 5,
            secret: b"otpsim-server-secret".to_vec(),
            db_mode: DbMode::Autocommit,
        }
    }
}

/// How the app's database driver groups the naive and seed_fix flows'
/// writes, which the flows write as separate statements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DbMode {
    /// Every statement commits on its own: another request can run between
    /// the DELETE and the INSERT of one signup.
    #[default]
    Autocommit,
    /// Python's `sqlite3` as the seed's app uses it: the first write opens
    /// a transaction (taking SQLite's write lock) that lasts until the
    /// app's `commit()`, so a signup's DELETE and INSERT, and a verify's
    /// INSERT and DELETE, are each one transaction.
    Python,
}

impl DbMode {
    /// The name scenario files and flags use.
    pub fn as_str(self) -> &'static str {
        match self {
            DbMode::Autocommit => "autocommit",
            DbMode::Python => "python",
        }
    }
}

impl FromStr for DbMode {
    type Err = String;
    fn from_str(s: &str) -> Result<DbMode, String> {
        match s {
            "autocommit" => Ok(DbMode::Autocommit),
            "python" => Ok(DbMode::Python),
            _ => Err(format!("db_mode {s:?}; expected \"autocommit\" or \"python\"")),
        }
    }
}

/// Runs a group of writes the app issues back to back: one by one under
/// autocommit, in one transaction under Python's driver (whose implicit
/// BEGIN takes the write lock at the first write, as BEGIN IMMEDIATE does
/// right before it).
fn writes<P: crate::platform::Platform, R>(
    db: &crate::store::Db<'_, P>,
    cfg: &FlowConfig,
    body: impl FnOnce(&crate::store::Db<'_, P>) -> Result<R, DbError>,
) -> Result<R, DbError> {
    match cfg.db_mode {
        DbMode::Autocommit => body(db),
        DbMode::Python => db.immediate(body),
    }
}

/// The seed fix's four parts, each of which can be switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeedFixSwitches {
    /// Step 1: the per-worker lock and 2 s window.
    pub dedup: bool,
    /// Step 2: clear the session's OTP keys first.
    pub clear_session: bool,
    /// Step 4: prefer the database's temp_id for the email.
    pub db_check: bool,
    /// Verify: look the temp_id up by the session's email.
    pub fallback: bool,
}

impl SeedFixSwitches {
    /// The fix as shipped.
    pub const ALL_ON: SeedFixSwitches = SeedFixSwitches {
        dedup: true,
        clear_session: true,
        db_check: true,
        fallback: true,
    };
    /// The switch names, in the order variant strings list them.
    pub const NAMES: [&'static str; 4] = ["dedup", "clear_session", "db_check", "fallback"];

    fn switch(&mut self, name: &str) -> Option<&mut bool> {
        match name {
            "dedup" => Some(&mut self.dedup),
            "clear_session" => Some(&mut self.clear_session),
            "db_check" => Some(&mut self.db_check),
            "fallback" => Some(&mut self.fallback),
            _ => None,
        }
    }

    /// All 16 combinations, the shipped fix first.
    pub fn all_combinations() -> Vec<SeedFixSwitches> {
        (0..16u8)
            .map(|off| {
                let mut s = SeedFixSwitches::ALL_ON;
                for (i, name) in Self::NAMES.iter().enumerate() {
                    if off & (1 << i) != 0 {
                        *s.switch(name).expect("a listed name") = false;
                    }
                }
                s
            })
            .collect()
    }
}

/// A signup/verify flow: what every worker process of a deployment runs.
///
/// The simulated world, the sweep over schedules and the generated search
/// are generic over it. The three [`Variant`]s implement it, and so can a
/// user's own flow (`examples/custom_flow.rs`): write the handlers as
/// straight-line code over [`Ports`], and every port call becomes a step at
/// which the scheduler may run another request.
pub trait Flow: fmt::Display + Clone + Send + Sync + 'static {
    /// The tables the flow needs, applied to each fresh database.
    fn schema(&self) -> &'static str;

    /// Runs when a worker process (re)starts, before it takes requests.
    fn recover<E: Ports>(&self, env: &E, cfg: &FlowConfig) -> Result<(), WorkerCrashed> {
        let _ = (env, cfg);
        Ok(())
    }

    /// Handles one request. `session` is the session the request carried;
    /// the handler's changes to it are the new cookie (or server session).
    fn handle<E: Ports>(&self, env: &E, cfg: &FlowConfig, session: &mut Session, request: &Request) -> Handled;

    /// What the checker reads whenever no request is in flight: the
    /// `(email, temp_id)` of every pending registration, sorted.
    fn pending_query(&self) -> &'static str {
        "SELECT email, temp_id FROM temp_registrations ORDER BY email, temp_id"
    }

    /// Every account's email, sorted.
    fn accounts_query(&self) -> &'static str {
        "SELECT email FROM users ORDER BY email"
    }
}

/// Which of the three flows of this project a deployment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Variant {
    /// The app before its fix.
    Naive,
    /// The fix as the seed describes it, some switches possibly off.
    SeedFix(SeedFixSwitches),
    /// The design this project recommends.
    Idempotent,
}

/// A variant string that names no variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown variant {given:?}: {why}; expected naive, idempotent, seed_fix, or seed_fix followed by switches to turn off, e.g. seed_fix-dedup-fallback (switches: dedup, clear_session, db_check, fallback)")]
pub struct VariantError {
    given: String,
    why: String,
}

impl FromStr for Variant {
    type Err = VariantError;
    fn from_str(s: &str) -> Result<Variant, VariantError> {
        let err = |why: String| VariantError {
            given: s.to_string(),
            why,
        };
        let mut parts = s.split('-');
        match parts.next() {
            Some("naive") | Some("idempotent") if s.contains('-') => Err(err("only seed_fix has switches".to_string())),
            Some("naive") => Ok(Variant::Naive),
            Some("idempotent") => Ok(Variant::Idempotent),
            Some("seed_fix") => {
                let mut switches = SeedFixSwitches::ALL_ON;
                for name in parts {
                    match switches.switch(name) {
                        Some(on) if *on => *on = false,
                        Some(_) => return Err(err(format!("switch {name:?} is named twice"))),
                        None => return Err(err(format!("no switch {name:?}"))),
                    }
                }
                Ok(Variant::SeedFix(switches))
            }
            _ => Err(err("no such variant".to_string())),
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Variant::Naive => "naive".to_string(),
            Variant::Idempotent => "idempotent".to_string(),
            Variant::SeedFix(switches) => {
                let mut s = *switches;
                let mut name = "seed_fix".to_string();
                for switch in SeedFixSwitches::NAMES {
                    if !*s.switch(switch).expect("a listed name") {
                        name.push('-');
                        name.push_str(switch);
                    }
                }
                name
            }
        };
        // `pad`, so that `{:<12}` lines up tables.
        f.pad(&name)
    }
}

/// What a handler produces: a response, or nothing because its worker died.
pub type Handled = Result<Response, WorkerCrashed>;

impl Variant {
    /// The variants a newcomer compares: naive, the shipped fix, idempotent.
    pub const MAIN: [Variant; 3] = [
        Variant::Naive,
        Variant::SeedFix(SeedFixSwitches::ALL_ON),
        Variant::Idempotent,
    ];

    /// Whether signup asks for the password. Idempotent takes it on the
    /// verify form, the request that proves its sender reads the mailbox.
    pub fn password_at_signup(&self) -> bool {
        !matches!(self, Variant::Idempotent)
    }
}

impl Flow for Variant {
    fn schema(&self) -> &'static str {
        match self {
            Variant::Naive | Variant::SeedFix(_) => naive::SCHEMA,
            Variant::Idempotent => idempotent::SCHEMA,
        }
    }

    fn recover<E: Ports>(&self, env: &E, cfg: &FlowConfig) -> Result<(), WorkerCrashed> {
        match self {
            Variant::Idempotent => idempotent::recover(env, cfg),
            Variant::Naive | Variant::SeedFix(_) => Ok(()),
        }
    }

    fn handle<E: Ports>(&self, env: &E, cfg: &FlowConfig, session: &mut Session, request: &Request) -> Handled {
        let email = match Email::parse(request.email()) {
            Ok(e) => e,
            Err(e) => return Ok(Response::new(Code::BadRequest, e.to_string())),
        };
        match request {
            Request::Signup { password, .. } => {
                if password.is_empty() && self.password_at_signup() {
                    return Ok(Response::new(Code::BadRequest, "A password is required."));
                }
                match self {
                    Variant::Naive => naive::signup(env, cfg, session, &email, password),
                    Variant::SeedFix(s) => seed_fix::signup(env, cfg, *s, session, &email, password),
                    Variant::Idempotent => idempotent::signup(env, cfg, session, &email),
                }
            }
            Request::Verify { otp, password, .. } => {
                let otp = match Otp::parse(otp) {
                    Ok(o) => o,
                    Err(e) => return Ok(Response::new(Code::BadRequest, e.to_string())),
                };
                match self {
                    // The app reads the registration from the session and
                    // ignores the form's email and password.
                    Variant::Naive => naive::verify(env, cfg, session, &otp),
                    Variant::SeedFix(s) => seed_fix::verify(env, cfg, *s, session, &otp),
                    Variant::Idempotent => idempotent::verify(env, cfg, session, &email, &otp, password),
                }
            }
            Request::Login { password, .. } => login(env, cfg, session, &email, password),
            Request::Resend { password, .. } => match self {
                Variant::Idempotent => idempotent::resend_code(env, cfg, session, &email),
                // No resend of their own: the browser submits its signup
                // form again.
                Variant::Naive | Variant::SeedFix(_) => {
                    let signup = Request::Signup {
                        email: request.email().to_string(),
                        password: password.clone(),
                    };
                    self.handle(env, cfg, session, &signup)
                }
            },
        }
    }
}

/// `POST /login`, shared by every variant (and free for a user's flow to
/// call): only what verify put in `users` differs between them. One answer
/// for an unknown address, an unverified one and a wrong password, so that
/// login tells nobody which addresses have accounts.
pub fn login(env: &impl Ports, cfg: &FlowConfig, session: &mut Session, email: &Email, password: &str) -> Handled {
    let refused = || Response::new(Code::BadCredentials, "Wrong email or password.");
    let found = env.db().query_first(
        "SELECT password_hash FROM users WHERE email = ?1",
        params![email.as_str()],
    );
    let row = match found {
        Ok(row) => row,
        Err(DbError::Crashed) => return Err(WorkerCrashed),
        Err(_) => {
            return Ok(Response::new(
                Code::Retry,
                "The service is busy; nothing was changed. Please retry.",
            ))
        }
    };
    let offered = password_hash(&cfg.secret, email.as_str(), password);
    match row {
        Some(row) if constant_time_eq(row.text(0).as_bytes(), offered.as_bytes()) => {
            session.set_user(email.as_str());
            Ok(Response::new(Code::Ok, format!("Signed in as {email}.")))
        }
        _ => Ok(refused()),
    }
}

/// A fresh `temp_<unix secs>_<8 hex>` and six random digits, as the app
/// makes them.
fn new_temp_id(env: &impl Ports) -> TempId {
    TempId::new(env.now_ms() / 1000, env.random_u64() as u32)
}

/// Turns a flow body's database error into the answer the flow gives, and
/// a crash into no answer at all.
fn answer_db_error(result: Result<Response, DbError>, on_error: impl FnOnce(DbError) -> Handled) -> Handled {
    match result {
        Ok(response) => Ok(response),
        Err(DbError::Crashed) => Err(WorkerCrashed),
        Err(e) => on_error(e),
    }
}

fn not_found(temp_id: &str) -> Response {
    Response::new(
        Code::NoRegistration,
        format!("No temp_registration found for temp_id: {temp_id}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_strings_round_trip() {
        for s in [
            "naive",
            "idempotent",
            "seed_fix",
            "seed_fix-dedup",
            "seed_fix-dedup-clear_session-db_check-fallback",
        ] {
            assert_eq!(s.parse::<Variant>().unwrap().to_string(), s);
        }
        let v: Variant = "seed_fix-fallback-dedup".parse().unwrap();
        assert_eq!(v.to_string(), "seed_fix-dedup-fallback");
    }

    #[test]
    fn bad_variant_strings_are_explained() {
        for (s, why) in [
            ("seed_fix-locks", "no switch \"locks\""),
            ("seed_fix-dedup-dedup", "named twice"),
            ("naive-dedup", "only seed_fix"),
            ("Naive", "no such variant"),
            ("", "no such variant"),
        ] {
            let err = s.parse::<Variant>().unwrap_err().to_string();
            assert!(err.contains(why) && err.contains("expected naive"), "{s:?}: {err}");
        }
    }

    #[test]
    fn there_are_sixteen_distinct_ablations() {
        let all = SeedFixSwitches::all_combinations();
        assert_eq!(all[0], SeedFixSwitches::ALL_ON);
        let names: std::collections::BTreeSet<String> = all.iter().map(|s| Variant::SeedFix(*s).to_string()).collect();
        assert_eq!(names.len(), 16);
    }
}
