//! tier's project model: `tier.toml` and `envs/<env>.toml` read into trees that remember
//! where every value was written, layered per environment, checked against one schema, and
//! turned into a typed [`Environment`].
//!
//! Reads only the project directory, and the secrets an environment declares when a command
//! asks for them ([`secrets`]); starts nothing, writes nothing.

pub mod address;
mod checks;
pub mod choice;
pub mod defaults;
pub mod diff;
pub mod environment;
mod environment_checks;
pub mod field;
pub mod fields;
mod files;
pub mod graph;
pub mod names;
pub mod problem;
pub mod project;
pub mod quantity;
pub mod resolve;
pub mod schema;
pub mod secrets;
mod service;
pub mod source;
pub mod tree;
mod unset;
mod validate;
mod waves;
pub mod workload;

pub use environment::Environment;
pub use graph::Graph;
pub use names::{EnvName, ServiceName};
pub use problem::Problem;
pub use project::{LoadError, Project};
pub use resolve::{AbstractEnvironment, Explanation, Purpose, Resolved, Set};
pub use validate::{Checked, Validation, validate};
