//! Kubernetes-style resource quantities and durations.

use std::fmt;

use serde::{Deserialize, Serialize};

pub const MEMORY_PATTERN: &str = "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$";
pub const CPU_PATTERN: &str = "^([0-9]+m|[0-9]+(\\.[0-9]+)?)$";
pub const DURATION_PATTERN: &str = "^[0-9]+(ms|s|m|h)$";

/// A memory or CPU quantity as written (`128Mi`, `500m`), with its value in base units
/// (bytes, or millicores).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quantity {
    text: String,
    base_units: u64,
}

impl Quantity {
    pub fn parse_memory(text: &str) -> Result<Quantity, String> {
        let invalid = || format!("\"{text}\" is not a memory quantity");
        let (number, suffix) = split_number(text).ok_or_else(invalid)?;
        let multiplier: u64 = match suffix {
            "" => 1,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            "Pi" => 1 << 50,
            "Ei" => 1 << 60,
            "k" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            "T" => 1_000_000_000_000,
            "P" => 1_000_000_000_000_000,
            "E" => 1_000_000_000_000_000_000,
            _ => return Err(invalid()),
        };
        let bytes = number * multiplier as f64;
        if !(bytes.is_finite() && bytes < u64::MAX as f64) {
            return Err(format!("\"{text}\" is too large"));
        }
        if bytes < 1.0 {
            return Err(format!("\"{text}\" is no memory at all"));
        }
        Ok(Quantity {
            text: text.to_owned(),
            base_units: bytes as u64,
        })
    }

    pub fn parse_cpu(text: &str) -> Result<Quantity, String> {
        let invalid = || format!("\"{text}\" is not a CPU quantity");
        let (number, suffix) = split_number(text).ok_or_else(invalid)?;
        let millicores = match suffix {
            "m" if !text.contains('.') => number,
            "" => number * 1000.0,
            _ => return Err(invalid()),
        };
        if !(millicores.is_finite() && millicores < 1e12) {
            return Err(format!("\"{text}\" is too large"));
        }
        if millicores < 1.0 {
            return Err(format!("\"{text}\" is less than one millicore"));
        }
        Ok(Quantity {
            text: text.to_owned(),
            base_units: millicores as u64,
        })
    }

    /// The memory a service gets when it names none ([`defaults::MEMORY`]).
    ///
    /// [`defaults::MEMORY`]: crate::defaults::MEMORY
    pub fn default_memory() -> Quantity {
        Quantity {
            text: crate::defaults::MEMORY.to_owned(),
            base_units: crate::defaults::MEMORY_BYTES,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Bytes for memory, millicores for CPU.
    pub fn base_units(&self) -> u64 {
        self.base_units
    }
}

/// What a memory quantity that does not parse most likely meant: `"12 GB"` is `"12G"`,
/// `"128mi"` is `"128Mi"`, and a Docker-style `"512m"` is `"512Mi"`.
pub fn suggest_memory(text: &str) -> Option<String> {
    let (number, unit) = split_words(text);
    let unit = match unit.as_str() {
        "" | "b" => "",
        "ki" | "kib" | "k" => "Ki",
        "mi" | "mib" | "m" => "Mi",
        "gi" | "gib" | "g" => "Gi",
        "ti" | "tib" | "t" => "Ti",
        "kb" => "k",
        "mb" => "M",
        "gb" => "G",
        "tb" => "T",
        _ => return None,
    };
    let suggestion = format!("{number}{unit}");
    (suggestion != text && Quantity::parse_memory(&suggestion).is_ok()).then_some(suggestion)
}

/// What a CPU quantity that does not parse most likely meant: `"2 cores"` is `"2"`, and
/// `"500 millicores"` is `"500m"`.
pub fn suggest_cpu(text: &str) -> Option<String> {
    let (number, unit) = split_words(text);
    let unit = match unit.as_str() {
        "" | "core" | "cores" | "cpu" | "cpus" | "vcpu" | "vcpus" => "",
        "m" | "millicore" | "millicores" | "mcpu" => "m",
        _ => return None,
    };
    let suggestion = format!("{number}{unit}");
    (suggestion != text && Quantity::parse_cpu(&suggestion).is_ok()).then_some(suggestion)
}

/// What a duration that does not parse most likely meant: `"5 seconds"` is `"5s"`, `"1.5s"`
/// is `"1500ms"`, and a bare `"5"` is `"5s"`.
pub fn suggest_duration(text: &str) -> Option<String> {
    let (number, unit) = split_words(text);
    let millis: u64 = match unit.as_str() {
        "ms" | "msec" | "millis" | "millisecond" | "milliseconds" => 1,
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
        _ => return None,
    };
    let suggestion = match number.parse::<u64>() {
        Ok(whole) => format!(
            "{whole}{}",
            match millis {
                1 => "ms",
                1_000 => "s",
                60_000 => "m",
                _ => "h",
            }
        ),
        Err(_) => {
            let total = number.parse::<f64>().ok()? * millis as f64;
            if !(total.is_finite() && total >= 0.0 && total.fract() == 0.0 && total < 1e15) {
                return None;
            }
            format!("{}ms", total as u64)
        }
    };
    (suggestion != text && Duration::parse(&suggestion).is_ok()).then_some(suggestion)
}

/// A quantity's number and its unit in lowercase, with the spaces between taken out.
fn split_words(text: &str) -> (String, String) {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let end = compact
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(compact.len());
    let (number, unit) = compact.split_at(end);
    (number.to_owned(), unit.to_ascii_lowercase())
}

fn split_number(text: &str) -> Option<(f64, &str)> {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(end);
    let well_formed = !number.is_empty()
        && !number.starts_with('.')
        && !number.ends_with('.')
        && number.matches('.').count() <= 1;
    if !well_formed {
        return None;
    }
    Some((number.parse().ok()?, suffix))
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// Read back as a memory quantity; a CPU field reads itself with [`deserialize_cpu`].
impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Quantity::parse_memory(&text).map_err(serde::de::Error::custom)
    }
}

/// Reads an optional CPU quantity (`"500m"`, `"2"`) back from a rendered environment.
pub fn deserialize_cpu<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Quantity>, D::Error> {
    Option::<String>::deserialize(deserializer)?
        .map(|text| Quantity::parse_cpu(&text).map_err(serde::de::Error::custom))
        .transpose()
}

/// A duration as written (`500ms`, `5s`, `2m`, `1h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duration {
    millis: u64,
}

