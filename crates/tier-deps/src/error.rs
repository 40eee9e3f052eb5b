//! Errors of the dependency analysis, each naming the file (and where known the line) it is about.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a file: the file, and the line and column when they are known (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl Location {
    /// The whole file, without a line.
    pub fn file(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            line: None,
            column: None,
        }
    }

    /// The line and column of byte `offset` in `text`, the contents of `file`.
    pub fn at_offset(file: &Path, text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let column = before[line_start..].chars().count() + 1;
        Self {
            file: file.to_path_buf(),
            line: Some(line),
            column: Some(column),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

/// Everything that can go wrong while scanning, analysing or editing.
#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    /// A file or directory could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A lockfile or manifest is not valid TOML/JSON, or not the shape expected.
    #[error("{at}: {message}")]
    Parse { at: Location, message: String },
    /// A version range given by the user does not parse.
    #[error("invalid {ecosystem} version range `{range}`: {message}")]
    Range {
        ecosystem: crate::Ecosystem,
        range: String,
        message: String,
    },
    /// A version given by the user does not parse.
    #[error("invalid version `{version}`: {message}")]
    Version { version: String, message: String },
    /// Internal libraries depend on each other in a cycle, so no release order exists.
    #[error("internal libraries depend on each other in a cycle: {}", cycle.join(" -> "))]
    Cycle { cycle: Vec<String> },
}

impl DepsError {
    /// The file the error is about, when it is about one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::Read { file, .. } => Some(file),
            Self::Parse { at, .. } => Some(&at.file),
            Self::Range { .. } | Self::Version { .. } | Self::Cycle { .. } => None,
        }
    }

    /// The 1-based line the error is about, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Parse { at, .. } => at.line,
            _ => None,
        }
    }

    pub(crate) fn parse(at: Location, message: impl Into<String>) -> Self {
        Self::Parse {
            at,
            message: message.into(),
        }
    }

    /// A serde_json error in `file`, located by its line and column.
    pub(crate) fn json(file: &Path, error: &serde_json::Error) -> Self {
        let text = error.to_string();
        // serde_json appends " at line L column C"; the location is shown once, in front.
        let message = match text.rsplit_once(" at line ") {
            Some((message, _)) => message.to_owned(),
            None => text,
        };
        let at = if error.line() == 0 {
            Location::file(file)
        } else {
            Location {
                file: file.to_path_buf(),
                line: Some(error.line()),
                column: Some(error.column()),
            }
        };
        match error.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                Self::parse(at, format!("invalid JSON: {message}"))
            }
            _ => Self::parse(at, message),
        }
    }
}

/// Several errors found in one pass, reported together.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct DepsErrors(pub Vec<DepsError>);
