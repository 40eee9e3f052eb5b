//! The text forms of the store's answers: tables for listings, histories and flags, and a
//! line per watched change. Pure: answers in, text out.

use serde_json::{Value, json};
use tier_client::{FlagSnapshot, KeyHistory, KeyState, Listing, WatchEvent};

/// A value as a person reads it: a string without its quotes, anything else as JSON.
pub(super) fn show_value(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

pub(super) fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let kept: String = text.chars().take(limit - 1).collect();
    format!("{kept}…")
}

pub(super) fn describe_flag(value: &Value) -> String {
    match value {
        Value::Bool(true) => "on".to_owned(),
        Value::Bool(false) => "off".to_owned(),
        Value::Object(fields) if fields.contains_key("percent") => {
            format!("on for {}%", fields["percent"])
        }
        other => show_value(other),
    }
}

/// `KEY  VALUE  REVISION`, one row a key.
pub(super) fn listing_rows(listing: &Listing) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "KEY".to_owned(),
        "VALUE".to_owned(),
        "REVISION".to_owned(),
    ]];
    for kv in &listing.kvs {
        rows.push(vec![
            kv.key.clone(),
            shorten(&show_value(&kv.value), 60),
            kv.mod_revision.to_string(),
        ]);
    }
    rows
}

/// One row an audited change: who made it is the actor, or the token's kind without one.
pub(super) fn history_rows(history: &KeyHistory) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "REVISION".to_owned(),
        "WHEN".to_owned(),
        "WHO".to_owned(),
        "ACTION".to_owned(),
        "OLD".to_owned(),
        "NEW".to_owned(),
    ]];
    let side = |side: &Option<KeyState>| match side {
        Some(state) => shorten(&show_value(&state.value), 30),
        None => "-".to_owned(),
    };
    for record in &history.history {
        let mut action = record.action.as_str().to_owned();
        if let Some(to) = record.rolled_back_to {
            action = format!("{action} to {to}");
        }
        rows.push(vec![
            record.revision.to_string(),
            crate::commands::deploy::format_time(record.at_unix_ms),
            record.actor.clone().unwrap_or_else(|| record.token.clone()),
            action,
            side(&record.old),
            side(&record.new),
        ]);
    }
    rows
}

/// One row a declared flag, in name order.
pub(super) fn flag_rows(snapshot: &FlagSnapshot) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "FLAG".to_owned(),
        "VALUE".to_owned(),
        "DEFAULT".to_owned(),
        "SET AT RUN TIME".to_owned(),
        "DESCRIPTION".to_owned(),
    ]];
    for (name, flag) in &snapshot.flags {
        rows.push(vec![
            name.clone(),
            describe_flag(&flag.value),
            describe_flag(&flag.default),
            if flag.overridden { "yes" } else { "no" }.to_owned(),
            flag.description.clone().unwrap_or_default(),
        ]);
    }
    rows
}

/// `REVISION put KEY = VALUE` or `REVISION delete KEY`.
pub(super) fn event_line(event: &WatchEvent) -> String {
    match event {
        WatchEvent::Put(kv) => format!(
            "{} put {} = {}",
            kv.mod_revision,
            kv.key,
            show_value(&kv.value)
        ),
        WatchEvent::Delete { key, revision } => format!("{revision} delete {key}"),
    }
}

/// `{"event": "put" | "delete", "data": <the event as the API sent it>}`.
pub(super) fn event_json(event: &WatchEvent) -> Value {
    match event {
        WatchEvent::Put(kv) => json!({
            "event": "put",
            "data": serde_json::to_value(kv).unwrap_or(Value::Null),
        }),
        WatchEvent::Delete { key, revision } => json!({
            "event": "delete",
            "data": { "key": key, "revision": revision },
        }),
    }
}

#[cfg(test)]
mod tests {
    use tier_client::{Action, AuditRecord, KeyValue};

    use super::*;

    fn kv(key: &str, value: Value, mod_revision: u64) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value,
            create_revision: 1,
            mod_revision,
            version: 1,
            lease: None,
        }
    }

    #[test]
    fn watched_changes_read_as_lines_and_as_the_apis_events() {
        let put = WatchEvent::Put(kv("app/name", json!("blue"), 7));
        assert_eq!(event_line(&put), "7 put app/name = blue");
        assert_eq!(
            event_json(&put).to_string(),
            r#"{"event":"put","data":{"key":"app/name","value":"blue","create_revision":1,"mod_revision":7,"version":1,"lease":null}}"#
        );
        let delete = WatchEvent::Delete {
            key: "app/name".to_owned(),
            revision: 9,
        };
        assert_eq!(event_line(&delete), "9 delete app/name");
        assert_eq!(
            event_json(&delete).to_string(),
            r#"{"event":"delete","data":{"key":"app/name","revision":9}}"#
        );
    }

    #[test]
    fn a_change_without_an_actor_is_shown_under_its_token_kind() {
        let record = AuditRecord {
            revision: 12,
            key: "app/limit".to_owned(),
            action: Action::Rollback,
            token: "read-write".to_owned(),
            actor: None,
            at_unix_ms: 0,
            old: None,
            new: Some(KeyState {
                value: json!("x".repeat(40)),
                mod_revision: 12,
            }),
            rolled_back_to: Some(4),
        };
        let history = KeyHistory {
            key: "app/limit".to_owned(),
            revision: 12,
            history: vec![record],
        };
        let rows = history_rows(&history);
        assert_eq!(rows[1][0], "12");
        assert_eq!(rows[1][2..5], ["read-write", "rollback to 4", "-"]);
        assert_eq!(rows[1][5], format!("{}…", "x".repeat(29)));
    }

    #[test]
    fn flag_values_read_as_on_off_and_percentages() {
        assert_eq!(describe_flag(&json!(true)), "on");
        assert_eq!(describe_flag(&json!(false)), "off");
        assert_eq!(describe_flag(&json!({"percent": 25})), "on for 25%");
        assert_eq!(describe_flag(&json!("blue")), "blue");
    }
}
