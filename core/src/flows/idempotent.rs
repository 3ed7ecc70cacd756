//! `idempotent`: the design this project recommends. Each rule is here
//! because a schedule broke the design without it (docs/findings.md, "the
//! recommended design"; `docs/flows.md` has the reasoning).
//!
//! - One pending row per email (the email is the key), so a duplicate
//!   signup cannot make a second registration.
//! - Signup takes no password. The password is chosen on the verify form,
//!   the one request that proves its sender reads the mailbox: otherwise
//!   anyone who knows an address signs up for it, and the owner then
//!   verifies an account whose password the stranger chose (pre-account
//!   hijacking, Sudhodanan and Paverd, USENIX Security 2022).
//! - A registration's code is never replaced while it is pending: a later
//!   signup re-sends the same code with a fresh full `otp_ttl`. So a verify
//!   that arrived while its code was current finds that code, however long
//!   it waited (for the lock, a restarting worker, a recovery): no rule
//!   rests on a bound of how long a wait lasts.
//! - A code is promised `otp_ttl` from when the mail server accepted it:
//!   the expiry is set after the send, in the same transaction that clears
//!   the outbox row. While a code's outbox row stands, its mail is not
//!   known to have gone, and the code does not expire.
//! - Signup runs in one `BEGIN IMMEDIATE` transaction and queues the mail
//!   in an outbox, one row per send (ids never reused); the code is sent
//!   after COMMIT, holding no lock (SMTP can be slow), and each send's
//!   clean-up removes only its own row. A worker that restarts after a crash sends what is
//!   still queued, unless its registration is gone; a verify that makes
//!   the account clears the address's queue.
//! - Verify judges expiry by when the request arrived at the server, not
//!   by when it got the lock or a worker that was ready.
//! - Verify is keyed by the form's (email, code), never by the session; it
//!   counts the attempt before comparing (in constant time), creates the
//!   account with `ON CONFLICT DO NOTHING` and deletes the pending row, all
//!   in one transaction. Attempt limits live in the database, so they hold
//!   across workers.
//! - `POST /resend` mails the pending code again, as a duplicate signup
//!   does, but makes no registration and never resets a code's attempt
//!   count (a locked address is answered 423 until a signup brings its
//!   recovery code; a fresh code after the lifetime counts afresh).
//! - A lockout is escapable, and no stranger can renew it: the next signup
//!   for a locked address replaces the locked code with a recovery code of
//!   20 digits (66 bits), mailed to the address and pending like any code
//!   (re-sent, never replaced). Nobody guesses it online, so it needs no
//!   attempt limit, and a wrong code against it answers 423 and counts
//!   nothing: a stranger's guesses can no longer lock anything. It is bound
//!   to no session, so a double-click or a late answer that rewrites the
//!   cookie cannot make it unusable (the seed incident, one level up).
//! - A mail the server refused stays queued, its code not yet expiring;
//!   the page says it will follow, never that it went, and `otpsim serve`
//!   sweeps the outbox until it goes.
//! - Codes are stored as an HMAC bound to the address; the mailed code is
//!   derived from the secret, so it can be re-sent without being stored.
//! - Any database failure rolls back and answers 503 `retry`.

use rusqlite::params;

use super::{answer_db_error, new_temp_id, FlowConfig, Handled, WorkerCrashed};
use crate::crypto::{code_mac, constant_time_eq, derive_code, derive_recovery_code, password_hash};
use crate::domain::{Code, Email, Otp, Response, Session, TempId};
use crate::ports::{Mail, Ports, Sent};
use crate::store::{Db, DbError, Row};

/// One pending row per email (`recovery` = 1 once its code is a recovery
/// code); accounts keep the MAC of the code that verified them, to answer
/// a repeated verify. `expires_at` is the code's lifetime from the newest
/// accepted mail of it (positive), or, while no mail of it is known to
/// have been accepted, minus a lower bound (arrival plus `otp_ttl`). A code
/// replaced after its lifetime stays as `prev_mac` (registration
/// `prev_temp_id`) until `prev_expires_at`, for a verify that arrived while
/// it was current; a mail of it still on its way when it was replaced
/// dates that too.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS temp_registrations (
    email TEXT PRIMARY KEY,
    temp_id TEXT NOT NULL UNIQUE,
    otp_mac TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    sends INTEGER NOT NULL DEFAULT 1,
    recovery INTEGER NOT NULL DEFAULT 0,
    prev_mac TEXT,
    prev_expires_at INTEGER NOT NULL DEFAULT 0,
    prev_temp_id TEXT
);
CREATE TABLE IF NOT EXISTS users (
    email TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    otp_mac TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    temp_id TEXT NOT NULL,
    email TEXT NOT NULL
);";

