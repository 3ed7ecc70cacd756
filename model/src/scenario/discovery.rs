//! The scenario files under the paths a command was given.

use std::path::{Path, PathBuf};

/// A path given as scenarios that holds none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {what}")]
pub struct DiscoveryError {
    /// The path as given.
    pub path: PathBuf,
    /// What is wrong with it.
    pub what: String,
}

/// The scenario files under `paths`, sorted: each file as given, each
/// folder searched recursively for `*.toml`. A path that does not exist,
/// or a folder with no scenario in it, is an error.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, DiscoveryError> {
    fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DiscoveryError> {
        let unreadable = |e: std::io::Error| DiscoveryError {
            path: dir.to_path_buf(),
            what: format!("cannot read the folder: {e}"),
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(unreadable)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(unreadable)?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                collect(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "toml") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            collect(path, &mut found)?;
            if found.is_empty() {
                return Err(DiscoveryError {
                    path: path.clone(),
                    what: "no *.toml scenario files in this folder".to_string(),
                });
            }
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(DiscoveryError {
                path: path.clone(),
                what: "no such file or folder".to_string(),
            });
        }
    }
    Ok(files)
}
