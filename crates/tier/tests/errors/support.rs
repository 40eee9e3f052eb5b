//! Running `tier` on a broken project and checking its report: every problem located at a
//! file, line and column, each with help, all of them counted in the summary line.

use tier_test::{TestContext, redact};

/// `tier.toml` with a project and one local environment, `dev`, followed by `rest`.
pub(crate) fn with_dev(rest: &str) -> String {
    format!("[project]\nname = \"shop\"\n\n[environments.dev]\nruntime = \"local\"\n\n{rest}")
}

/// A service that is valid everywhere: `[services.web]` with a command and an image.
pub(crate) const WEB: &str =
    "[services.web]\ncommand = [\"bin/web\"]\nimage = \"shop/web:1.0.0\"\n";

/// Runs `tier` in the project, checks the exit code and that nothing went to stdout, and
/// returns stderr with the project's path redacted.
pub(crate) fn run(context: &TestContext, args: &[&str], code: i32) -> String {
    let run = context.tier(args).expect_code(code);
    assert!(
        run.stdout.is_empty(),
        "a failed `tier {args:?}` printed to stdout:\n{run}"
    );
    assert!(!run.stderr.contains("panicked"), "tier panicked:\n{run}");
    redact(&run.stderr, context.project())
}

/// `tier validate` on a project made of `files`; it must fail with exit code 1.
pub(crate) fn validate(files: &[(&str, &str)]) -> String {
    run(&TestContext::with_files(files), &["validate"], 1)
}

/// The problems of a report, one string per `×` block.
pub(crate) fn blocks(stderr: &str) -> Vec<String> {
    let mut blocks: Vec<String> = Vec::new();
    for line in stderr.lines() {
        if line.trim_start().starts_with('×') {
            blocks.push(String::new());
        } else if line.starts_with("error:") {
            break;
        }
        if let Some(block) = blocks.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    blocks
}

/// The `path:line:column` a problem's snippet is headed with, if it has one.
fn snippet_place(block: &str) -> Option<&str> {
    let start = block.find("╭─[")? + "╭─[".len();
    let end = start + block[start..].find(']')?;
    Some(&block[start..end])
}

/// Whether `place` is `path:line:column` with a non-empty path and numbers from 1.
fn is_file_line_column(place: &str) -> bool {
    let mut parts = place.rsplitn(3, ':');
    let numbers = [parts.next(), parts.next()];
    let path = parts.next();
    numbers
        .iter()
        .all(|part| part.is_some_and(|part| part.parse::<usize>().is_ok_and(|number| number >= 1)))
        && path.is_some_and(|path| !path.is_empty())
}

/// Checks that stderr reports exactly `count` problems, that the summary line says so, and
/// that each problem quotes its file at a line and column.
pub(crate) fn assert_located(stderr: &str, count: usize) {
    let blocks = blocks(stderr);
    assert_eq!(blocks.len(), count, "expected {count} problems:\n{stderr}");
    let summary = format!(
        "error: {count} problem{} found",
        if count == 1 { "" } else { "s" }
    );
    assert!(stderr.contains(&summary), "no `{summary}` in:\n{stderr}");
    for block in &blocks {
        let place = snippet_place(block);
        assert!(
            place.is_some_and(is_file_line_column),
            "a problem without a file:line:column:\n{block}\nin:\n{stderr}"
        );
    }
    assert_eq!(
        stderr.matches("╭─[").count(),
        count,
        "one snippet per problem:\n{stderr}"
    );
}

/// The report with miette's wrapped message lines joined again.
pub(crate) fn unwrapped(stderr: &str) -> String {
    stderr.replace("\n  │ ", " ")
}

/// Checks that every problem has a `help:` line, so each says what to do.
pub(crate) fn assert_helpful(stderr: &str) {
    for block in blocks(stderr) {
        assert!(block.contains("help:"), "a problem without help:\n{block}");
    }
}
