//! Per-environment access tokens: one read-only and one read-write token, bound to one
//! environment, kept in a file only its owner can read.
//!
//! A token reads `tier_<environment>_<ro|rw>_<64 hex digits>`. The environment in the token
//! lets a server tell "a token of another environment" (403) from "no valid token" (401)
//! without knowing the other environment's secrets; only the server's own tokens are accepted.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Random bytes in a token's secret part.
const SECRET_BYTES: usize = 32;

/// What a token allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Reads, lists, watches, history.
    ReadOnly,
    /// Everything a read-only token may, plus writes, leases and rollbacks.
    ReadWrite,
}

impl TokenKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TokenKind::ReadOnly => "read-only",
            TokenKind::ReadWrite => "read-write",
        }
    }
}

/// A bearer token. Its `Debug` and `Display` never show the secret; `expose` does.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token as sent in `Authorization: Bearer <token>`; handle it as a secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("<redacted>")
    }
}

/// An environment's two tokens.
#[derive(Clone, Debug)]
pub struct Tokens {
    environment: String,
    read_only: Token,
    read_write: Token,
}

/// Why the tokens file could not be used. No variant carries a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid environment name {0:?} for tokens: it must be a DNS-1035 label")]
    InvalidEnvironment(String),
    #[error("tokens file {path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "tokens file {path} can be read by others (mode {mode:03o}); run `chmod 600 {path}`",
        path = path.display()
    )]
    Readable { path: PathBuf, mode: u32 },
    #[error("tokens file {path} is malformed: {detail}", path = path.display())]
    Malformed { path: PathBuf, detail: String },
    #[error(
        "tokens file {path} belongs to environment {found}, not {expected}",
        path = path.display()
    )]
    OtherEnvironment {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
}

/// The file's form.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    environment: String,
    read_only: String,
    read_write: String,
}

/// Why a presented token is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No token, or not one of this environment's (401).
    Unauthenticated,
    /// A token of the named environment (403).
    OtherEnvironment(String),
}

impl Tokens {
    /// Reads the environment's tokens from `path`, creating the file with fresh random tokens
    /// first if it does not exist. The file is created with mode 0600 (never readable by
    /// others, not even briefly) and appears complete or not at all; of two processes creating
    /// it at once, both end up with the same tokens.
    pub fn load_or_create(path: &Path, environment: &str) -> Result<Tokens, TokenError> {
        check_environment(environment)?;
        match Tokens::load(path, environment) {
            Err(TokenError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let tokens = Tokens {
            environment: environment.to_owned(),
            read_only: new_token(environment, TokenKind::ReadOnly)?,
            read_write: new_token(environment, TokenKind::ReadWrite)?,
        };
        let file = TokenFile {
            environment: tokens.environment.clone(),
            read_only: tokens.read_only.0.clone(),
            read_write: tokens.read_write.0.clone(),
        };
        let text = serde_json::to_vec_pretty(&file).map_err(|error| TokenError::Malformed {
            path: path.to_owned(),
            detail: error.to_string(),
        })?;
        if write_new(path, &text)? {
            Ok(tokens)
        } else {
            // Another process created it first; use its tokens.
            Tokens::load(path, environment)
        }
    }

    /// Reads the environment's tokens from `path`; refuses a file others can read or one that
    /// belongs to another environment.
    pub fn load(path: &Path, environment: &str) -> Result<Tokens, TokenError> {
        check_environment(environment)?;
        let io_error = |source| TokenError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(io_error)?;
        let mode = file.metadata().map_err(io_error)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(TokenError::Readable {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
        let mut text = Vec::new();
        file.read_to_end(&mut text).map_err(io_error)?;
        let malformed = |detail: String| TokenError::Malformed {
            path: path.to_owned(),
            detail,
        };
        // serde's messages may quote the input, so only the position is kept.
        let file: TokenFile = serde_json::from_slice(&text).map_err(|error| {
            malformed(format!(
                "not a tokens file (line {}, column {})",
                error.line(),
                error.column()
            ))
        })?;
        if file.environment != environment {
            return Err(TokenError::OtherEnvironment {
                path: path.to_owned(),
                found: file.environment,
                expected: environment.to_owned(),
            });
        }
        for (token, kind) in [
            (&file.read_only, TokenKind::ReadOnly),
            (&file.read_write, TokenKind::ReadWrite),
        ] {
            if parse(token) != Some((environment, kind_tag(kind))) {
                return Err(malformed(format!(
                    "the {} token is not a token of environment {environment}",
                    kind.as_str()
                )));
            }
        }
        Ok(Tokens {
            environment: file.environment,
            read_only: Token(file.read_only),
            read_write: Token(file.read_write),
        })
    }

    /// The environment these tokens open.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    pub fn read_only(&self) -> &Token {
        &self.read_only
    }

    pub fn read_write(&self) -> &Token {
        &self.read_write
    }

    /// What `presented` (the text after `Bearer `) allows on this environment's store.
    pub(crate) fn authorize(&self, presented: &str) -> Result<TokenKind, Denied> {
        let Some((environment, _)) = parse(presented) else {
            return Err(Denied::Unauthenticated);
        };
        if environment != self.environment {
            return Err(Denied::OtherEnvironment(environment.to_owned()));
        }
        if equal_in_constant_time(presented, &self.read_write.0) {
            Ok(TokenKind::ReadWrite)
        } else if equal_in_constant_time(presented, &self.read_only.0) {
            Ok(TokenKind::ReadOnly)
        } else {
            Err(Denied::Unauthenticated)
        }
    }
}

fn kind_tag(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::ReadOnly => "ro",
        TokenKind::ReadWrite => "rw",
    }
}

/// Splits a well-formed token into its environment and kind tag.
fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("tier_")?;
    let (environment, rest) = rest.split_once('_')?;
    let (kind, secret) = rest.split_once('_')?;
    let well_formed = check_environment(environment).is_ok()
        && matches!(kind, "ro" | "rw")
        && secret.len() == SECRET_BYTES * 2
        && secret
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
    well_formed.then_some((environment, kind))
}

fn new_token(environment: &str, kind: TokenKind) -> Result<Token, TokenError> {
    let mut secret = [0_u8; SECRET_BYTES];
    getrandom::fill(&mut secret).map_err(|error| TokenError::Random(error.to_string()))?;
    Ok(Token(format!(
        "tier_{environment}_{}_{}",
        kind_tag(kind),
        hex(&secret)
    )))
}

/// Writes `text` to a new file at `path` with mode 0600: to a temporary file first, then
/// linked into place, which fails rather than replaces when `path` exists. `false` when it
/// existed.
fn write_new(path: &Path, text: &[u8]) -> Result<bool, TokenError> {
    let io_error = |source| TokenError::Io {
        path: path.to_owned(),
        source,
    };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&directory).map_err(io_error)?;
    let mut suffix = [0_u8; 8];
    getrandom::fill(&mut suffix).map_err(|error| TokenError::Random(error.to_string()))?;
    let name = path
        .file_name()
        .map_or_else(|| "tokens".into(), |name| name.to_string_lossy());
    let temporary = directory.join(format!(".{name}.{}.tmp", hex(&suffix)));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(text)?;
        file.sync_all()?;
        match std::fs::hard_link(&temporary, path) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(error),
        }
    })();
    // The temporary name is ours alone; failing to remove it leaves a 0600 file behind.
    let _ = std::fs::remove_file(&temporary);
    let created = written.map_err(io_error)?;
    if created {
        File::open(&directory)
            .and_then(|directory| directory.sync_all())
            .map_err(io_error)?;
    }
    Ok(created)
}

