//! Problems found in a project: located, explained, and rendered all at once with miette.

use std::fmt;

use crate::source::{Location, SourceMap};

/// One thing wrong with a project. Problems are collected, never thrown, so that a user sees
/// every one of them in a single run.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub location: Option<Location>,
    pub message: String,
    /// A short note under the marked source text.
    pub label: Option<String>,
    /// What to do about it.
    pub help: Option<String>,
    /// Other places that take part in the problem, each with its own note.
    pub related: Vec<(Location, String)>,
    /// The environments in which the problem shows; empty when it shows in all of them.
    pub environments: Vec<String>,
    /// Worth saying, but not wrong: nothing is refused for it.
    pub warning: bool,
}

impl Problem {
    pub fn new(message: impl Into<String>) -> Problem {
        Problem {
            location: None,
            message: message.into(),
            label: None,
            help: None,
            related: Vec::new(),
            environments: Vec::new(),
            warning: false,
        }
    }

    /// The same, as a warning.
    pub fn as_warning(mut self) -> Problem {
        self.warning = true;
        self
    }

    pub fn at(mut self, location: Option<&Location>) -> Problem {
        self.location = location.cloned();
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Problem {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Problem {
        self.help = Some(help.into());
        self
    }

    pub fn related(mut self, location: Option<&Location>, note: impl Into<String>) -> Problem {
        if let Some(location) = location {
            self.related.push((location.clone(), note.into()));
        }
        self
    }

    pub fn in_environment(mut self, environment: &str) -> Problem {
        self.environments = vec![environment.to_owned()];
        self
    }

    /// `tier.toml:12:5`, or the message's own words when it has no place.
    pub fn place(&self, sources: &SourceMap) -> Option<String> {
        self.location
            .as_ref()
            .map(|location| sources.describe(location))
    }

    /// A value that miette can render, quoting the file the problem is in.
    pub fn report<'a>(&'a self, sources: &'a SourceMap) -> Report<'a> {
        Report {
            problem: self,
            sources,
        }
    }
}

/// Sorts problems by file and position and merges those that differ only in environment.
pub fn merge_duplicates(mut problems: Vec<Problem>, all_environments: usize) -> Vec<Problem> {
    problems.sort();
    let mut merged: Vec<Problem> = Vec::new();
    for problem in problems {
        if let Some(last) = merged.last_mut()
            && last.location == problem.location
            && last.message == problem.message
            && last.label == problem.label
            && last.help == problem.help
            && last.related == problem.related
        {
            if !problem.environments.is_empty() && !last.environments.is_empty() {
                last.environments.extend(problem.environments);
            } else {
                last.environments.clear();
            }
            continue;
        }
        merged.push(problem);
    }
    for problem in &mut merged {
        problem.environments.sort();
        problem.environments.dedup();
        if all_environments > 1 && problem.environments.len() == all_environments {
            problem.environments.clear();
        }
    }
    merged
}

/// A [`Problem`] with the sources it points into, as a miette diagnostic.
pub struct Report<'a> {
    problem: &'a Problem,
    sources: &'a SourceMap,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.problem, f)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem.message)?;
        match self.problem.environments.as_slice() {
            [] => Ok(()),
            [one] if self.problem.message.contains(&format!("`{one}`")) => Ok(()),
            [one] => write!(f, " (environment {one})"),
            many => write!(f, " (environments {})", many.join(", ")),
        }
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        self.problem.warning.then_some(miette::Severity::Warning)
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.problem
            .help
            .as_ref()
            .map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        let location = self.problem.location.as_ref()?;
        Some(self.sources.get(location.file) as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let location = self.problem.location.as_ref()?;
        let primary = miette::LabeledSpan::new_primary_with_span(
            Some(
                self.problem
                    .label
                    .clone()
                    .unwrap_or_else(|| "here".to_owned()),
            ),
            location.span.clone(),
        );
        let same_file = self
            .problem
            .related
            .iter()
            .filter(move |(related, _)| related.file == location.file)
            .map(|(related, note)| {
                miette::LabeledSpan::new_with_span(Some(note.clone()), related.span.clone())
            });
        Some(Box::new(std::iter::once(primary).chain(same_file)))
    }

    fn related<'b>(&'b self) -> Option<Box<dyn Iterator<Item = &'b dyn miette::Diagnostic> + 'b>> {
        None
    }
}

/// Other places of a problem that are in another file than the problem itself.
pub fn related_elsewhere<'a>(problem: &'a Problem, sources: &'a SourceMap) -> Vec<String> {
    problem
        .related
        .iter()
        .filter(|(related, _)| {
            problem
                .location
                .as_ref()
                .is_none_or(|at| at.file != related.file)
        })
        .map(|(related, note)| format!("{}: {note}", sources.describe(related)))
        .collect()
}
