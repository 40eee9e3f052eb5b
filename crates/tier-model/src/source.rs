//! The files a project is read from, and locations inside them.

use std::ops::Range;
use std::path::{Path, PathBuf};

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(u32);

impl FileId {
    /// A file in no map, for values whose origin is replaced right after parsing.
    pub(crate) const DETACHED: FileId = FileId(u32::MAX);
}

/// One file as it was read: its path relative to the project root, and its text.
#[derive(Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// One-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(line) => line,
            Err(next) => next - 1,
        };
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |prefix| prefix.chars().count());
        (line + 1, column + 1)
    }
}

/// Every file read while loading a project, so errors can quote them.
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn add(&mut self, path: impl Into<PathBuf>, text: String) -> FileId {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(at, _)| at + 1));
        self.files.push(SourceFile {
            path: path.into(),
            text,
            line_starts,
        });
        FileId(u32::try_from(self.files.len() - 1).unwrap_or(u32::MAX))
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn find(&self, path: &Path) -> Option<FileId> {
        self.files
            .iter()
            .position(|file| file.path == path)
            .and_then(|at| u32::try_from(at).ok())
            .map(FileId)
    }

    /// `tier.toml:12:5`
    pub fn describe(&self, location: &Location) -> String {
        let file = self.get(location.file);
        let (line, column) = file.line_col(location.span.start);
        format!("{}:{line}:{column}", file.path.display())
    }
}

/// A span of bytes in one file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    pub file: FileId,
    pub span: Range<usize>,
}

impl Ord for Location {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.file, self.span.start, self.span.end).cmp(&(
            other.file,
            other.span.start,
            other.span.end,
        ))
    }
}

impl PartialOrd for Location {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Where a resolved value came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// Written in a file.
    File(Location),
    /// A `--set path=value` argument.
    CommandLine(String),
    /// Not written anywhere: tier's own default.
    Default,
    /// Computed by tier from other values (for example a merged config object).
    Derived(String),
}

impl Origin {
    pub fn location(&self) -> Option<&Location> {
        match self {
            Origin::File(location) => Some(location),
            _ => None,
        }
    }

    pub fn describe(&self, sources: &SourceMap) -> String {
        match self {
            Origin::File(location) => sources.describe(location),
            Origin::CommandLine(argument) => format!("--set {argument}"),
            Origin::Default => "built-in default".to_owned(),
            Origin::Derived(what) => what.clone(),
        }
    }
}

impl miette::SourceCode for SourceFile {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let contents = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.path.display().to_string(),
            contents.data(),
            *contents.span(),
            contents.line(),
            contents.column(),
            contents.line_count(),
        )))
    }
}