fn check_environment(name: &str) -> Result<(), TokenError> {
    let mut bytes = name.bytes();
    let starts_with_letter = bytes.next().is_some_and(|byte| byte.is_ascii_lowercase());
    let valid = starts_with_letter
        && name.len() <= 63
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(TokenError::InvalidEnvironment(name.to_owned()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Compares without stopping at the first difference, so response times do not reveal how
/// much of a guessed token was right.
fn equal_in_constant_time(left: &str, right: &str) -> bool {
    left.len() == right.len()
        && left
            .bytes()
            .zip(right.bytes())
            .fold(0_u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> tempfile::TempDir {
        match tempfile::tempdir() {
            Ok(directory) => directory,
            Err(error) => panic!("temp dir: {error}"),
        }
    }

    #[test]
    fn created_once_with_mode_0600_and_loaded_back() {
        let directory = temp();
        let path = directory.path().join("dev").join("tokens.json");
        let Ok(created) = Tokens::load_or_create(&path, "dev") else {
            panic!("create failed");
        };
        let mode = std::fs::metadata(&path).map(|meta| meta.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        let Ok(again) = Tokens::load_or_create(&path, "dev") else {
            panic!("reload failed");
        };
        assert_eq!(again.read_write(), created.read_write());
        assert_eq!(again.read_only(), created.read_only());
        assert_ne!(created.read_only(), created.read_write());
        assert!(created.read_write().expose().starts_with("tier_dev_rw_"));
        // Nothing else was left in the directory.
        let entries = std::fs::read_dir(directory.path().join("dev")).map(Iterator::count);
        assert_eq!(entries.ok(), Some(1));
    }

    #[test]
    fn debug_and_errors_never_show_a_token() {
        let directory = temp();
        let path = directory.path().join("tokens.json");
        let Ok(tokens) = Tokens::load_or_create(&path, "dev") else {
            panic!("create failed");
        };
        let secret = tokens.read_write().expose().to_owned();
        assert!(!format!("{tokens:?}").contains(&secret[12..]));
        assert!(!format!("{}", tokens.read_write()).contains(&secret[12..]));
        let error = Tokens::load(&path, "prod")
            .err()
            .map(|error| error.to_string());
        assert!(error.is_some_and(|error| !error.contains(&secret[12..])));
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let directory = temp();
        let path = directory.path().join("tokens.json");
        assert!(Tokens::load_or_create(&path, "dev").is_ok());
        assert!(std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).is_ok());
        assert!(matches!(
            Tokens::load(&path, "dev"),
            Err(TokenError::Readable { mode: 0o644, .. })
        ));
        assert!(matches!(
            Tokens::load_or_create(&path, "dev"),
            Err(TokenError::Readable { .. })
        ));
    }

    #[test]
    fn authorize_tells_kinds_environments_and_garbage_apart() {
        let directory = temp();
        let dev = Tokens::load_or_create(&directory.path().join("dev"), "dev");
        let prod = Tokens::load_or_create(&directory.path().join("prod"), "prod");
        let (Ok(dev), Ok(prod)) = (dev, prod) else {
            panic!("create failed");
        };
        assert_eq!(
            dev.authorize(dev.read_write().expose()),
            Ok(TokenKind::ReadWrite)
        );
        assert_eq!(
            dev.authorize(dev.read_only().expose()),
            Ok(TokenKind::ReadOnly)
        );
        assert_eq!(
            dev.authorize(prod.read_write().expose()),
            Err(Denied::OtherEnvironment("prod".into()))
        );
        assert_eq!(dev.authorize("garbage"), Err(Denied::Unauthenticated));
        let forged = format!("tier_dev_rw_{}", "0".repeat(64));
        assert_eq!(dev.authorize(&forged), Err(Denied::Unauthenticated));
    }
}
