//! `idempotent`: the design this project recommends. Each rule is here
//! because a schedule broke the design without it (README, "the
//! recommended design").
//!
//! - One pending row per email (the email is the key), so a duplicate
//!   signup cannot make a second registration.
//! - Signup takes no password. The password is chosen on the verify form,
//!   the one request that proves its sender reads the mailbox: otherwise
//!   anyone who knows an address signs up for it, and the owner then
//!   verifies an account whose password the stranger chose (pre-account
//!   hijacking, Sudhodanan and Paverd, USENIX Security 2022).
//! - Signup runs in one `BEGIN IMMEDIATE` transaction that reuses the
//!   pending row and its code, and pushes the code's expiry to a full
//!   `otp_ttl` from this mail: every email the user holds carries a code
//!   that is valid for `otp_ttl` from when that email was sent.
//! - A code is replaced only once it has been expired for longer than any
//!   request can wait for the database lock ([`REISSUE_GRACE_MS`]): a
//!   verify that arrived before the expiry may still be waiting.
//! - The same transaction queues the mail in an outbox; the code is sent
//!   after COMMIT, holding no lock (SMTP can be slow), and a worker that
//!   restarts after a crash sends what its predecessor committed but never
//!   mailed.
//! - Verify judges expiry by when the request arrived at the server, not
//!   by when it got the lock or a worker that was ready.
//! - Verify is keyed by the form's (email, code), never by the session; it
//!   counts the attempt before comparing (in constant time), creates the
//!   account with `ON CONFLICT DO NOTHING` and deletes the pending row, all
//!   in one transaction. Attempt limits live in the database, so they hold
//!   across workers.
//! - Codes are stored as an HMAC bound to the address; the mailed code is
//!   derived from the secret, so it can be re-sent without being stored.
//! - Any database failure rolls back and answers 503 `retry`.

use rusqlite::params;

use super::{answer_db_error, new_temp_id, FlowConfig, Handled, WorkerCrashed};
use crate::crypto::{code_mac, constant_time_eq, derive_code, password_hash};
use crate::domain::{Code, Email, Otp, Response, Session, TempId};
use crate::ports::{Mail, Ports};
use crate::store::DbError;

/// One pending row per email; accounts keep the MAC of the code that
/// verified them, to answer a repeated verify.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS temp_registrations (
    email TEXT PRIMARY KEY,
    temp_id TEXT NOT NULL UNIQUE,
    otp_mac TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    sends INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS users (
    email TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    otp_mac TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    temp_id TEXT PRIMARY KEY,
    email TEXT NOT NULL
);";

/// How often one code may be mailed: a duplicate signup re-sends it, a
/// flood of them does not turn the server into a mail cannon.
pub const MAX_SENDS: i64 = 5;

/// How long after its expiry a code is still re-sent rather than replaced.
/// A verify judges expiry by when it arrived, and may then wait for the
/// write lock up to SQLite's busy timeout (5 s): replacing the code sooner
/// could refuse a verify that arrived in time. A minute is well past it.
pub const REISSUE_GRACE_MS: u64 = 60_000;

const BUSY: &str = "The service is busy; nothing was changed. Please retry.";
const LOCKED: &str = "Too many wrong codes; try again with a new signup in a few minutes.";

fn retry(_: DbError) -> Handled {
    Ok(Response::new(Code::Retry, BUSY))
}

pub(super) fn signup(env: &impl Ports, cfg: &FlowConfig, session: &mut Session, email: &Email) -> Handled {
    let arrived = env.arrived_ms();
    let db = env.db();
    let e = email.as_str();
    let mut issued: Option<TempId> = None;
    let result = db.immediate(|db| {
        if db.query_first("SELECT 1 FROM users WHERE email = ?1", params![e])?.is_some() {
            return Ok(Response::new(Code::BadRequest, "This email already has an account; please sign in."));
        }
        let pending = db.query_first(
            "SELECT temp_id, expires_at, attempts, sends FROM temp_registrations WHERE email = ?1",
            params![e],
        )?;
        // The mail goes out right after COMMIT, with no wait in between:
        // its code is good for a full otp_ttl from now.
        let expires_at = env.now_ms() + cfg.otp_ttl_ms;
        let temp_id = match pending {
            Some(row) if arrived < row.int(1) as u64 + REISSUE_GRACE_MS => {
                if row.int(2) >= i64::from(cfg.max_attempts) {
                    return Ok(Response::new(Code::Locked, LOCKED));
                }
                if row.int(3) >= MAX_SENDS {
                    return Ok(Response::new(
                        Code::TooManyRequests,
                        "This code was sent several times already; please check your inbox.",
                    ));
                }
                db.execute(
                    "UPDATE temp_registrations SET sends = sends + 1, expires_at = max(expires_at, ?2) WHERE email = ?1",
                    params![e, expires_at as i64],
                )?;
                TempId::parse(row.text(0)).map_err(|err| DbError::Other(err.to_string()))?
            }
            _ => {
                let temp_id = new_temp_id(env);
                let otp = derive_code(&cfg.secret, e, temp_id.as_str());
                db.execute(
                    "INSERT INTO temp_registrations (email, temp_id, otp_mac, created_at, expires_at, attempts, sends)
                     VALUES (?1, ?2, ?3, ?4, ?5, 0, 1)
                     ON CONFLICT (email) DO UPDATE SET temp_id = excluded.temp_id, otp_mac = excluded.otp_mac,
                       created_at = excluded.created_at, expires_at = excluded.expires_at, attempts = 0, sends = 1",
                    params![e, temp_id.as_str(), code_mac(&cfg.secret, e, &otp), arrived as i64, expires_at as i64],
                )?;
                temp_id
            }
        };
        db.execute(
            "INSERT INTO outbox (temp_id, email) VALUES (?1, ?2) ON CONFLICT (temp_id) DO NOTHING",
            params![temp_id.as_str(), e],
        )?;
        issued = Some(temp_id);
        Ok(Response::new(Code::Ok, format!("Verification code sent to {email}")))
    });
    if let (Ok(r), Some(temp_id)) = (&result, &issued) {
        if r.code == Code::Ok {
            // After COMMIT: SMTP holds no database lock.
            mail_and_clear(env, cfg, email, temp_id)?;
            // Only a hint for the browser; verify never trusts it.
            session.set_temp_user_id(temp_id.as_str());
            session.set_email(e);
        }
    }
    answer_db_error(result, retry)
}