/// How often one code may be mailed within one lifetime: a duplicate
/// signup re-sends it, a flood of them does not turn the server into a
/// mail cannon. Once the last promised lifetime is over, the count starts
/// again (the owner may need the code anew).
pub const MAX_SENDS: i64 = 5;

const BUSY: &str = "The service is busy; nothing was changed. Please retry.";
const LOCKED: &str = "Too many wrong codes for this address. Sign up again: we will mail you a recovery code.";

const RECOVERY_ONLY: &str =
    "This address is locked after too many wrong codes: only the recovery code we mailed to it can verify it. Sign up again to have it mailed again.";

fn retry(_: DbError) -> Handled {
    Ok(Response::new(Code::Retry, BUSY))
}

/// What the browser asked for: a signup, or its pending code again.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asked {
    Signup,
    Resend,
}

pub(super) fn signup(env: &impl Ports, cfg: &FlowConfig, session: &mut Session, email: &Email) -> Handled {
    issue(env, cfg, session, email, Asked::Signup)
}

/// `POST /resend`: the pending code mailed again with a new full lifetime,
/// as a signup would, except that it makes no registration and never
/// resets the attempt count of a code: a locked one stays locked (only a
/// signup trades it for a recovery code), or anyone could buy more guesses
/// at an address by clicking "resend". A code whose lifetime is over gives
/// way to a fresh one with a count of its own, as on a signup: guesses at
/// the old code tell nothing of it, and carrying them over let a stranger's
/// guess of ten minutes before lock the owner out of the code she was just
/// mailed (`verify_succeeds`, found by `otpsim explore --seed 1`).
pub(super) fn resend_code(env: &impl Ports, cfg: &FlowConfig, session: &mut Session, email: &Email) -> Handled {
    issue(env, cfg, session, email, Asked::Resend)
}

