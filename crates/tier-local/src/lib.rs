//! tier's local runtime: one agent per environment on this machine. The agent supervises
//! every replica of every service as a child process, puts a load-balancing proxy in front of
//! each service, and answers the CLI on a Unix socket under `.tier/<env>/`.

pub mod agent;
pub mod config_file;
pub mod control;
pub mod health;
pub mod logs;
mod probes;
mod proxy;
mod rollout;
pub mod secrets;
pub mod spawn;
pub mod store;

pub use agent::{AgentOptions, Prepared, StartError, is_running, prepare, run};
