//! What tier uses for a key a project does not write, each written once. A choice's default
//! is its enum's `DEFAULT` (see [`choice!`](crate::choice)); the rest are here. The schema's
//! fields carry them ([`FieldDefault`](crate::schema::FieldDefault): `tier schema` prints
//! them as `default`, and each field's description ends with it), the resolver falls back to
//! them, and `tier explain` shows a defaulted value's field.

use crate::quantity::Duration;

/// `port`: the port a service listens on.
pub const PORT: u16 = 8080;
/// `replicas`.
pub const REPLICAS: u32 = 1;
/// `memory`: the request and limit. [`MEMORY_BYTES`] is the same amount.
pub const MEMORY: &str = "128Mi";
pub const MEMORY_BYTES: u64 = 128 << 20;
/// `service`: whether other services can reach this one.
pub const REACHABLE: bool = true;
/// A probe's `initial_delay`, `interval`, `timeout` and thresholds.
pub const PROBE_INITIAL_DELAY: Duration = Duration::from_millis(0);
pub const PROBE_INTERVAL: Duration = Duration::from_millis(2_000);
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1_000);
pub const FAILURE_THRESHOLD: u32 = 3;
pub const SUCCESS_THRESHOLD: u32 = 1;
/// `rollout.max_surge`, `rollout.max_unavailable`, `rollout.deadline`.
pub const MAX_SURGE: u32 = 1;
pub const MAX_UNAVAILABLE: u32 = 0;
pub const ROLLOUT_DEADLINE: Duration = Duration::from_millis(60_000);
/// `service_account.automount`.
pub const AUTOMOUNT: bool = false;
/// `volumes.<name>.read_only`.
pub const READ_ONLY: bool = false;
/// `project.ordering`: deploy in dependency order.
pub const ORDERING: bool = true;
/// `volumes.<name>.empty_dir.medium`.
pub const MEDIUM: &str = "disk";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantity::Quantity;

    #[test]
    fn the_memory_default_is_one_amount_in_both_spellings() {
        let parsed = Quantity::parse_memory(MEMORY).expect("the default parses");
        assert_eq!(parsed, Quantity::default_memory());
        assert_eq!(Quantity::default_memory().to_string(), MEMORY);
        assert_eq!(MEMORY_BYTES, 128 * 1024 * 1024);
    }
}

#[cfg(test)]
mod schema_tests {
    use crate::schema::{Field, FieldDefault, OVERRIDE_FILE, PROJECT_FILE, Ty};

    /// Every default the schema shows is a value its own key accepts.
    fn check(fields: &'static [Field], path: &str, seen: &mut usize) {
        for field in fields {
            let path = format!("{path}{}", field.name);
            if let Some(default) = field.default {
                *seen += 1;
                let fits = match (default, field.ty) {
                    (FieldDefault::Said(_), _) => true,
                    (FieldDefault::Bool(_), Ty::Bool) => true,
                    (FieldDefault::Integer(n), Ty::Integer { min, max }) => {
                        (*min..=*max).contains(&n)
                    }
                    (FieldDefault::Integer(n), Ty::Port) => (1..=65_535).contains(&n),
                    (FieldDefault::Word(word), Ty::Choice(choices)) => choices.contains(&word),
                    (FieldDefault::Word(word), Ty::Memory) => {
                        crate::quantity::Quantity::parse_memory(word).is_ok()
                    }
                    (FieldDefault::Duration(_), Ty::Duration) => true,
                    _ => false,
                };
                assert!(
                    fits,
                    "{path}: the default {default} is not a value of its type"
                );
            }
            match field.ty {
                Ty::Table(inner) | Ty::StringOrTable { table: inner, .. } => {
                    check(inner, &format!("{path}."), seen);
                }
                Ty::Map {
                    value: Ty::Table(inner),
                    ..
                } => check(inner, &format!("{path}.*."), seen),
                _ => {}
            }
        }
    }

    #[test]
    fn every_default_the_schema_shows_is_a_value_of_its_key() {
        let mut seen = 0;
        check(PROJECT_FILE, "", &mut seen);
        check(OVERRIDE_FILE, "", &mut seen);
        assert!(seen >= 30, "only {seen} defaults found");
    }

    #[test]
    fn a_defaulted_path_finds_its_field_through_maps() {
        let field = crate::schema::field_at(PROJECT_FILE, "services.web.rollout.max_surge");
        assert_eq!(field.map(|field| field.name), Some("max_surge"));
        assert_eq!(
            crate::schema::field_at(PROJECT_FILE, "services.web.replicas").and_then(|f| f.default),
            Some(FieldDefault::Integer(1))
        );
        assert!(crate::schema::field_at(PROJECT_FILE, "services.web").is_none());
        assert!(crate::schema::field_at(PROJECT_FILE, "services.web.nothing").is_none());
    }
}
