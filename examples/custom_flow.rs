//! Test your own flow: implement `otpsim_core::Flow` and hand it to the
//! generated search, as otpsim does with its own three variants.
//!
//! `EmailCode` keys everything by address: one pending row per email, the
//! code re-sent on a duplicate signup, the password taken on the verify
//! form, success in one transaction. It has one planted bug: a wrong code
//! reads the attempt counter and writes it back in a second statement, so
//! guesses that arrive together overwrite each other's count (a lost
//! update) and more than `max_attempts` of them are answered. The search
//! finds it, and also what else a design this quick gets wrong (a signup
//! for a verified address leaves an orphan row, a repeat is told
//! `already_verified` whatever code it typed, …): each with a scenario
//! file and the choices that replay it.
//!
//! ```sh
//! cargo run --release --example custom_flow            # 30,000 schedules
//! cargo run --release --example custom_flow -- 100000  # more (or -- 60s)
//! ```
//! It exits 0 when the search found the planted bug, 1 when it did not.

use std::fmt;
use std::process::ExitCode;

use otpsim_core::crypto::{constant_time_eq, password_hash};
use otpsim_core::flows::login;
use otpsim_core::{
    Code, DbError, Email, Flow, FlowConfig, Handled, Mail, Otp, Ports, Request, Response, Session, TempId,
    WorkerCrashed,
};
use otpsim_sim::explore::{search, Budget, Options};
use otpsim_sim::Invariant;
use rusqlite::params;

#[derive(Debug, Clone)]
struct EmailCode;

impl fmt::Display for EmailCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("email_code")
    }
}

// The world reads `temp_registrations(email, temp_id)` and `users(email)`
// whenever no request is in flight (override `pending_query` and
// `accounts_query` for other tables).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS temp_registrations (
    email TEXT PRIMARY KEY,
    temp_id TEXT NOT NULL,
    otp TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS users (
    email TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL
);";

/// A database failure is a clean 503; a dead process answers nothing.
fn answer(result: Result<Response, DbError>) -> Handled {
    match result {
        Ok(r) => Ok(r),
        Err(DbError::Crashed) => Err(WorkerCrashed),
        Err(_) => Ok(Response::new(Code::Retry, "Busy; nothing was changed. Please retry.")),
    }
}

impl Flow for EmailCode {
    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn handle<E: Ports>(&self, env: &E, cfg: &FlowConfig, session: &mut Session, request: &Request) -> Handled {
        let email = match Email::parse(request.email()) {
            Ok(e) => e,
            Err(e) => return Ok(Response::new(Code::BadRequest, e.to_string())),
        };
        let e = email.as_str();
        let db = env.db();
        match request {
            // No resend of its own: "resend the code" re-sends the pending
            // code, as a second signup does here.
            Request::Signup { .. } | Request::Resend { .. } => {
                let temp_id = TempId::new(env.now_ms() / 1000, env.random_u64() as u32);
                let fresh = Otp::from_number(env.random_u64());
                answer((|| {
                    db.execute(
                        "INSERT INTO temp_registrations (email, temp_id, otp) VALUES (?1, ?2, ?3) ON CONFLICT (email) DO NOTHING",
                        params![e, temp_id.as_str(), fresh.digits()],
                    )?;
                    let Some(row) = db.query_first(
                        "SELECT temp_id, otp FROM temp_registrations WHERE email = ?1",
                        params![e],
                    )?
                    else {
                        return Ok(Response::new(Code::Retry, "Please retry."));
                    };
                    let (Ok(temp_id), Ok(otp)) = (TempId::parse(row.text(0)), Otp::parse(row.text(1))) else {
                        return Ok(Response::new(Code::Retry, "Please retry."));
                    };
                    env.send_mail(Mail {
                        to: email.clone(),
                        otp,
                        temp_id: temp_id.clone(),
                    })?;
                    session.set_temp_user_id(temp_id.as_str());
                    session.set_email(e);
                    Ok(Response::new(Code::Ok, format!("Code sent to {email}")))
                })())
            }
            Request::Verify { otp, password, .. } => answer((|| {
                let Some(row) = db.query_first(
                    "SELECT otp, attempts FROM temp_registrations WHERE email = ?1",
                    params![e],
                )?
                else {
                    return Ok(
                        if db
                            .query_first("SELECT 1 FROM users WHERE email = ?1", params![e])?
                            .is_some()
                        {
                            Response::new(Code::AlreadyVerified, "Already verified; please sign in.")
                        } else {
                            Response::new(Code::NoRegistration, "No signup in progress for this address.")
                        },
                    );
                };
                if row.int(1) >= i64::from(cfg.max_attempts) {
                    return Ok(Response::new(Code::Locked, "Too many wrong codes."));
                }
                if !constant_time_eq(row.text(0).as_bytes(), otp.as_bytes()) {
                    // The planted bug: read, then write back, in two steps.
                    db.execute(
                        "UPDATE temp_registrations SET attempts = ?2 WHERE email = ?1",
                        params![e, row.int(1) + 1],
                    )?;
                    return Ok(Response::new(Code::InvalidOtp, "That code is not right."));
                }
                let hash = password_hash(&cfg.secret, e, password);
                db.immediate(|db| {
                    let claimed = db.execute(
                        "DELETE FROM temp_registrations WHERE email = ?1 AND otp = ?2",
                        params![e, otp],
                    )?;
                    if claimed == 0 {
                        return Ok(Response::new(
                            Code::AlreadyVerified,
                            "Already verified; please sign in.",
                        ));
                    }
                    db.execute(
                        "INSERT INTO users (email, password_hash) VALUES (?1, ?2) ON CONFLICT (email) DO NOTHING",
                        params![e, hash],
                    )?;
                    session.clear();
                    Ok(Response::new(Code::Ok, "Verified; your account is ready."))
                })
            })()),
            // Login is the same for every flow: reuse the project's.
            Request::Login { password, .. } => login(env, cfg, session, &email, password),
        }
    }
}

fn main() -> ExitCode {
    // A count of schedules, so that what is found does not depend on how
    // fast the machine is; "30s" works too.
    let budget: Budget = match std::env::args().nth(1) {
        Some(arg) => match arg.parse() {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => Budget::Schedules(30_000),
    };
    let report = search(&EmailCode, &Options::new(budget, 1), &|_, _| {});
    println!(
        "{}: {} schedules in {:.1} s",
        report.flow, report.schedules, report.seconds
    );
    for f in &report.findings {
        let choices: Vec<String> = f.counterexample.choices().iter().map(u8::to_string).collect();
        println!(
            "  breaks {} after {} schedules ({} requests, choices [{}])\n    {}",
            f.invariant,
            f.schedules_to_hit,
            f.scenario.requests.iter().map(|r| r.repeat).sum::<u32>(),
            choices.join(","),
            f.violation().why
        );
    }
    match report
        .findings
        .iter()
        .find(|f| f.invariant == Invariant::AttemptsLimited)
    {
        Some(f) => {
            println!("\nThe planted bug, as a scenario file:\n\n{}", f.scenario.to_toml());
            print!("{}", f.counterexample.trace);
            ExitCode::SUCCESS
        }
        None => {
            println!("the planted lost update was not found within {budget}");
            ExitCode::from(1)
        }
    }
}
