//! What the integration tests share: problems as the one line each test compares.

use tier_model::Problem;
use tier_model::source::SourceMap;

/// Every problem as `file:line:column message`; fails the test when one has no location.
pub fn located(problems: &[Problem], sources: &SourceMap) -> Vec<String> {
    problems
        .iter()
        .map(|problem| {
            let place = problem
                .place(sources)
                .expect("every problem has a location");
            format!("{place} {}", problem.message)
        })
        .collect()
}
