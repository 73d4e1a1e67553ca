//! The crate's one error type.
//!
//! Library code returns `Result<T>`; only the CLI renders errors. `Error::is_user`
//! tells the CLI whether the cause is the user's input (exit code 2) or an
//! internal failure, a bug (exit code 70). Two kinds of bad input carry their
//! own variant, so that a caller other than the CLI (the Python package) can
//! tell them apart: a path that does not exist ([`Error::NotFound`]) and a
//! run folder that already holds a run ([`Error::RunExists`]); the CLI
//! treats them as every other bad input. Every message is one line; longer
//! reports from dependencies go into `Error::with_detail`, which the CLI
//! prints only with `--verbose`.

use std::path::Path;

/// Everything that can go wrong in energyflow.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration field holds a value outside its allowed range.
    #[error("config field `{field}` = {value}: {reason}")]
    Config {
        field: String,
        value: String,
        reason: String,
    },
    /// Bad user input (a file, a tensor, a flag): the message names what and why.
    #[error("{0}")]
    Input(String),
    /// Bad user input: a path the user named does not exist (the message
    /// names it).
    #[error("{0}")]
    NotFound(String),
    /// Bad user input: a fresh run asked for in a folder that holds a run
    /// (or what one left), without resume or overwrite.
    #[error("{0}")]
    RunExists(String),
    /// An I/O failure on a named path.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A failure that is not the user's fault: a bug.
    #[error("internal error: {0}")]
    Internal(String),
    /// An error with details only `--verbose` shows (a dependency's
    /// multi-line report, say); it displays as `error` alone.
    #[error("{error}")]
    Detailed { error: Box<Error>, detail: String },
}

/// Short alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A user-input error with the given one-line message (control
    /// characters it quotes from the input, a newline in a key say, are
    /// escaped, so it stays one line).
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(escape_controls(msg.into()))
    }

    /// A config error naming the field, its value and why it is refused
    /// (one line, as [`Error::input`]).
    pub fn config(field: &str, value: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Error::Config {
            field: escape_controls(field.to_string()),
            value: escape_controls(value.to_string()),
            reason: escape_controls(reason.into()),
        }
    }

    /// A user-input error quoting a dependency's report: `context: ` and
    /// the report kept to one line ([`one_line`]); a report of several
    /// lines is attached whole as the detail.
    pub fn input_quoting(context: impl std::fmt::Display, report: &str) -> Self {
        let e = Error::input(format!("{context}: {}", one_line(report)));
        if report.trim().lines().count() > 1 {
            e.with_detail(report.trim())
        } else {
            e
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// True for an I/O error on a file that is not there (any more): what a
    /// reader sees when a writer replaced or removed it meanwhile.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            Error::Detailed { error, .. } => error.is_not_found(),
            _ => false,
        }
    }

    /// True when the user's input caused the error (CLI exit code 2;
    /// otherwise 70).
    pub fn is_user(&self) -> bool {
        match self {
            Error::Internal(_) => false,
            Error::Detailed { error, .. } => error.is_user(),
            _ => true,
        }
    }

    /// This error with `detail` attached for `--verbose`.
    pub fn with_detail(self, detail: impl Into<String>) -> Self {
        Error::Detailed {
            error: Box::new(self),
            detail: detail.into(),
        }
    }

    /// The details attached with [`Error::with_detail`], if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Error::Detailed { detail, .. } => Some(detail),
            _ => None,
        }
    }
}

/// A dependency's error text kept to one line for the CLI: multi-line
/// messages (toml's with a source excerpt, say) become their first line and
/// their last, which carries the reason ("unknown field `x`, expected ...").
pub fn one_line(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let first = lines.first().copied().unwrap_or("");
    match lines.last() {
        Some(last) if lines.len() > 1 => format!("{first}: {last}"),
        _ => first.to_string(),
    }
}

/// `s` with its control characters written as escapes (`\n`, `\t`,
/// `\u{1b}`): text quoted from an input cannot break a message's line.
fn escape_controls(s: String) -> String {
    if !s.chars().any(char::is_control) {
        return s;
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Error, one_line};

    #[test]
    fn quoted_control_characters_keep_a_message_on_one_line() {
        let e = Error::input("unknown field `a\nb\tc`");
        assert_eq!(e.to_string(), "unknown field `a\\nb\\tc`");
        let e = Error::config("model.x\ny", "1\r", "no");
        assert_eq!(e.to_string().lines().count(), 1, "{e}");
        assert_eq!(Error::input("plain é").to_string(), "plain é");
    }

    #[test]
    fn one_line_keeps_the_first_and_the_last_line() {
        assert_eq!(one_line("only"), "only");
        assert_eq!(one_line("  top\n |\n 1 | x = 3\n\n reason here \n"), "top: reason here");
        assert_eq!(one_line(""), "");
    }
}
