//! A TOML file the user wrote (a scenario, a target), read so that every
//! error says where: the file, the line and column, what is wrong and what
//! was expected. The scenario loader and the target loader both read
//! through it.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::Spanned;

/// A duration as the files write it: "0s", "1500ms", "3s", "2m", "1h".
pub fn parse_duration(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// Milliseconds as the shortest duration text that parses back.
pub fn format_duration(ms: u64) -> String {
    match ms {
        0 => "0s".to_string(),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// An error at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct FileError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl FileError {
    /// A file that could not be read at all.
    pub fn unreadable(path: &Path, error: impl std::fmt::Display) -> FileError {
        FileError {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("cannot read the file: {error}"),
        }
    }
}

/// The 1-based line and column of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A file's text, with its path, for located errors.
#[derive(Debug, Clone, Copy)]
pub struct TomlFile<'a> {
    /// Where it is.
    pub path: &'a Path,
    /// What it holds.
    pub text: &'a str,
}

impl TomlFile<'_> {
    /// An error at byte `offset`.
    pub fn error(&self, offset: usize, message: impl Into<String>) -> FileError {
        let (line, column) = line_column(self.text, offset);
        FileError {
            file: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    /// An error at `value`.
    pub fn at<T>(&self, value: &Spanned<T>, message: impl Into<String>) -> FileError {
        self.error(value.span().start, message)
    }

    /// The file as `T`, or TOML's own error at its place.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, FileError> {
        toml::from_str(self.text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            self.error(offset, e.message().trim_end().to_string())
        })
    }

    /// A duration (`200ms`, `20s`, `2m`) of at most `max_ms`, or
    /// `default_ms` if the file does not give one.
    pub fn duration(&self, value: Option<&Spanned<String>>, default_ms: u64, max_ms: u64) -> Result<u64, FileError> {
        match value {
            None => Ok(default_ms),
            Some(s) => parse_duration(s.get_ref()).filter(|ms| *ms <= max_ms).ok_or_else(|| {
                self.at(
                    s,
                    format!(
                        "{:?} is not a duration up to {}; expected e.g. 200ms, 20s",
                        s.get_ref(),
                        format_duration(max_ms)
                    ),
                )
            }),
        }
    }
}
