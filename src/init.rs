//! `otpsim init target`: flags to a [`Launch`], then the draft.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result};
use otpsim_live::init::{draft, Launch};
use otpsim_live::run::Options;

use crate::cli::InitTargetFlags;
use crate::InvalidInput;

pub fn run(flags: &InitTargetFlags) -> Result<ExitCode> {
    if !flags.command.iter().any(|a| a.contains("{port}")) && !flags.env.iter().any(|(_, v)| v.contains("{port}")) {
        return Err(InvalidInput(
            "the command never names {port}: put {port} where the app takes the port it listens on (in an argument or an --env value)"
                .to_string(),
        )
        .into());
    }
    // Nothing a user wrote is overwritten.
    if let Some(out) = &flags.out {
        if out.exists() {
            return Err(InvalidInput(format!(
                "{} exists; choose another --out, or remove it first",
                out.display()
            ))
            .into());
        }
    }
    let scratch = std::env::temp_dir().join(format!("otpsim-init-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| scratch.display().to_string())?;
    let options = Options {
        otpsim: std::env::current_exe().context("the otpsim program's own path")?,
        scratch: scratch.clone(),
        tz: None,
        last_byte_sync: true,
    };
    let launch = Launch {
        name: flags.name.clone(),
        command: flags.command.clone(),
        env: flags.env.clone(),
        setup: flags
            .setup
            .as_ref()
            .map(|s| s.split_whitespace().map(str::to_string).collect()),
        cwd: flags.cwd.clone(),
    };
    // The draft's own place: `{target_dir}` is the folder it will live in.
    let place = flags
        .out
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("target.toml"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("a tokio runtime")?;
    let drafted = runtime.block_on(draft(&launch, &options, &place));
    let _ = std::fs::remove_dir_all(&scratch);
    let drafted = drafted?;
    for note in &drafted.notes {
        eprintln!("init: {note}");
    }
    match &flags.out {
        Some(out) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(out)
                .with_context(|| out.display().to_string())?;
            file.write_all(drafted.text.as_bytes())
                .with_context(|| out.display().to_string())?;
            eprintln!(
                "init: wrote {}; first verdict: otpsim check --target {} scenarios/seed_incident.toml",
                out.display(),
                out.display()
            );
        }
        None => print!("{}", drafted.text),
    }
    Ok(ExitCode::SUCCESS)
}
