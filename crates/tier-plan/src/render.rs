//! The human view of a plan, Terraform-like:
//!
//! ```text
//! Plan for stage against revision 4:
//!
//! ~ backend (scale)
//!   ~ replicas: 2 → 3
//!
//!   1 unchanged (frontend)
//!
//! Plan: 0 to create, 1 to update, 0 to delete, 1 unchanged.
//! ```
//!
//! Environment-level changes come first, then one block per service that changes, signed `+`
//! (create), `~` (update) or `-` (delete), in the plan's order (waves, then deletions). Values
//! are shown as JSON, artifact digests shortened. Secrets are references in the model
//! (`<secret:env:NAME>`) and are shown as such; no value is ever looked up here.

use std::fmt::Write;

use console::Style;
use serde_json::Value;

use crate::{ARTIFACT_FIELD, Action, FieldChange, Plan, SECRET_FINGERPRINTS};

/// How many hex digits of a `sha256:` digest are shown.
const DIGEST_SHOWN: usize = 12;
/// Up to this many unchanged services are named in the "N unchanged" line.
const UNCHANGED_NAMED: usize = 5;

pub(crate) fn render_text(plan: &Plan, color: bool) -> String {
    let mut out = tier_changes(plan, color);
    if !plan.outside.is_empty() {
        let paint = Paint { color };
        let _ = writeln!(
            out,
            "\n{}",
            paint.bold("Changed outside tier (`tier apply` puts these back):")
        );
        for line in &plan.outside {
            let _ = writeln!(out, "  {} {line}", paint.sign('~'));
        }
    }
    out
}

fn tier_changes(plan: &Plan, color: bool) -> String {
    let paint = Paint { color };
    let environment = &plan.environment;
    let mut out = String::new();
    if plan.is_empty() {
        let _ = match plan.base_revision {
            Some(revision) => writeln!(
                out,
                "{}",
                paint.bold(&format!(
                    "No changes: {environment} matches revision {revision}."
                ))
            ),
            None => writeln!(
                out,
                "{}",
                paint.bold(&format!("No changes: {environment} has nothing to deploy."))
            ),
        };
        return out;
    }

    let _ = match plan.base_revision {
        Some(revision) => writeln!(out, "Plan for {environment} against revision {revision}:"),
        None => writeln!(
            out,
            "Plan for {environment}, where nothing is deployed yet:"
        ),
    };
    out.push('\n');

    if !plan.settings.is_empty() {
        let sign = if plan.base_revision.is_some() {
            '~'
        } else {
            '+'
        };
        let _ = writeln!(
            out,
            "{} {}",
            paint.sign(sign),
            paint.bold(&format!("environment {environment}"))
        );
        for field in &plan.settings {
            field_line(&mut out, &paint, field);
        }
        out.push('\n');
    }

    let mut unchanged = Vec::new();
    for service in &plan.services {
        let sign = match service.action {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
            Action::Unchanged => {
                unchanged.push(service.service.as_str());
                continue;
            }
        };
        let note = if service.is_scale() { " (scale)" } else { "" };
        let _ = writeln!(
            out,
            "{} {}{note}",
            paint.sign(sign),
            paint.bold(&service.service)
        );
        for field in &service.fields {
            field_line(&mut out, &paint, field);
        }
        out.push('\n');
    }
    if !unchanged.is_empty() {
        let names = if unchanged.len() <= UNCHANGED_NAMED {
            format!(" ({})", unchanged.join(", "))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {}",
            paint.dim(&format!("{} unchanged{names}", unchanged.len()))
        );
        out.push('\n');
    }

    let counts = plan.counts();
    // On a first deploy every setting is new and shown above; counting them says nothing.
    let settings = match plan.settings.len() {
        _ if plan.base_revision.is_none() => String::new(),
        0 => String::new(),
        1 => ", 1 environment setting to change".to_owned(),
        many => format!(", {many} environment settings to change"),
    };
    let _ = writeln!(
        out,
        "{}",
        paint.bold(&format!(
            "Plan: {} to create, {} to update, {} to delete, {} unchanged{settings}.",
            counts.create, counts.update, counts.delete, counts.unchanged
        ))
    );
    out
}

