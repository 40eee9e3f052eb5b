//! Writing to the terminal: data to stdout, everything else to stderr, color only when wanted,
//! and a closed pipe is a normal end.

use std::io::Write;

use console::style;
use serde_json::json;
use tier_model::Problem;
use tier_model::problem::related_elsewhere;
use tier_model::source::SourceMap;

use crate::args::Color;

/// Whether to color, decided once from `--color`, `NO_COLOR` and whether stderr is a terminal.
pub fn init_color(color: Color) {
    let enabled = match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
                && console::Term::stderr().is_term()
        }
    };
    console::set_colors_enabled(enabled);
    console::set_colors_enabled_stderr(enabled);
}

pub fn colors() -> bool {
    console::colors_enabled_stderr()
}

/// Writes to stdout. A reader that went away (`tier render prod | head`) ends the program
/// quietly with success.
pub fn stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let written = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    if let Err(error) = written {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {error}");
        std::process::exit(1);
    }
}

pub fn stdout_line(text: &str) {
    stdout(&format!("{text}\n"));
}

pub fn json(value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
    stdout_line(&text);
}

pub fn error(message: &str) {
    eprintln!("{} {message}", style("error:").red().bold());
}

pub fn warning(message: &str) {
    eprintln!("{} {message}", style("warning:").yellow().bold());
}

pub fn hint(message: &str) {
    eprintln!("{} {message}", style("hint:").cyan());
}

/// Renders every problem with its source snippet, then a one-line summary.
pub fn problems(problems: &[Problem], sources: &SourceMap) {
    eprint!("{}", render_problems(problems, sources));
    let count = problems.len();
    error(&format!(
        "{count} problem{} found; nothing was changed",
        if count == 1 { "" } else { "s" }
    ));
}

/// Warnings, drawn like problems, then how many there were.
pub fn warnings(warnings: &[Problem], sources: &SourceMap) {
    if warnings.is_empty() {
        return;
    }
    eprint!("{}", render_problems(warnings, sources));
    let count = warnings.len();
    eprintln!(
        "{}: {count} warning{}",
        if colors() {
            console::style("warning").yellow().bold().to_string()
        } else {
            "warning".to_owned()
        },
        if count == 1 { "" } else { "s" }
    );
}

fn render_problems(problems: &[Problem], sources: &SourceMap) -> String {
    let theme = if colors() {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut text = String::new();
    for problem in problems {
        let report = problem.report(sources);
        let mut rendered = String::new();
        if handler.render_report(&mut rendered, &report).is_err() {
            rendered = format!("  × {report}\n");
        }
        text.push_str(&rendered);
        for line in related_elsewhere(problem, sources) {
            text.push_str(&format!("  see also {line}\n"));
        }
        text.push('\n');
    }
    text
}

/// Problems as JSON, for `--output json`.
pub fn problems_json(problems: &[Problem], sources: &SourceMap) -> serde_json::Value {
    let place = |location: &tier_model::source::Location| {
        let file = sources.get(location.file);
        let (line, column) = file.line_col(location.span.start);
        json!({ "file": file.path.display().to_string(), "line": line, "column": column })
    };
    problems
        .iter()
        .map(|problem| {
            json!({
                "message": problem.message,
                "location": problem.location.as_ref().map(place),
                "label": problem.label,
                "help": problem.help,
                "environments": problem.environments,
                "related": problem.related.iter().map(|(location, note)| {
                    json!({ "location": place(location), "note": note })
                }).collect::<Vec<_>>(),
            })
        })
        .collect()
}