fn issue(env: &impl Ports, cfg: &FlowConfig, session: &mut Session, email: &Email, asked: Asked) -> Handled {
    let arrived = env.arrived_ms();
    let db = env.db();
    let e = email.as_str();
    let mut issued: Option<(TempId, bool, i64)> = None;
    let result =
        db.immediate(|db| {
            if db
                .query_first("SELECT 1 FROM users WHERE email = ?1", params![e])?
                .is_some()
            {
                return Ok(Response::new(
                    Code::BadRequest,
                    "This email already has an account; please sign in.",
                ));
            }
            let pending = db.query_first(
                "SELECT temp_id, expires_at, attempts, sends, recovery FROM temp_registrations WHERE email = ?1",
                params![e],
            )?;
            // A lower bound only, stored negated: the expiry is set from the
            // mail's acceptance, after the send.
            let expires_at = (env.now_ms() + cfg.otp_ttl_ms) as i64;
            let (temp_id, recovery) =
                match pending {
                    None if asked == Asked::Resend => {
                        return Ok(Response::new(
                            Code::NoRegistration,
                            format!("No pending registration for {email}; please sign up."),
                        ))
                    }
                    None => {
                        let temp_id = new_temp_id(env);
                        let otp = derive_code(&cfg.secret, e, temp_id.as_str());
                        db.execute(
                    "INSERT INTO temp_registrations (email, temp_id, otp_mac, created_at, expires_at, attempts, sends)
                     VALUES (?1, ?2, ?3, ?4, ?5, 0, 1)",
                    params![e, temp_id.as_str(), code_mac(&cfg.secret, e, &otp), arrived as i64, -expires_at],
                )?;
                        (temp_id, false)
                    }
                    // The code's promised lifetime is over (and it is neither
                    // locked nor a recovery code): a fresh one. Mailing
                    // the old one again would bring back, while the mail is on
                    // its way, a code that expired (`codes_expire`).
                    Some(row)
                        if row.int(1) > 0
                            && arrived as i64 >= row.int(1)
                            && row.int(4) == 0
                            && row.int(2) < i64::from(cfg.max_attempts) =>
                    {
                        let temp_id = new_temp_id(env);
                        let otp = derive_code(&cfg.secret, e, temp_id.as_str());
                        db.execute(
                            "UPDATE temp_registrations SET prev_mac = otp_mac, prev_expires_at = expires_at,
                       prev_temp_id = temp_id, temp_id = ?2, otp_mac = ?3, created_at = ?4, expires_at = ?5, attempts = 0, sends = 1
                     WHERE email = ?1",
                            params![
                                e,
                                temp_id.as_str(),
                                code_mac(&cfg.secret, e, &otp),
                                arrived as i64,
                                -expires_at
                            ],
                        )?;
                        (temp_id, false)
                    }
                    // Pending, or a recovery code (which counts no attempts): the
                    // same code again.
                    Some(row) if row.int(2) < i64::from(cfg.max_attempts) => {
                        let Some(temp_id) = resend(db, &row, arrived, expires_at)? else {
                            return Ok(too_many_sends());
                        };
                        (temp_id, row.int(4) != 0)
                    }
                    Some(_) if asked == Asked::Resend => return Ok(Response::new(Code::Locked, LOCKED)),
                    // Locked: the locked code gives way to a recovery code, and its
                    // queued mail goes with it.
                    Some(row) => {
                        let temp_id = new_temp_id(env);
                        let otp = derive_recovery_code(&cfg.secret, e, temp_id.as_str());
                        db.execute("DELETE FROM outbox WHERE temp_id = ?1", params![row.text(0)])?;
                        db.execute(
                    "UPDATE temp_registrations SET temp_id = ?2, otp_mac = ?3, created_at = ?4, expires_at = ?5,
                       attempts = 0, sends = 1, recovery = 1 WHERE email = ?1",
                    params![e, temp_id.as_str(), code_mac(&cfg.secret, e, &otp), arrived as i64, -expires_at],
                )?;
                        (temp_id, true)
                    }
                };
            // One row per send, not per code: two signups mailing one code at
            // once each leave their own, so the first to finish cannot date
            // the code's expiry for the other's mail, still on its way.
            let queued = db.insert(
                "INSERT INTO outbox (temp_id, email) VALUES (?1, ?2)",
                params![temp_id.as_str(), e],
            )?;
            issued = Some((temp_id, recovery, queued));
            Ok(Response::new(Code::Ok, format!("Verification code sent to {email}")))
        });
    if let (Ok(r), Some((temp_id, recovery, queued))) = (&result, &issued) {
        if r.code == Code::Ok {
            // After COMMIT: SMTP holds no database lock.
            let sent = mail_and_clear(env, cfg, email, temp_id, *recovery, *queued)?;
            // A hint for the browser; verify never reads it.
            session.set_temp_user_id(temp_id.as_str());
            session.set_email(e);
            if sent == Sent::Refused {
                // Queued, not sent: the outbox sweep (or a restart)
                // mails it, and the page does not say "sent".
                return Ok(Response::new(
                    Code::Ok,
                    format!("We could not reach the mail server yet; your code will be mailed to {email} shortly."),
                ));
            }
        }
    }
    answer_db_error(result, retry)
}

/// Re-sends the code of `row` (temp_id, expires_at, attempts, sends): at
/// most [`MAX_SENDS`] mails within one promised lifetime, each pushing the
/// expiry to at least `expires_at`. `None`: too many already.
fn resend<P: crate::platform::Platform>(
    db: &Db<'_, P>,
    row: &Row,
    arrived: u64,
    expires_at: i64,
) -> Result<Option<TempId>, DbError> {
    if row.int(3) >= MAX_SENDS && (arrived as i64) < row.int(1).abs() {
        return Ok(None);
    }
    // A lifetime an accepted mail set stays; a lower bound grows.
    db.execute(
        "UPDATE temp_registrations SET sends = CASE WHEN ?2 >= abs(expires_at) THEN 1 ELSE sends + 1 END,
           expires_at = CASE WHEN expires_at < 0 THEN min(expires_at, -?3) ELSE expires_at END WHERE temp_id = ?1",
        params![row.text(0), arrived as i64, expires_at],
    )?;
    parse_temp_id(row).map(Some)
}

