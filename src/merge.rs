//! `otpsim merge`: the shards of a `check` or an `explore` run, joined
//! into what one unsharded run gives.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::cli::{Shard, TableFormat};
use crate::InvalidInput;

/// Reads the reports and hands them to the command that wrote them.
pub fn run(
    files: &[PathBuf],
    format: TableFormat,
    save: &std::path::Path,
    json: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let mut texts = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| InvalidInput(format!("{}: cannot read it: {e}", file.display())))?;
        texts.push((file.clone(), text));
    }
    if crate::explore::is_report(&texts[0].1) {
        crate::explore::merge(&texts, format, save, json)
    } else {
        crate::check::merge(&texts, format)
    }
}

/// Every shard of one split given once: exit 2 otherwise.
pub fn shards_complete(shards: &[(PathBuf, Shard)]) -> Result<()> {
    for (file, shard) in shards {
        if !shard.is_valid() {
            bail!(InvalidInput(format!(
                "{}: shard {}/{} is not a shard (expected I/N with 1 <= I <= N <= 1000)",
                file.display(),
                shard.index,
                shard.count
            )));
        }
    }
    let total = shards.first().map_or(1, |(_, s)| s.count);
    let mut seen = vec![None; total];
    for (file, shard) in shards {
        if shard.count != total {
            bail!(InvalidInput(format!(
                "{} is shard {} of {}, the others are of {total}",
                file.display(),
                shard.index,
                shard.count
            )));
        }
        if let Some(other) = seen[shard.index - 1].replace(file.clone()) {
            bail!(InvalidInput(format!(
                "shard {}/{total} is given twice: {} and {}",
                shard.index,
                other.display(),
                file.display()
            )));
        }
    }
    let missing: Vec<String> = (1..=total)
        .filter(|i| seen[i - 1].is_none())
        .map(|i| format!("{i}/{total}"))
        .collect();
    if !missing.is_empty() {
        bail!(InvalidInput(format!("shard(s) {} missing", missing.join(", "))));
    }
    Ok(())
}