/// Mails the registration's code, then removes its outbox row. A failure
/// to remove it only means the next sweep sends the same code again.
fn mail_and_clear(env: &impl Ports, cfg: &FlowConfig, email: &Email, temp_id: &TempId) -> Result<(), WorkerCrashed> {
    let otp = derive_code(&cfg.secret, email.as_str(), temp_id.as_str());
    env.send_mail(Mail {
        to: email.clone(),
        otp,
        temp_id: temp_id.clone(),
    })?;
    match env
        .db()
        .execute("DELETE FROM outbox WHERE temp_id = ?1", params![temp_id.as_str()])
    {
        Err(DbError::Crashed) => Err(WorkerCrashed),
        _ => Ok(()),
    }
}

/// What a worker does when it (re)starts: mail every code that a worker
/// committed but died before sending, each good for a full `otp_ttl` from
/// this mail.
pub(super) fn recover(env: &impl Ports, cfg: &FlowConfig) -> Result<(), WorkerCrashed> {
    let db = env.db();
    let unsent = db.query(
        "SELECT o.email, o.temp_id FROM outbox o JOIN temp_registrations t ON t.temp_id = o.temp_id ORDER BY o.temp_id",
        params![],
    );
    let rows = match unsent {
        Ok(rows) => rows,
        Err(DbError::Crashed) => return Err(WorkerCrashed),
        // The next restart sweeps again.
        Err(_) => return Ok(()),
    };
    for row in rows {
        let (Ok(email), Ok(temp_id)) = (Email::parse(row.text(0)), TempId::parse(row.text(1))) else {
            continue;
        };
        // The promise of a full otp_ttl counts from the mail: read the
        // clock once the lock is held (the wait for it takes time), and
        // mail right after COMMIT, with no wait in between.
        let extended = db.immediate(|db| {
            let expires_at = env.now_ms() + cfg.otp_ttl_ms;
            db.execute(
                "UPDATE temp_registrations SET expires_at = max(expires_at, ?2) WHERE temp_id = ?1",
                params![temp_id.as_str(), expires_at as i64],
            )
        });
        match extended {
            Ok(_) => mail_and_clear(env, cfg, &email, &temp_id)?,
            Err(DbError::Crashed) => return Err(WorkerCrashed),
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

pub(super) fn verify(
    env: &impl Ports,
    cfg: &FlowConfig,
    session: &mut Session,
    email: &Email,
    otp: &Otp,
    password: &str,
) -> Handled {
    // Expiry is judged by arrival: the wait for the lock, or for a worker
    // process that is still starting, is the server's delay, not the user's.
    let arrived = env.arrived_ms();
    if password.is_empty() {
        return Ok(Response::new(Code::BadRequest, "Choose a password for your account."));
    }
    let db = env.db();
    let e = email.as_str();
    let submitted = code_mac(&cfg.secret, e, otp);
    let result = db.immediate(|db| {
        let pending = db.query_first(
            "SELECT otp_mac, expires_at, attempts FROM temp_registrations WHERE email = ?1",
            params![e],
        )?;
        let Some(row) = pending else {
            let account = db.query_first("SELECT otp_mac FROM users WHERE email = ?1", params![e])?;
            return Ok(match account {
                Some(acc) if constant_time_eq(acc.text(0).as_bytes(), submitted.as_bytes()) => {
                    Response::new(Code::AlreadyVerified, "This email is already verified; please sign in.")
                }
                Some(_) => Response::new(Code::InvalidOtp, "That code is not right."),
                None => Response::new(
                    Code::NoRegistration,
                    format!("No pending registration for {email}; please sign up again."),
                ),
            });
        };
        if row.int(2) >= i64::from(cfg.max_attempts) {
            return Ok(Response::new(Code::Locked, LOCKED));
        }
        if arrived >= row.int(1) as u64 {
            return Ok(Response::new(
                Code::OtpExpired,
                "This code has expired; please sign up again.",
            ));
        }
        // Count first: concurrent guesses each see the others' attempts.
        db.execute(
            "UPDATE temp_registrations SET attempts = attempts + 1 WHERE email = ?1",
            params![e],
        )?;
        if !constant_time_eq(row.text(0).as_bytes(), submitted.as_bytes()) {
            let left = i64::from(cfg.max_attempts) - row.int(2) - 1;
            return Ok(Response::new(
                Code::InvalidOtp,
                format!("That code is not right; {left} attempts left."),
            ));
        }
        // The password comes with the proof of ownership, never from signup.
        db.execute(
            "INSERT INTO users (email, password_hash, otp_mac) VALUES (?1, ?2, ?3) ON CONFLICT (email) DO NOTHING",
            params![e, password_hash(&cfg.secret, e, password), row.text(0)],
        )?;
        db.execute("DELETE FROM temp_registrations WHERE email = ?1", params![e])?;
        Ok(Response::new(Code::Ok, "Email verified; your account is ready."))
    });
    if matches!(&result, Ok(r) if r.code == Code::Ok) {
        session.clear();
    }
    answer_db_error(result, retry)
}
