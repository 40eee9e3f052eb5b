//! The values behind one environment's secret references, read when a command is about to use
//! them: a variable of the shell running `tier`, or a file that only its owner can read.
//!
//! This is the one place tier reads a secret. Only the references of the environment being
//! resolved are read, so planning dev never touches a `PROD_*` variable declared for prod. A
//! [`SecretValue`] cannot be printed or serialised: its `Debug` shows `<redacted>` and the
//! bytes come out only through [`SecretValue::expose`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::environment::{Environment, SecretRef};
use crate::problem::Problem;
use crate::resolve::Resolved;
use crate::source::Location;

/// Larger than any password, key or certificate chain; a bigger file is a wrong path.
pub const MAX_SECRET_BYTES: u64 = 1024 * 1024;

/// A secret's value. Never `Display`, never `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    pub fn new(bytes: Vec<u8>) -> SecretValue {
        SecretValue(bytes)
    }

    /// The bytes, for the one place that hands them on: a replica's environment, a keyed
    /// fingerprint, a Kubernetes Secret sent over the API.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// Every secret value of one environment, by service and secret name.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    by_service: BTreeMap<String, BTreeMap<String, SecretValue>>,
}

impl Secrets {
    pub fn service(&self, service: &str) -> Option<&BTreeMap<String, SecretValue>> {
        self.by_service.get(service)
    }

    pub fn get(&self, service: &str, name: &str) -> Option<&SecretValue> {
        self.by_service.get(service)?.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &SecretValue)> {
        self.by_service.iter().flat_map(|(service, values)| {
            values
                .iter()
                .map(move |(name, value)| (service.as_str(), name.as_str(), value))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.by_service.values().all(BTreeMap::is_empty)
    }
}

/// What reading a reference may consult: the variables of the shell running tier, the home
/// directory for `~/`, and the project directory for relative paths.
pub struct Lookup<'a> {
    pub variable: &'a dyn Fn(&str) -> Option<OsString>,
    pub home: Option<PathBuf>,
    pub project_root: &'a Path,
}

impl Lookup<'_> {
    /// The process's own environment and `$HOME`.
    pub fn from_process(project_root: &Path) -> Lookup<'_> {
        Lookup {
            variable: &|name| std::env::var_os(name),
            home: std::env::var_os("HOME").map(PathBuf::from),
            project_root,
        }
    }

    /// Where a file reference points: `~/` under the home directory, a relative path under
    /// the project directory.
    pub fn path_of(&self, reference: &str) -> Option<PathBuf> {
        if let Some(rest) = reference.strip_prefix("~/") {
            return self.home.as_ref().map(|home| home.join(rest));
        }
        let path = Path::new(reference);
        Some(if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.project_root.join(path)
        })
    }
}

impl Resolved {
    /// Reads the value of every secret the environment declares. Every missing variable,
    /// unreadable file or file that others can read is reported at once, each located at its
    /// reference; no value appears in a problem.
    pub fn read_secrets(&self, lookup: &Lookup<'_>) -> Result<Secrets, Vec<Problem>> {
        read_all(&self.environment, lookup, |path| {
            self.origin_of(path).location().cloned()
        })
    }
}

/// [`Resolved::read_secrets`] for an environment read back from state (a rollback, a saved
/// plan): the same problems, without a place in the project files.
pub fn read_secrets(
    environment: &Environment,
    lookup: &Lookup<'_>,
) -> Result<Secrets, Vec<Problem>> {
    read_all(environment, lookup, |_| None)
}

