//! The files of one environment under `.tier/<env>/`. Nothing outside this directory belongs to
//! the environment, and nothing inside it belongs to another.

use std::path::{Path, PathBuf};

pub const STATE_DIR: &str = ".tier";

#[derive(Clone, Debug)]
pub struct EnvDir {
    root: PathBuf,
}

impl EnvDir {
    pub fn new(project_root: &Path, env: &str) -> EnvDir {
        EnvDir {
            root: project_root.join(STATE_DIR).join(env),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The environment's revisions, lock record and drift (`state.redb`).
    pub fn state(&self) -> PathBuf {
        self.root.join("state.redb")
    }

    /// The agent's control socket (mode 0600).
    pub fn socket(&self) -> PathBuf {
        self.root.join("agent.sock")
    }

    /// Held with an exclusive lock by the running agent; holds its pid.
    pub fn lock(&self) -> PathBuf {
        self.root.join("agent.lock")
    }

    /// What a detached agent prints.
    pub fn agent_log(&self) -> PathBuf {
        self.root.join("agent.log")
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// Every request through the environment's proxies, one line each.
    pub fn access_log(&self) -> PathBuf {
        self.logs().join("access.log")
    }

    /// A replica's stdout and stderr.
    pub fn replica_log(&self, service: &str, replica: u32) -> PathBuf {
        self.logs().join(format!("{service}-{replica}.log"))
    }

    /// The merged app config handed to a service's replicas as `TIER_CONFIG`, named by its
    /// content: during a rollout old and new replicas read their own.
    pub fn config(&self, service: &str, config: &serde_json::Value) -> PathBuf {
        let text = config.to_string();
        // FNV-1a: stable across runs and builds, which std's hasher does not promise.
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        self.root
            .join("config")
            .join(format!("{service}-{hash:016x}.json"))
    }

    /// Where a service's volume lives on this machine: shared by its replicas for a `claim`
    /// (and kept across restarts), one per replica for an `empty_dir` (emptied at each start).
    pub fn volume(&self, service: &str, volume: &str, replica: Option<u32>) -> PathBuf {
        let dir = self.root.join("volumes").join(service);
        match replica {
            Some(replica) => dir.join(format!("{volume}-{replica}")),
            None => dir.join(volume),
        }
    }

    /// The proxy ports given out last time, reused so `<SERVICE>_URL`s stay stable. The
    /// runtime config store's port is there too, under [`STORE_PORT`].
    pub fn ports(&self) -> PathBuf {
        self.root.join("ports.json")
    }

    /// The environment's runtime config store (redb).
    pub fn store(&self) -> PathBuf {
        self.root.join("store.redb")
    }

    /// The store's access tokens (mode 0600).
    pub fn tokens(&self) -> PathBuf {
        self.root.join("tokens.json")
    }

    /// The port the running agent serves the store's API on, if it has served one.
    pub fn store_port(&self) -> Option<u16> {
        let bytes = std::fs::read(self.ports()).ok()?;
        let ports: std::collections::BTreeMap<String, u16> = serde_json::from_slice(&bytes).ok()?;
        ports.get(STORE_PORT).copied()
    }
}

/// The key of the store's port in `ports.json`; no service can have this name.
pub const STORE_PORT: &str = "_store";

/// Writes a file so that a reader never sees it half-written: a temporary file in the same
/// directory, synced, then renamed over the old one.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)
}
