//! `naive`: the app before its fix. Every statement autocommits, the
//! pending table has no unique email, and the session is the only link
//! between the verify form and the registration: this reproduces the
//! incident.

use rusqlite::params;

use super::{answer_db_error, new_temp_id, not_found, writes, FlowConfig, Handled};
use crate::crypto::{constant_time_eq, password_hash};
use crate::domain::{Code, Email, Otp, Response, Session, TempId};
use crate::ports::{Mail, Ports};
use crate::store::DbError;

/// The app's tables (shared by `seed_fix`).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS temp_registrations (
    temp_id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    otp TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL
);";

pub(super) const DELETE_BY_EMAIL: &str = "DELETE FROM temp_registrations WHERE email = ?1";
pub(super) const INSERT_PENDING: &str =
    "INSERT INTO temp_registrations (temp_id, email, password_hash, otp, created_at) VALUES (?1, ?2, ?3, ?4, ?5)";
pub(super) const SELECT_BY_TEMP_ID: &str =
    "SELECT email, password_hash, otp, created_at FROM temp_registrations WHERE temp_id = ?1";
pub(super) const INSERT_USER: &str = "INSERT INTO users (email, password_hash) VALUES (?1, ?2)";
pub(super) const DELETE_BY_TEMP_ID: &str = "DELETE FROM temp_registrations WHERE temp_id = ?1";

fn server_error(_: DbError) -> Handled {
    // The exception escapes to Flask's default handler.
    Ok(Response::new(Code::ServerError, "Internal Server Error"))
}

pub(super) fn signup(
    env: &impl Ports,
    cfg: &FlowConfig,
    session: &mut Session,
    email: &Email,
    password: &str,
) -> Handled {
    answer_db_error(
        (|| {
            let (temp_id, otp) = replace_registration(env, cfg, email, password)?;
            env.send_mail(Mail {
                to: email.clone(),
                otp,
                temp_id: temp_id.clone(),
            })?;
            session.set_temp_user_id(temp_id.as_str());
            session.set_email(email.as_str());
            Ok(Response::new(Code::Ok, format!("Verification code sent to {email}")))
        })(),
        server_error,
    )
}

pub(super) fn verify(env: &impl Ports, cfg: &FlowConfig, session: &mut Session, otp: &Otp) -> Handled {
    let Some(temp_id) = session.temp_user_id().map(str::to_string) else {
        return Ok(Response::new(
            Code::SessionMissing,
            "No signup in progress in this session; please sign up again.",
        ));
    };
    answer_db_error(
        (|| {
            let db = env.db();
            let Some(row) = db.query_first(SELECT_BY_TEMP_ID, params![temp_id])? else {
                return Ok(not_found(&temp_id));
            };
            if let Some(r) = check_code(env, cfg, row.int(3), row.text(2), otp) {
                return Ok(r);
            }
            writes(&db, cfg, |db| {
                db.execute(INSERT_USER, params![row.text(0), row.text(1)])?;
                db.execute(DELETE_BY_TEMP_ID, params![temp_id])
            })?;
            session.clear();
            Ok(Response::new(Code::Ok, "Email verified; your account is ready."))
        })(),
        server_error,
    )
}

/// Steps 1-3 of the app's signup: a new temp_id and code, the email's
/// pending rows deleted, the new one inserted; two autocommit statements
/// another request can run between.
pub(super) fn replace_registration(
    env: &impl Ports,
    cfg: &FlowConfig,
    email: &Email,
    password: &str,
) -> Result<(TempId, Otp), DbError> {
    let temp_id = new_temp_id(env);
    let otp = Otp::from_number(env.random_u64());
    let hash = password_hash(&cfg.secret, email.as_str(), password);
    writes(&env.db(), cfg, |db| {
        db.execute(DELETE_BY_EMAIL, params![email.as_str()])?;
        db.execute(
            INSERT_PENDING,
            params![
                temp_id.as_str(),
                email.as_str(),
                hash,
                otp.digits(),
                env.now_ms() as i64
            ],
        )
    })?;
    Ok((temp_id, otp))
}

/// The app's checks of a stored plaintext code: expiry, then equality.
pub(super) fn check_code(
    env: &impl Ports,
    cfg: &FlowConfig,
    created_at_ms: i64,
    stored: &str,
    otp: &Otp,
) -> Option<Response> {
    if env.now_ms().saturating_sub(created_at_ms as u64) >= cfg.otp_ttl_ms {
        return Some(Response::new(
            Code::OtpExpired,
            "This code has expired; please sign up again.",
        ));
    }
    if !constant_time_eq(stored.as_bytes(), otp.digits().as_bytes()) {
        return Some(Response::new(
            Code::InvalidOtp,
            "That code is not right; check the latest email.",
        ));
    }
    None
}