fn field_line(out: &mut String, paint: &Paint, field: &FieldChange) {
    let path = &field.path;
    if let Some(name) = path.strip_prefix(SECRET_FINGERPRINTS) {
        secret_line(out, paint, name, field);
        return;
    }
    let show = |value: &Value| show_value(path, value);
    let _ = match (&field.old, &field.new) {
        (Some(old), Some(new)) => writeln!(
            out,
            "  {} {path}: {} → {}",
            paint.sign('~'),
            show(old),
            show(new)
        ),
        (None, Some(new)) => writeln!(out, "  {} {path}: {}", paint.sign('+'), show(new)),
        (Some(old), None) => writeln!(out, "  {} {path}: {}", paint.sign('-'), show(old)),
        (None, None) => Ok(()),
    };
}

/// A secret whose value changed, appeared or went away, by its keyed fingerprint; the value
/// itself is never known here.
fn secret_line(out: &mut String, paint: &Paint, name: &str, field: &FieldChange) {
    let fingerprint = |value: &Value| value.as_str().unwrap_or("?").to_owned();
    let _ = match (&field.old, &field.new) {
        (Some(old), Some(new)) => writeln!(
            out,
            "  {} secret {name}: value changed ({} → {})",
            paint.sign('~'),
            fingerprint(old),
            fingerprint(new)
        ),
        (None, Some(new)) => writeln!(
            out,
            "  {} secret {name}: value set ({})",
            paint.sign('~'),
            fingerprint(new)
        ),
        (Some(old), None) => writeln!(
            out,
            "  {} secret {name}: value no longer read ({})",
            paint.sign('~'),
            fingerprint(old)
        ),
        (None, None) => Ok(()),
    };
}

/// A value as one line of JSON; an artifact digest unquoted and shortened.
fn show_value(path: &str, value: &Value) -> String {
    match value {
        Value::String(digest) if path == ARTIFACT_FIELD => short_digest(digest),
        _ => value.to_string(),
    }
}

/// `sha256:` and the first few hex digits of a digest, or of the digest part of an image
/// reference (`registry/app@sha256:…`); anything else unchanged.
pub(crate) fn short_digest(digest: &str) -> String {
    const MARKER: &str = "sha256:";
    if let Some(at) = digest.find(MARKER) {
        let (head, hex) = digest.split_at(at + MARKER.len());
        if hex.len() > DIGEST_SHOWN && hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return format!("{head}{}…", &hex[..DIGEST_SHOWN]);
        }
    }
    digest.to_owned()
}

struct Paint {
    color: bool,
}

impl Paint {
    fn sign(&self, sign: char) -> String {
        let style = match sign {
            '+' => Style::new().green(),
            '~' => Style::new().yellow(),
            '-' => Style::new().red(),
            _ => Style::new(),
        };
        self.apply(style.bold(), sign)
    }

    fn bold(&self, text: &str) -> String {
        self.apply(Style::new().bold(), text)
    }

    fn dim(&self, text: &str) -> String {
        self.apply(Style::new().dim(), text)
    }

    fn apply(&self, style: Style, text: impl std::fmt::Display) -> String {
        style.force_styling(self.color).apply_to(text).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_shortened_to_twelve_hex_digits() {
        let digest = format!("sha256:{}", "1a2b3c4d5e6f7a8b9c0d".repeat(3));
        assert_eq!(short_digest(&digest), "sha256:1a2b3c4d5e6f…");
    }

    #[test]
    fn an_image_digest_keeps_its_reference() {
        let image = format!("registry.example/app@sha256:{}", "ab".repeat(32));
        assert_eq!(
            short_digest(&image),
            "registry.example/app@sha256:abababababab…"
        );
    }

    #[test]
    fn a_short_or_odd_digest_is_left_alone() {
        assert_eq!(short_digest("sha256:abc"), "sha256:abc");
        assert_eq!(
            short_digest("sample-app-backend:0.0.1"),
            "sample-app-backend:0.0.1"
        );
        assert_eq!(
            short_digest("sha256:not-hex-not-hex-not-hex"),
            "sha256:not-hex-not-hex-not-hex"
        );
    }

    #[test]
    fn other_values_are_json() {
        assert_eq!(show_value("replicas", &Value::from(3)), "3");
        assert_eq!(show_value("config.text", &Value::from("a")), "\"a\"");
    }
}
