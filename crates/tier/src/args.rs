//! The command line: every command, flag and argument, in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tier",
    version,
    about = "Run many services across many environments",
    long_about = "Run many services across many environments.\n\nOne project file (tier.toml) names the services and the environments; envs/<env>.toml overrides it per environment, and config/<service>/<env>.json holds each environment's app config.",
    after_help = "Exit codes: 0 success, 1 invalid project or failed command, 2 usage error."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The project directory (the one holding tier.toml).
    #[arg(
        long,
        short = 'C',
        global = true,
        value_name = "DIR",
        env = "TIER_PROJECT",
        default_value = "."
    )]
    pub project: PathBuf,
    /// Output format of read commands.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// When to use color. NO_COLOR is honoured under `auto`.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// `--set path=value`, highest precedence of all layers.
#[derive(Debug, Args)]
pub struct Overrides {
    /// Override a value for this run: services.backend.replicas=5 (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a new project skeleton.
    Init {
        /// Where to write it.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// What to start from.
        #[arg(long, value_enum, default_value_t = Template::Minimal)]
        template: Template,
    },
    /// Check every environment; print every problem with its file, line and column.
    Validate {
        /// Also read this environment's secrets and report each one that cannot be read
        /// (no other environment's secrets are read).
        #[arg(long, value_name = "ENV")]
        env: Option<String>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// List environments: runtime, region, protection, promotion and isolation.
    Envs,
    /// Print an environment fully resolved.
    Render {
        env: String,
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// With --format k8s: write one file per object into this directory (for a GitOps
        /// tool) instead of printing them.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// With --format k8s: put the secrets' values in the Secret objects instead of their
        /// references. Never commit what this writes.
        #[arg(long)]
        include_secrets: bool,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Show a resolved value and the files, lines and columns that set and overrode it.
    Explain {
        env: String,
        /// A dotted path, e.g. services.backend.replicas or services.backend.config.text.
        path: String,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Show what differs between two environments after resolution.
    Diff {
        left: String,
        right: String,
        /// Exit 1 when the environments differ and 0 when they do not, as `git diff
        /// --exit-code` does.
        #[arg(long)]
        exit_code: bool,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Draw an environment's dependency graph and its rollout waves. Arrows point from a
    /// service to what it depends on; the first wave is on the left.
    Graph {
        env: String,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Show what `apply` would change: desired (the project now) against deployed.
    Plan {
        env: String,
        /// Save the plan; `tier apply FILE` applies exactly it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Deploy an environment (or a saved plan): record a revision, roll services wave by wave,
    /// roll back what this apply changed when a service fails its gate.
    Apply {
        /// An environment, or a plan saved by `tier plan --out`.
        target: String,
        /// Needed for a protected environment: its name.
        #[arg(long, value_name = "ENV")]
        confirm: Option<String>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// The revisions of an environment: who, when, what and how it ended.
    History { env: String },
    /// What runs differently from a kubernetes environment's deployed revision: fields other
    /// managers edited, objects deleted or added, images changed. `tier apply` puts them back.
    Drift {
        env: String,
        /// Also list what other controllers own by design (an HPA's replicas, a sidecar).
        #[arg(long)]
        all: bool,
        /// Every drift seen, with when it was first and last seen, and when it went away.
        #[arg(long)]
        history: bool,
    },
    /// Deploy an earlier revision again, as a new revision.
    Rollback {
        env: String,
        /// The revision to return to.
        #[arg(long, value_name = "N")]
        to: u64,
        #[arg(long, value_name = "ENV")]
        confirm: Option<String>,
    },
    /// Deploy to <to> exactly the artifacts that run in <from>, with <to>'s own settings.
    Promote {
        from: String,
        to: String,
        #[arg(long, value_name = "ENV")]
        confirm: Option<String>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Break the lock left by a `tier` process that is no longer running.
    Unlock {
        env: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Library dependencies across services: scan, why, outdated, conflicts, bump, order.
    Deps {
        #[command(subcommand)]
        command: DepsCommand,
    },
    /// Run a local environment: in the foreground (Ctrl-C stops it), or detached with -d.
    Up {
        env: String,
        /// Run in the background; `tier down` stops it.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Return as soon as the agent runs, without waiting for every service to be ready.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Stop a local environment started with `tier up -d`.
    Down {
        env: String,
        /// Needed for a protected environment: its name.
        #[arg(long, value_name = "ENV")]
        confirm: Option<String>,
    },
    /// Services of each running local environment: version, ready/desired, restarts, URL, and
    /// why anything is not running; for a kubernetes environment named, its live Deployments.
    Status { env: Option<String> },
    /// Replica output, merged in time order and prefixed `service-N |`: the environment's
    /// latest run unless --since says otherwise.
    Logs {
        env: String,
        /// Only this service's replicas.
        service: Option<String>,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// Only lines newer than this: a duration back from now (10m, 2h) or an RFC 3339
        /// time; reaches into earlier runs.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Only the last N lines (then the new ones, with --follow).
        #[arg(long, short = 'n', value_name = "N")]
        tail: Option<usize>,
        /// Each line's time (UTC, milliseconds) before its text.
        #[arg(long, short = 't')]
        timestamps: bool,
    },
    /// Runtime config in an environment's store: get, set, rm, ls, watch, history, rollback.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Feature flags at run time: on (optionally for a percentage), off, reset, ls.
    Flag {
        #[command(subcommand)]
        command: FlagCommand,
    },
    /// The runtime config store on its own, e.g. in front of etcd beside a kubernetes
    /// environment.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// The agent of a detached environment (started by `tier up -d` and `tier apply`).
    #[command(hide = true)]
    Agent {
        env: String,
        #[command(flatten)]
        overrides: Overrides,
        /// Run exactly this environment and these programs (written by `tier apply`).
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Read the secret values, as JSON, from stdin.
        #[arg(long)]
        secrets_on_stdin: bool,
    },
    /// Print the JSON Schema of tier.toml or of the override files.
    Schema {
        #[arg(long, value_enum, default_value_t = SchemaFile::Project)]
        file: SchemaFile,
        /// Write both schemas into this directory instead of printing one.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
    /// Serve a web dashboard of every environment × service, live. Prints its URL with a
    /// token that changes need; without the token the dashboard is read-only.
    Ui {
        /// Where to listen. Binds 127.0.0.1 unless told otherwise.
        #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1:7420")]
        listen: String,
        /// Open the dashboard in the default browser.
        #[arg(long)]
        open: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DepsCommand {
    /// Every service's locked packages, read from its Cargo.lock and package-lock.json.
    Scan,
    /// Every service that depends on a library, directly or through others, and how.
    Why {
        library: String,
        /// Exit 1 when any service locks, or any environment runs, a version in this range,
        /// e.g. "<1.4.2" (a CI gate).
        #[arg(long, value_name = "RANGE")]
        affected: Option<String>,
        /// Only this environment's deployed versions (default: every environment with a
        /// deployed revision).
        #[arg(long, value_name = "ENV")]
        env: Option<String>,
    },
    /// Locked versions behind the newest known one: patch, minor or major.
    Outdated,
    /// One library at incompatible versions in one service, or internal libraries split
    /// across major versions.
    Conflicts {
        /// Exit 1 when there is a conflict and 0 when there is none.
        #[arg(long)]
        exit_code: bool,
    },
    /// Require a new version of a library in every service that uses it.
    Bump {
        library: String,
        version: String,
        /// Print the edits as diffs and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The order in which internal libraries must be released, dependencies first.
    Order {
        /// Only what carries a fix in this library up to its dependents.
        library: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// One service and dev, stage and prod.
    Minimal,
    /// The sample app: a JSON backend and an HTML frontend that calls it.
    SampleApp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
    /// Kubernetes manifests: Namespace, then per service ConfigMap, Deployment and Service.
    K8s,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz: `tier graph dev | dot -Tpng > graph.png`.
    Dot,
    /// A Mermaid flowchart, for Markdown that renders Mermaid.
    Mermaid,
    /// A self-contained SVG image.
    Svg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SchemaFile {
    /// tier.toml
    Project,
    /// envs/<env>.toml
    Override,
}

/// Which store a `config` or `flag` command talks to. A local environment's own store is the
/// default; a kubernetes environment's is the `tier store serve` beside it.
#[derive(Debug, Args)]
pub struct StoreTarget {
    /// The store's URL, when it is not a local environment's own (e.g. port-forwarded
    /// `tier store serve`).
    #[arg(long, value_name = "URL", env = "TIER_STORE_URL")]
    pub store: Option<String>,
    /// The read-write token for --store.
    #[arg(long, value_name = "TOKEN", env = "TIER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a key's value.
    Get {
        env: String,
        key: String,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Set a key: VALUE is JSON when it parses as JSON, else a string.
    Set {
        env: String,
        key: String,
        value: String,
        /// Needed for a protected environment: its name.
        #[arg(long, value_name = "ENV")]
        confirm: Option<String>,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Remove a key.
    Rm {
        env: String,
        key: String,
        #[arg(long, value_name = "ENV")]
        confirm: Option<String>,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// List the keys under a prefix (all keys without one).
    Ls {
        env: String,
        prefix: Option<String>,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Print each change to a key (or, with --prefix, under a prefix) until Ctrl-C.
    Watch {
        env: String,
        key: String,
        /// Follow every key under KEY.
        #[arg(long)]
        prefix: bool,
        /// Start from this revision (history first), as etcd's watch does.
        #[arg(long, value_name = "REVISION")]
        from: Option<u64>,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Every recorded change to a key: who, when, old and new value.
    History {
        env: String,
        key: String,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Give a key back the value it had at a revision, as a new change; a key that did not
    /// exist then is deleted.
    Rollback {
        env: String,
        key: String,
        #[arg(long, value_name = "REVISION")]
        to: u64,
        #[arg(long, value_name = "ENV")]
        confirm: Option<String>,
        /// Needed when the key did not exist at that revision, so rolling back deletes it.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        target: StoreTarget,
    },
}

#[derive(Debug, Subcommand)]
pub enum FlagCommand {
    /// Turn a flag on, for everyone or for a percentage of keys.
    On {
        env: String,
        name: String,
        /// On for this percentage of keys (users, accounts), by a stable hash.
        #[arg(long, value_name = "0-100", value_parser = clap::value_parser!(u8).range(0..=100))]
        percent: Option<u8>,
        #[arg(long, value_name = "ENV")]
        confirm: Option<String>,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Turn a flag off.
    Off {
        env: String,
        name: String,
        #[arg(long, value_name = "ENV")]
        confirm: Option<String>,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Drop the run-time setting: the flag is back to its declared default.
    Reset {
        env: String,
        name: String,
        #[arg(long, value_name = "ENV")]
        confirm: Option<String>,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Every declared flag: its value now, its default, whether it was set at run time.
    Ls {
        env: String,
        #[command(flatten)]
        target: StoreTarget,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Serve the store's HTTP API (docs/api.md) in front of a backend until stopped.
    Serve {
        /// etcd://HOST:PORT[,HOST:PORT][/PREFIX], or file:PATH for a store file of its own.
        #[arg(long, value_name = "BACKEND")]
        backend: String,
        /// The environment whose tokens the server accepts.
        #[arg(long, value_name = "ENV")]
        env: String,
        /// The address to listen on (0.0.0.0:7379 in a pod).
        #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1:7379")]
        listen: String,
        /// The tokens file (made, mode 0600, when missing). Default: .tier/<env>/tokens.json.
        #[arg(long, value_name = "FILE")]
        tokens: Option<PathBuf>,
        /// The declared flags, as JSON: {"name": {"default": false, "description": "..."}}.
        /// Default: the project's, when the environment is in it.
        #[arg(long, value_name = "JSON")]
        flags: Option<String>,
    },
}