impl Duration {
    pub const fn from_millis(millis: u64) -> Duration {
        Duration { millis }
    }

    pub fn parse(text: &str) -> Result<Duration, String> {
        let invalid = || format!("\"{text}\" is not a duration");
        let end = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let (number, unit) = text.split_at(end);
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let scale = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(invalid()),
        };
        let millis = number
            .checked_mul(scale)
            .ok_or_else(|| format!("\"{text}\" is too long"))?;
        Ok(Duration { millis })
    }

    pub fn as_millis(self) -> u64 {
        self.millis
    }

    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.millis;
        if millis == 0 {
            f.write_str("0s")
        } else if millis.is_multiple_of(3_600_000) {
            write!(f, "{}h", millis / 3_600_000)
        } else if millis.is_multiple_of(60_000) {
            write!(f, "{}m", millis / 60_000)
        } else if millis.is_multiple_of(1_000) {
            write!(f, "{}s", millis / 1_000)
        } else {
            write!(f, "{millis}ms")
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_quantities() {
        assert_eq!(
            Quantity::parse_memory("128Mi").map(|q| q.base_units()),
            Ok(128 << 20)
        );
        assert_eq!(
            Quantity::parse_memory("1Gi").map(|q| q.base_units()),
            Ok(1 << 30)
        );
        assert_eq!(
            Quantity::parse_memory("1.5G").map(|q| q.base_units()),
            Ok(1_500_000_000)
        );
        for bad in [
            "12 GB", "12GB", "", "Mi", ".5Mi", "1..2Mi", "0", "-1Mi", "128mi",
        ] {
            assert!(Quantity::parse_memory(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu_quantities() {
        assert_eq!(Quantity::parse_cpu("500m").map(|q| q.base_units()), Ok(500));
        assert_eq!(Quantity::parse_cpu("0.5").map(|q| q.base_units()), Ok(500));
        assert_eq!(Quantity::parse_cpu("2").map(|q| q.base_units()), Ok(2000));
        for bad in ["", "1.5m", "half", "0m", "2 cores"] {
            assert!(Quantity::parse_cpu(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn suggestions_for_near_misses() {
        assert_eq!(suggest_memory("12 GB").as_deref(), Some("12G"));
        assert_eq!(suggest_memory("128mi").as_deref(), Some("128Mi"));
        assert_eq!(suggest_memory("512m").as_deref(), Some("512Mi"));
        assert_eq!(suggest_memory("lots"), None);
        assert_eq!(suggest_cpu("2 cores").as_deref(), Some("2"));
        assert_eq!(suggest_cpu("500 millicores").as_deref(), Some("500m"));
        assert_eq!(suggest_cpu("half"), None);
        assert_eq!(suggest_duration("5 seconds").as_deref(), Some("5s"));
        assert_eq!(suggest_duration("1.5s").as_deref(), Some("1500ms"));
        assert_eq!(suggest_duration("5").as_deref(), Some("5s"));
        assert_eq!(suggest_duration("0.0001ms"), None);
        assert_eq!(suggest_duration("soon"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(Duration::parse("500ms").map(Duration::as_millis), Ok(500));
        assert_eq!(
            Duration::parse("2m").map(|d| d.to_string()),
            Ok("2m".to_owned())
        );
        for bad in ["", "5", "s", "5 s", "1.5s", "99999999999999999999h"] {
            assert!(Duration::parse(bad).is_err(), "{bad}");
        }
    }
}