fn too_many_sends() -> Response {
    Response::new(
        Code::TooManyRequests,
        "This code was sent several times already; please check your inbox.",
    )
}

fn parse_temp_id(row: &Row) -> Result<TempId, DbError> {
    TempId::parse(row.text(0)).map_err(|err| DbError::Other(err.to_string()))
}

/// Mails the code of `temp_id`, then, in one transaction, dates its expiry
/// from now (the mail server has accepted it) and removes outbox row
/// `queued`.
///
/// That transaction is tried up to [`CLEAR_TRIES`] times: while the row
/// stays queued, verify cannot date the code (its mail may still be on its
/// way), so the code would not expire, and nothing sweeps an outbox whose
/// mail the server accepted (`codes_expire` found a code verifying 17 s
/// past its 8 s lifetime after one failed statement here). If every try
/// fails (a disk that stays full), the row stays until a restart mails
/// the code again and dates it then.
fn mail_and_clear(
    env: &impl Ports,
    cfg: &FlowConfig,
    email: &Email,
    temp_id: &TempId,
    recovery: bool,
    queued: i64,
) -> Result<Sent, WorkerCrashed> {
    let otp = if recovery {
        derive_recovery_code(&cfg.secret, email.as_str(), temp_id.as_str())
    } else {
        derive_code(&cfg.secret, email.as_str(), temp_id.as_str())
    };
    let sent = env.send_mail(Mail {
        to: email.clone(),
        otp,
        temp_id: temp_id.clone(),
    })?;
    if sent == Sent::Refused {
        // Nothing went out: the row stays queued, its code's lifetime
        // not yet started.
        return Ok(sent);
    }
    // Dated at acceptance, not when the transaction gets the lock: a wait
    // for it would lengthen the promised lifetime (`codes_expire` found a
    // code verifying 5 ms past it, its expiry dated after a 10 ms wait).
    let expires_at = (env.now_ms() + cfg.otp_ttl_ms) as i64;
    for _ in 0..CLEAR_TRIES {
        let cleared = env.db().immediate(|db| {
            let t = temp_id.as_str();
            // A code replaced while this mail of it was on its way keeps
            // the mail's promise as the previous code: explore found a
            // recovery's mail of a code a signup had just replaced, which
            // dated nothing, and the code refused within that mail's lifetime.
            db.execute(
                "UPDATE temp_registrations SET
                   expires_at = CASE WHEN temp_id = ?1 THEN max(abs(expires_at), ?2) ELSE expires_at END,
                   prev_expires_at = CASE WHEN prev_temp_id = ?1 THEN max(prev_expires_at, ?2) ELSE prev_expires_at END
                 WHERE temp_id = ?1 OR prev_temp_id = ?1",
                params![t, expires_at],
            )?;
            db.execute("DELETE FROM outbox WHERE id = ?1", params![queued])
        });
        match cleared {
            Err(DbError::Crashed) => return Err(WorkerCrashed),
            Err(_) => continue,
            Ok(_) => break,
        }
    }
    Ok(sent)
}

/// How many times a sent mail's expiry and outbox row are written before
/// the row is left to a restart: one more than the faults a case of
/// `otpsim explore` stacks on a request.
const CLEAR_TRIES: usize = 3;

