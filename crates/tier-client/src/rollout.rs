//! How a flag evaluates: the one definition the store's server, the CLI and every service
//! use, so they agree on who is in a percentage rollout. It needs no network, so it is built
//! without the `http` feature for `tier-store`.

use serde_json::Value;

/// The rollout bucket (0 to 99) of `key` for `flag`: FNV-1a (64-bit; offset basis
/// 0xcbf29ce484222325, prime 0x100000001b3) over the UTF-8 bytes of `<flag>/<key>`, modulo
/// 100. The flag's name is part of the input so that two flags at 10% reach different keys.
pub fn rollout_bucket(flag: &str, key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in flag.bytes().chain([b'/']).chain(key.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash % 100
}

/// Whether a flag with `value` is on, for `key` when given: `true`/`false` as they are; a
/// rollout `{"percent": p}` is on when `rollout_bucket(flag, key) < p`, and without a key only
/// at 100 (off at 0; `None` in between). Other values are not on/off flags: `None`.
pub fn flag_enabled(flag: &str, value: &Value, key: Option<&str>) -> Option<bool> {
    match value {
        Value::Bool(on) => Some(*on),
        Value::Object(_) => match (rollout_percent(value)?, key) {
            (100, _) => Some(true),
            (0, _) => Some(false),
            (percent, Some(key)) => Some(rollout_bucket(flag, key) < percent),
            (_, None) => None,
        },
        _ => None,
    }
}

/// The percentage of a rollout value `{"percent": p}` with a whole `p` from 0 to 100; `None`
/// for anything else, including an object with more fields.
pub fn rollout_percent(value: &Value) -> Option<u64> {
    let object = value.as_object()?;
    let percent = object.get("percent")?.as_u64()?;
    (object.len() == 1 && percent <= 100).then_some(percent)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (the published test vector); of "/" (an
        // empty flag and key) 0xaf63a24c860189fe, and of "checkout/user-42" 0xc25cc35398949ae2.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in b"a" {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        assert_eq!(hash, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(rollout_bucket("", ""), 0xaf63_a24c_8601_89fe_u64 % 100);
        assert_eq!(rollout_bucket("checkout", "user-42"), 34);
    }

    #[test]
    fn evaluation() {
        let on = json!({ "percent": 100 });
        let off = json!({ "percent": 0 });
        let half = json!({ "percent": 50 });
        assert_eq!(flag_enabled("f", &json!(true), None), Some(true));
        assert_eq!(flag_enabled("f", &on, None), Some(true));
        assert_eq!(flag_enabled("f", &off, Some("u")), Some(false));
        assert_eq!(flag_enabled("f", &half, None), None);
        assert_eq!(flag_enabled("f", &json!("blue"), None), None);
        assert_eq!(flag_enabled("f", &Value::Null, Some("u")), None);
        assert_eq!(
            flag_enabled("f", &json!({ "percent": 101 }), Some("u")),
            None
        );
        assert_eq!(
            flag_enabled("f", &json!({ "percent": 5, "extra": 1 }), Some("u")),
            None
        );
        let in_half = (0..1000)
            .filter(|user| flag_enabled("f", &half, Some(&format!("user-{user}"))) == Some(true))
            .count();
        assert!((400..600).contains(&in_half), "{in_half} of 1000 at 50%");
    }

    #[test]
    fn raising_the_percentage_only_adds_keys() {
        for user in 0..500 {
            let key = format!("user-{user}");
            let mut was_in = false;
            for percent in 0..=100 {
                let is_in = flag_enabled("f", &json!({ "percent": percent }), Some(&key));
                assert!(!was_in || is_in == Some(true), "{key} left at {percent}%");
                was_in = is_in == Some(true);
            }
        }
    }
}
