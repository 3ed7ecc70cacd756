//! `seed_fix`: the fix exactly as the seed report describes it, with each
//! of its four parts behind a switch so that `otpsim ablate` can show which
//! of them matter.

use rusqlite::params;

use super::naive::{check_code, replace_registration, DELETE_BY_TEMP_ID, INSERT_USER, SELECT_BY_TEMP_ID};
use super::{answer_db_error, not_found, writes, FlowConfig, Handled, SeedFixSwitches, WorkerCrashed};
use crate::domain::{Code, Email, Otp, Response, Session, TempId};
use crate::platform::Platform;
use crate::ports::{Mail, Ports};
use crate::store::{Db, DbError};

/// The report's "2-second minimum delay between requests".
pub const DEDUP_WINDOW_MS: u64 = 2000;

const SELECT_ID_BY_EMAIL: &str = "SELECT temp_id FROM temp_registrations WHERE email = ?1";
/// The seed's `find_temp_id_by_email`: the newest registration for the address.
const SELECT_NEWEST_BY_EMAIL: &str =
    "SELECT temp_id FROM temp_registrations WHERE email = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 1";

pub(super) fn signup(
    env: &impl Ports,
    cfg: &FlowConfig,
    switches: SeedFixSwitches,
    session: &mut Session,
    email: &Email,
    password: &str,
) -> Handled {
    if switches.dedup {
        // The seed's request flow calls `is_request_allowed` on its own,
        // then `set_request_lock`: two steps, so two requests on one
        // worker can both pass the check before either sets the lock.
        let now = env.now_ms();
        let allowed = env.with_memory(|memory| {
            let lock = memory.request_locks.get(email).copied().unwrap_or_default();
            let recent = lock
                .last_started_ms
                .is_some_and(|t| now.saturating_sub(t) < DEDUP_WINDOW_MS);
            !lock.held && !recent
        })?;
        if !allowed {
            return Ok(Response::new(Code::TooManyRequests, "Please wait before trying again"));
        }
        env.with_memory(|memory| {
            let lock = memory.request_locks.entry(email.clone()).or_default();
            lock.held = true;
            lock.last_started_ms = Some(now);
        })?;
    }
    let handled = signup_locked(env, cfg, switches, session, email, password);
    if switches.dedup {
        env.with_memory(|memory| memory.request_locks.entry(email.clone()).or_default().held = false)?;
    }
    handled
}

fn signup_locked(
    env: &impl Ports,
    cfg: &FlowConfig,
    switches: SeedFixSwitches,
    session: &mut Session,
    email: &Email,
    password: &str,
) -> Handled {
    if switches.clear_session {
        session.clear();
    }
    let db = env.db();
    let mut inserted: Option<TempId> = None;
    let result = (|| {
        let (temp_id, otp) = replace_registration(env, cfg, email, password)?;
        inserted = Some(temp_id.clone());
        env.send_mail(Mail {
            to: email.clone(),
            otp: otp.clone(),
            temp_id: temp_id.clone(),
        })?;
        let mut chosen = temp_id.as_str().to_string();
        if switches.db_check {
            if let Some(row) = db.query_first(SELECT_ID_BY_EMAIL, params![email.as_str()])? {
                if row.text(0) != chosen {
                    chosen = row.text(0).to_string();
                }
            }
        }
        session.set_temp_user_id(&chosen);
        session.set_email(email.as_str());
        if session.temp_user_id() != Some(chosen.as_str()) {
            return Ok(Response::new(Code::ServerError, "Session data inconsistency"));
        }
        Ok(Response::new(Code::Ok, format!("Verification code sent to {email}")))
    })();
    answer_db_error(result, |_| {
        let undo = inserted.as_ref().map(|t| (DELETE_BY_TEMP_ID, t.as_str()));
        undo_then_fail(
            &db,
            undo,
            "Registration failed because of a database error; please try again.",
        )
    })
}

pub(super) fn verify(
    env: &impl Ports,
    cfg: &FlowConfig,
    switches: SeedFixSwitches,
    session: &mut Session,
    otp: &Otp,
) -> Handled {
    let Some(mut temp_id) = session.temp_user_id().map(str::to_string) else {
        return Ok(Response::new(
            Code::SessionMissing,
            "No signup in progress in this session; please sign up again.",
        ));
    };
    let db = env.db();
    let mut inserted_user: Option<String> = None;
    let result = (|| {
        if switches.fallback {
            // The seed's snippet 5: `if db_temp_id and db_temp_id != temp_id`,
            // whether or not the session's registration still exists.
            if let Some(email) = session.email().map(str::to_string) {
                if let Some(found) = db.query_first(SELECT_NEWEST_BY_EMAIL, params![email])? {
                    if found.text(0) != temp_id {
                        temp_id = found.text(0).to_string();
                        session.set_temp_user_id(&temp_id);
                    }
                }
            }
        }
        let row = db.query_first(SELECT_BY_TEMP_ID, params![temp_id])?;
        let Some(row) = row else {
            return Ok(not_found(&temp_id));
        };
        if let Some(r) = check_code(env, cfg, row.int(3), row.text(2), otp) {
            return Ok(r);
        }
        writes(&db, cfg, |db| {
            db.execute(INSERT_USER, params![row.text(0), row.text(1)])?;
            inserted_user = Some(row.text(0).to_string());
            db.execute(DELETE_BY_TEMP_ID, params![temp_id])
        })?;
        session.clear();
        Ok(Response::new(Code::Ok, "Email verified; your account is ready."))
    })();
    answer_db_error(result, |_| {
        let undo = inserted_user.as_deref().map(|email| (DELETE_USER, email));
        undo_then_fail(
            &db,
            undo,
            "Verification failed because of a database error; please try again.",
        )
    })
}

const DELETE_USER: &str = "DELETE FROM users WHERE email = ?1";

/// The report's "immediate rollback": a best-effort delete of the row this
/// request inserted (its own failure ignored, unless the worker dies), then
/// a 500 with a clear message.
fn undo_then_fail<P: Platform>(db: &Db<'_, P>, undo: Option<(&'static str, &str)>, message: &str) -> Handled {
    if let Some((sql, key)) = undo {
        if db.execute(sql, params![key]) == Err(DbError::Crashed) {
            return Err(WorkerCrashed);
        }
    }
    Ok(Response::new(Code::ServerError, message))
}