/// What a worker does when it (re)starts, and what `otpsim serve`'s
/// outbox sweep does every few seconds: mail every queued code whose
/// registration still exists; a queued row whose code is gone is dropped,
/// never mailed.
pub(super) fn recover(env: &impl Ports, cfg: &FlowConfig) -> Result<(), WorkerCrashed> {
    let db = env.db();
    let queued = db.query("SELECT email, temp_id, id FROM outbox ORDER BY id", params![]);
    let rows = match queued {
        Ok(rows) => rows,
        Err(DbError::Crashed) => return Err(WorkerCrashed),
        // The next restart sweeps again.
        Err(_) => return Ok(()),
    };
    for row in rows {
        let (Ok(email), Ok(temp_id)) = (Email::parse(row.text(0)), TempId::parse(row.text(1))) else {
            continue;
        };
        let id = row.int(2);
        let current = db.immediate(|db| {
            let t = temp_id.as_str();
            let live = db.query_first("SELECT recovery FROM temp_registrations WHERE temp_id = ?1", params![t])?;
            if live.is_none() {
                db.execute("DELETE FROM outbox WHERE id = ?1", params![id])?;
            }
            Ok(live.map(|row| row.int(0) != 0))
        });
        match current {
            Ok(Some(recovery)) => {
                mail_and_clear(env, cfg, &email, &temp_id, recovery, id)?;
            }
            Ok(None) => {}
            Err(DbError::Crashed) => return Err(WorkerCrashed),
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

const EXPIRED: &str = "This code has expired; sign up again and we will mail you a new one.";

/// What verify makes of the code it was given.
enum Judged {
    Answer(Response),
    Right,
}

/// Lockout, expiry, the attempt count and the comparison, for the pending
/// row `row` (temp_id, otp_mac, expires_at, attempts, queued, recovery,
/// prev_mac, prev_expires_at).
fn judge<P: crate::platform::Platform>(
    db: &Db<'_, P>,
    cfg: &FlowConfig,
    row: &Row,
    arrived: u64,
    submitted: &str,
) -> Result<Judged, DbError> {
    let recovery = row.int(5) != 0;
    // A wait is the server's: a verify that arrived while the code it
    // carries was current meets it, whatever fresh code replaced it since.
    let previous = row.text(6);
    let current = constant_time_eq(row.text(1).as_bytes(), submitted.as_bytes());
    if !current && !previous.is_empty() && constant_time_eq(previous.as_bytes(), submitted.as_bytes()) {
        if (arrived as i64) < row.int(7) {
            return Ok(Judged::Right);
        }
        return Ok(Judged::Answer(Response::new(Code::OtpExpired, EXPIRED)));
    }
    if !recovery && row.int(3) >= i64::from(cfg.max_attempts) {
        return Ok(Judged::Answer(Response::new(Code::Locked, LOCKED)));
    }
    let right = constant_time_eq(row.text(1).as_bytes(), submitted.as_bytes());
    // Past guessing: a wrong code against a recovery code counts nothing,
    // so nobody can lock the owner out again; and whatever it is (the
    // locked code, a guess), the address is locked to it, expired or not.
    if recovery && !right {
        return Ok(Judged::Answer(Response::new(Code::Locked, RECOVERY_ONLY)));
    }
    // A code no accepted mail has dated, with a mail of it queued, is not
    // known to have gone: its lifetime has not started. Once a mail of it
    // was accepted, its lifetime is that mail's.
    let queued = row.int(4) != 0;
    let dated = row.int(2) > 0;
    if arrived as i64 >= row.int(2).abs() && (dated || !queued) {
        return Ok(Judged::Answer(Response::new(Code::OtpExpired, EXPIRED)));
    }
    if recovery {
        return Ok(Judged::Right);
    }
    // Count first: concurrent guesses each see the others' attempts.
    db.execute(
        "UPDATE temp_registrations SET attempts = attempts + 1 WHERE temp_id = ?1",
        params![row.text(0)],
    )?;
    if !right {
        let left = i64::from(cfg.max_attempts) - row.int(3) - 1;
        return Ok(Judged::Answer(Response::new(
            Code::InvalidOtp,
            format!("That code is not right; {left} attempts left."),
        )));
    }
    Ok(Judged::Right)
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
            "SELECT temp_id, otp_mac, expires_at, attempts,
               EXISTS (SELECT 1 FROM outbox o WHERE o.temp_id = t.temp_id), recovery,
               coalesce(prev_mac, ''), prev_expires_at
             FROM temp_registrations t WHERE email = ?1",
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
        let judged = judge(db, cfg, &row, arrived, &submitted)?;
        if let Judged::Answer(response) = judged {
            return Ok(response);
        }
        // The password comes with the proof of ownership, never from signup.
        db.execute(
            "INSERT INTO users (email, password_hash, otp_mac) VALUES (?1, ?2, ?3) ON CONFLICT (email) DO NOTHING",
            params![e, password_hash(&cfg.secret, e, password), submitted.as_str()],
        )?;
        db.execute("DELETE FROM temp_registrations WHERE email = ?1", params![e])?;
        // No queued mail outlives its registration.
        db.execute("DELETE FROM outbox WHERE email = ?1", params![e])?;
        Ok(Response::new(Code::Ok, "Email verified; your account is ready."))
    });
    if matches!(&result, Ok(r) if r.code == Code::Ok) {
        session.clear();
    }
    answer_db_error(result, retry)
}
