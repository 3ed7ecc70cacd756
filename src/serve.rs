//! `otpsim serve`: flags to a [`ServeConfig`], then the server.

use std::process::ExitCode;

use anyhow::{Context, Result};
use otpsim_core::FlowConfig;
use otpsim_live::serve::{serve, ServeConfig, SessionStore};

use crate::cli::{ServeFlags, SessionFlag};
use crate::InvalidInput;

pub fn run(flags: &ServeFlags) -> Result<ExitCode> {
    let secret = match &flags.secret_file {
        Some(path) => std::fs::read(path)
            .map_err(|e| InvalidInput(format!("--secret-file {}: cannot read it: {e}", path.display())))?,
        None => std::env::var("OTPSIM_SECRET").map(String::into_bytes).map_err(|_| {
            InvalidInput(
                "no secret: set OTPSIM_SECRET or give --secret-file (every worker of a deployment needs the same one)"
                    .to_string(),
            )
        })?,
    };
    if secret.len() < 16 {
        return Err(InvalidInput("the secret is shorter than 16 bytes".to_string()).into());
    }
    let config = ServeConfig {
        variant: flags.variant,
        addr: flags.addr,
        db: flags.db.clone(),
        smtp: flags.smtp,
        session: match flags.session {
            SessionFlag::Cookie => SessionStore::Cookie,
            SessionFlag::Server => SessionStore::Server,
        },
        flow: FlowConfig {
            otp_ttl_ms: flags.otp_ttl.as_millis() as u64,
            max_attempts: flags.max_attempts,
            secret,
            // The flows as the project models them: each statement commits.
            db_mode: otpsim_core::DbMode::Autocommit,
        },
        step_pause: flags.step_pause,
    };
    if flags.otp_ttl.as_millis() < 1000 {
        return Err(InvalidInput("--otp-ttl must be at least 1s".to_string()).into());
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    // A database that cannot be opened or an address that cannot be bound
    // is the command line's to fix: exit 2.
    runtime
        .block_on(serve(config))
        .map_err(|e| InvalidInput(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}
