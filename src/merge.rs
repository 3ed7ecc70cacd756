//! `otpsim merge`: the shards of a `check` or an `explore` run, joined
//! into what one unsharded run gives.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::TableFormat;
use crate::InvalidInput;

/// Reads the reports and hands them to the command that wrote them.
pub fn run(
    files: &[PathBuf],
    format: TableFormat,
    save: &std::path::Path,
    json: Option<&std::path::Path>,
    junit: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let mut texts = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| InvalidInput(format!("{}: cannot read it: {e}", file.display())))?;
        texts.push((file.clone(), text));
    }
    if crate::explore::is_report(&texts[0].1) {
        crate::explore::merge(&texts, format, save, json, junit)
    } else {
        crate::check::merge(&texts, format, junit)
    }
}