fn read_all(
    environment: &Environment,
    lookup: &Lookup<'_>,
    locate: impl Fn(&str) -> Option<Location>,
) -> Result<Secrets, Vec<Problem>> {
    let name_of_environment = environment.name.as_str();
    let mut secrets = Secrets::default();
    let mut problems = Vec::new();
    for (service, declared) in &environment.services {
        for (name, reference) in &declared.secrets {
            let field = match reference {
                SecretRef::Env(_) => "env",
                SecretRef::File(_) => "file",
            };
            let location = locate(&format!("services.{service}.secrets.{name}.{field}"));
            let intro = format!("service `{service}`: secret `{name}` ({reference})");
            match read_one(reference, lookup) {
                Ok(value) => {
                    secrets
                        .by_service
                        .entry(service.to_string())
                        .or_default()
                        .insert(name.clone(), value);
                }
                Err(unreadable) => problems.push(
                    Problem::new(format!("{intro}: {}", unreadable.message))
                        .at(location.as_ref())
                        .label(unreadable.label)
                        .help(unreadable.help)
                        .in_environment(name_of_environment),
                ),
            }
        }
    }
    if problems.is_empty() {
        Ok(secrets)
    } else {
        Err(problems)
    }
}

struct Unreadable {
    message: String,
    label: &'static str,
    help: String,
}

fn read_one(reference: &SecretRef, lookup: &Lookup<'_>) -> Result<SecretValue, Unreadable> {
    match reference {
        SecretRef::Env(variable) => match (lookup.variable)(variable) {
            Some(value) => Ok(SecretValue(value.into_vec())),
            None => Err(Unreadable {
                message: format!("the variable `{variable}` is not set"),
                label: "not set in the shell running tier",
                help: format!(
                    "set {variable} in the environment of the shell that runs tier; its value is handed to the service and never written to disk"
                ),
            }),
        },
        SecretRef::File(reference) => {
            let Some(path) = lookup.path_of(reference) else {
                return Err(Unreadable {
                    message: format!("`{reference}` starts with `~/` but HOME is not set"),
                    label: "no home directory",
                    help: "set HOME, or give the file's absolute path".to_owned(),
                });
            };
            read_file(&path)
        }
    }
}

fn read_file(path: &Path) -> Result<SecretValue, Unreadable> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|error| Unreadable {
        message: format!("cannot read {shown}: {}", describe(&error)),
        label: "cannot be read",
        help: format!(
            "create {shown} with the secret and `chmod 600 {shown}`, or point the reference at the right file"
        ),
    })?;
    if !metadata.is_file() {
        return Err(Unreadable {
            message: format!("{shown} is not a regular file"),
            label: "not a file",
            help: "point the reference at the file that holds the secret".to_owned(),
        });
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Unreadable {
            message: format!("{shown} can be read by others (mode {mode:04o})"),
            label: "readable by others",
            help: format!("make it readable only by its owner: chmod 600 {shown}"),
        });
    }
    if metadata.len() > MAX_SECRET_BYTES {
        return Err(Unreadable {
            message: format!(
                "{shown} holds {} bytes, more than a secret's limit of {MAX_SECRET_BYTES}",
                metadata.len()
            ),
            label: "too large",
            help: "point the reference at the file that holds the secret".to_owned(),
        });
    }
    std::fs::read(path)
        .map(SecretValue)
        .map_err(|error| Unreadable {
            message: format!("cannot read {shown}: {}", describe(&error)),
            label: "cannot be read",
            help: format!("check that the user running tier owns {shown}"),
        })
}

fn describe(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_never_shows_in_debug() {
        let value = SecretValue::new(b"hunter2".to_vec());
        assert_eq!(format!("{value:?}"), "SecretValue(<redacted>)");
        let mut secrets = Secrets::default();
        secrets
            .by_service
            .entry("backend".to_owned())
            .or_default()
            .insert("DB".to_owned(), value);
        assert!(!format!("{secrets:?}").contains("hunter2"));
    }

    #[test]
    fn file_paths_expand_home_and_project() {
        let variable = |_: &str| None;
        let lookup = Lookup {
            variable: &variable,
            home: Some(PathBuf::from("/home/ann")),
            project_root: Path::new("/srv/project"),
        };
        assert_eq!(
            lookup.path_of("~/.secrets/tls.key"),
            Some(PathBuf::from("/home/ann/.secrets/tls.key"))
        );
        assert_eq!(
            lookup.path_of("secrets/key"),
            Some(PathBuf::from("/srv/project/secrets/key"))
        );
        assert_eq!(lookup.path_of("/etc/key"), Some(PathBuf::from("/etc/key")));
    }
}
