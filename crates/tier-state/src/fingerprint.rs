//! Keyed fingerprints of secret values, so state can tell that a secret changed without ever
//! holding it: HMAC-SHA256 under a per-environment key kept in `.tier/<env>/secrets.key`
//! (mode 0600, 32 random bytes, made on first use).
//!
//! A fingerprint without the key says nothing about the value, and the key never leaves the
//! environment's directory: dev's key cannot fingerprint prod's secrets.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::StateError;

const KEY_FILE: &str = "secrets.key";
const KEY_BYTES: usize = 32;
/// Hex digits of a fingerprint: 64 bits, plenty to tell one value from the next.
const SHOWN: usize = 16;

/// The key one environment's fingerprints are made with.
pub struct FingerprintKey {
    key: [u8; KEY_BYTES],
}

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FingerprintKey(<redacted>)")
    }
}

impl FingerprintKey {
    /// The environment's key, made (0600, written whole before it is visible) if there is none.
    /// A key file that others can read, or of the wrong size, is refused.
    pub fn open_or_create(env_dir: &Path) -> Result<FingerprintKey, StateError> {
        let path = env_dir.join(KEY_FILE);
        match read(&path) {
            Ok(key) => return Ok(key),
            Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            }
            Err(other) => return Err(other),
        }
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(env_dir).map_err(|source| StateError::Io {
            path: env_dir.to_owned(),
            source,
        })?;
        let mut key = [0u8; KEY_BYTES];
        getrandom::fill(&mut key).map_err(|error| io(std::io::Error::other(error.to_string())))?;
        let staging = env_dir.join(format!("{KEY_FILE}.{}.tmp", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staging)
            .map_err(io)?;
        file.write_all(&key).map_err(io)?;
        file.sync_all().map_err(io)?;
        // Two commands making the key at once: the first link wins and both use its key.
        let linked = std::fs::hard_link(&staging, &path);
        let _ = std::fs::remove_file(&staging);
        match linked {
            Ok(()) => {
                if let Ok(dir) = std::fs::File::open(env_dir) {
                    let _ = dir.sync_all();
                }
                Ok(FingerprintKey { key })
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => read(&path),
            Err(error) => Err(io(error)),
        }
    }

    /// `hmac:` and 16 hex digits, over the secret's name and value.
    pub fn fingerprint(&self, name: &str, value: &[u8]) -> String {
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            // HMAC takes a key of any length; a 32-byte key always fits.
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        let mut hex = String::with_capacity(SHOWN + 5);
        hex.push_str("hmac:");
        for byte in digest.iter().take(SHOWN / 2) {
            hex.push_str(&format!("{byte:02x}"));
        }
        hex
    }
}

fn read(path: &PathBuf) -> Result<FingerprintKey, StateError> {
    let io = |source| StateError::Io {
        path: path.clone(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(io(std::io::Error::other(format!(
            "the secret fingerprint key can be read by others (mode {mode:04o}); chmod 600 {}",
            path.display()
        ))));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let key: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| {
        io(std::io::Error::other(format!(
            "the secret fingerprint key is not {KEY_BYTES} bytes; remove {} and apply again (every secret will show as changed once)",
            path.display()
        )))
    })?;
    Ok(FingerprintKey { key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_owner_only_and_stable() {
        let dir = tempfile::tempdir().expect("a directory");
        let first = FingerprintKey::open_or_create(dir.path()).expect("made");
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .expect("the key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = FingerprintKey::open_or_create(dir.path()).expect("read back");
        assert_eq!(
            first.fingerprint("DB", b"canary"),
            again.fingerprint("DB", b"canary")
        );
        assert_ne!(
            first.fingerprint("DB", b"canary"),
            first.fingerprint("DB", b"canary2")
        );
        assert!(!format!("{first:?}").contains(&format!("{:?}", first.key)));
    }

    #[test]
    fn environments_have_different_keys() {
        let dev = tempfile::tempdir().expect("a directory");
        let prod = tempfile::tempdir().expect("a directory");
        let dev = FingerprintKey::open_or_create(dev.path()).expect("made");
        let prod = FingerprintKey::open_or_create(prod.path()).expect("made");
        assert_ne!(
            dev.fingerprint("DB", b"canary"),
            prod.fingerprint("DB", b"canary")
        );
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().expect("a directory");
        FingerprintKey::open_or_create(dir.path()).expect("made");
        let path = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = FingerprintKey::open_or_create(dir.path()).expect_err("refused");
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }
}
