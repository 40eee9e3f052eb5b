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
        // miette finds a span's lines by scanning the text from its start; handing it only the
        // lines around the span (found through `line_starts`) keeps a report of many problems
        // in one large file linear instead of quadratic.
        let start = span.offset().min(self.text.len());
        let end = (span.offset() + span.len()).min(self.text.len());
        let line_of = |offset: usize| match self.line_starts.binary_search(&offset) {
            Ok(line) => line,
            Err(next) => next.saturating_sub(1),
        };
        // A line more on each side than asked: miette's reading of a span that ends on a
        // newline takes one more line, and a wider window never changes what it answers.
        let first = line_of(start).saturating_sub(context_lines_before + 1);
        let last = line_of(end) + context_lines_after + 2;
        let window_start = self.line_starts.get(first).copied().unwrap_or(0);
        let window_end = self
            .line_starts
            .get(last + 1)
            .copied()
            .unwrap_or(self.text.len());
        let window = self
            .text
            .get(window_start..window_end)
            .unwrap_or(&self.text);
        let base = if window.len() == self.text.len() {
            0
        } else {
            window_start
        };
        let lines_before = if base == 0 { 0 } else { first };
        let relative = miette::SourceSpan::new((start - base).into(), end - start);
        let contents = window.read_span(&relative, context_lines_before, context_lines_after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.path.display().to_string(),
            contents.data(),
            miette::SourceSpan::new(
                (contents.span().offset() + base).into(),
                contents.span().len(),
            ),
            contents.line() + lines_before,
            contents.column(),
            // miette counts the newlines from the start of the text to the snippet's end.
            contents.line_count() + lines_before,
        )))
    }
}

#[cfg(test)]
mod tests {
    use miette::SourceCode;

    use super::*;

    /// The windowed read answers exactly what miette's own read of the whole text does, for
    /// every span and amount of context, so reports look the same, only faster.
    #[test]
    fn a_span_reads_the_same_through_the_window_as_through_the_whole_text() {
        let text: String = (0..40)
            .map(|line| match line % 4 {
                0 => "[services.api]\n".to_owned(),
                1 => format!("replicas = {line}\n"),
                2 => "\n".to_owned(),
                _ => "depends_on = [\"db\", \"web\"]\n".to_owned(),
            })
            .collect();
        let crlf = text.replace('\n', "\r\n").replace("api", "apï");
        for text in [text, crlf] {
            same_reads(&text);
        }
    }

    fn same_reads(text: &str) {
        let mut sources = SourceMap::default();
        let id = sources.add("tier.toml", text.to_owned());
        let file = sources.get(id);
        for start in (0..text.len()).step_by(7) {
            for len in [0, 1, 5, 40, 200] {
                let len = len.min(text.len() - start);
                for context in [0, 1, 2, 5] {
                    let span = miette::SourceSpan::new(start.into(), len);
                    let ours = file.read_span(&span, context, context).ok();
                    let theirs = text.read_span(&span, context, context).ok();
                    let view = |contents: Option<Box<dyn miette::SpanContents<'_> + '_>>| {
                        contents.map(|contents| {
                            (
                                contents.data().to_vec(),
                                *contents.span(),
                                contents.line(),
                                contents.column(),
                                contents.line_count(),
                            )
                        })
                    };
                    assert_eq!(
                        view(ours),
                        view(theirs),
                        "span {start}+{len}, context {context}"
                    );
                }
            }
        }
    }
}
