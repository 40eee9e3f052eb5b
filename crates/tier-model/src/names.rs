//! Names of services, environments, flags and environment variables.

use std::fmt;

use serde::{Deserialize, Serialize};

pub const DNS1035_PATTERN: &str = "^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$";
pub const DNS1035_HELP: &str = "use lowercase letters, digits and '-', start with a letter, end with a letter or digit, at most 63 characters (a DNS-1035 label, so the name maps to Kubernetes unchanged)";
pub const FLAG_PATTERN: &str = "^[A-Za-z][A-Za-z0-9._-]{0,62}$";
pub const FLAG_HELP: &str =
    "start with a letter; then letters, digits, '.', '_' or '-', at most 63 characters";
pub const ENV_VAR_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";
pub const ENV_VAR_HELP: &str = "use letters, digits and '_', not starting with a digit";

pub const LABEL_KEY_PATTERN: &str =
    "^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
pub const LABEL_KEY_HELP: &str = "write an optional DNS prefix and '/', then up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, e.g. \"team\" or \"example.com/owner\"";
pub const PORT_NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$";
pub const PORT_NAME_HELP: &str = "use at most 15 lowercase letters, digits and '-', with at least one letter, not starting or ending with '-' (a Kubernetes port name)";
pub const HEADER_PATTERN: &str = "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$";
pub const HEADER_HELP: &str = "use letters, digits and '-' (an HTTP header name), e.g. \"X-Probe\"";

/// Why a key is not a Kubernetes label or annotation key: an optional DNS subdomain prefix
/// and `/`, then a name of at most 63 characters.
pub fn check_label_key(key: &str) -> Result<(), &'static str> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() || prefix.len() > 253 {
            return Err("its prefix before '/' must be 1 to 253 characters");
        }
        if !prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            || prefix.starts_with(['-', '.'])
            || prefix.ends_with(['-', '.'])
        {
            return Err("its prefix before '/' must be a DNS name in lowercase");
        }
    }
    if name.is_empty() {
        return Err("its name is empty");
    }
    check_label_value(name)
}

/// Why a text is not a Kubernetes label value: at most 63 letters, digits, `-`, `_` or `.`,
/// starting and ending with a letter or digit (or empty).
pub fn check_label_value(value: &str) -> Result<(), &'static str> {
    if value.len() > 63 {
        return Err("it is longer than 63 characters");
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("it has a character other than letters, digits, '-', '_' and '.'");
    }
    if value.starts_with(['-', '_', '.']) || value.ends_with(['-', '_', '.']) {
        return Err("it must start and end with a letter or digit");
    }
    Ok(())
}

/// Why a name is not a Kubernetes port name (an IANA service name).
pub fn check_port_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 15 {
        return Err("it is longer than 15 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("it has a character other than a-z, 0-9 and '-'");
    }
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        return Err("it has no letter");
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err("it starts or ends with '-', or has '--'");
    }
    Ok(())
}

/// Why a name is not an HTTP header name.
pub fn check_header(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+.^_`|~-".contains(c))
    {
        Ok(())
    } else {
        Err("it has a character an HTTP header name cannot have")
    }
}

/// Why a name is not a DNS-1035 label.
pub fn check_dns1035(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("it is empty"),
        Some(first) if !first.is_ascii_lowercase() => {
            return Err(if first.is_ascii_uppercase() {
                "it has uppercase letters"
            } else {
                "it must start with a lowercase letter"
            });
        }
        Some(_) => {}
    }
    if name.len() > 63 {
        return Err("it is longer than 63 characters");
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("it has uppercase letters");
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(match bad {
            '_' => "it has '_' (use '-')",
            '.' => "it has '.'",
            ' ' => "it has a space",
            _ => "it has a character other than a-z, 0-9 and '-'",
        });
    }
    if name.ends_with('-') {
        return Err("it ends with '-'");
    }
    Ok(())
}

pub fn check_flag(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first.is_ascii_alphabetic() => {}
        Some(_) => return Err("it must start with a letter"),
        None => return Err("it is empty"),
    }
    if name.len() > 63 {
        return Err("it is longer than 63 characters");
    }
    if chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        Ok(())
    } else {
        Err("it has a character other than letters, digits, '.', '_' and '-'")
    }
}

pub fn check_env_var(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first.is_ascii_alphabetic() || first == '_' => {}
        Some(_) => return Err("it must start with a letter or '_'"),
        None => return Err("it is empty"),
    }
    if chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err("it has a character other than letters, digits and '_'")
    }
}

macro_rules! label_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Accepts only DNS-1035 labels.
            pub fn new(name: &str) -> Result<Self, &'static str> {
                check_dns1035(name).map(|()| Self(name.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::new(&text).map_err(|why| serde::de::Error::custom(format!("`{text}`: {why}")))
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

label_type!(
    /// The name of a service: a DNS-1035 label.
    ServiceName
);
label_type!(
    /// The name of an environment: a DNS-1035 label.
    EnvName
);

impl EnvName {
    /// For names whose problem, if any, is already reported.
    pub(crate) fn new_unchecked(name: &str) -> EnvName {
        EnvName(name.to_owned())
    }
}

impl ServiceName {
    /// The environment variable that carries this service's URL: `backend` → `BACKEND_URL`.
    pub fn url_variable(&self) -> String {
        format!("{}_URL", self.0.to_ascii_uppercase().replace('-', "_"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1035_labels() {
        for good in ["a", "backend", "prod-ie", "a1", &"a".repeat(63)] {
            assert_eq!(check_dns1035(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "1a",
            "-a",
            "a-",
            "Backend",
            "back_end",
            "a.b",
            &"a".repeat(64),
            "é",
        ] {
            assert!(check_dns1035(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn url_variable_is_upper_snake() {
        let name = ServiceName::new("user-api").expect("valid");
        assert_eq!(name.url_variable(), "USER_API_URL");
    }
}
