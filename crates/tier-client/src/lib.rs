//! What a service links to talk to its environment's runtime config store (the API in
//! `docs/api.md`, served by the environment's agent).
//!
//! ```no_run
//! # async fn example() -> Result<(), tier_client::ClientError> {
//! let client = tier_client::Client::from_env()?; // TIER_AGENT_URL, TIER_TOKEN, ENV_NAME
//! let limit: Option<u32> = client.get("backend/rate-limit").await?;
//! let flags = client.flags().await?; // kept current in the background
//! if flags.is_enabled_for("new-checkout", "user-42") { /* ... */ }
//! let mut changes = client.watch("backend/").await?;
//! while let Some(change) = changes.next().await {
//!     let change = change?; // resumes by itself after a disconnect
//!     println!("{} is now {:?} (revision {})", change.key, change.value, change.revision);
//! }
//! let backends = client.discover("backend").await?;
//! # Ok(()) }
//! ```
//!
//! With the read-write token, the same client is what an operator's tools use (the CLI's
//! `tier config` and `tier flag` do): [`Client::list`], [`Client::entry`], [`Client::delete`],
//! [`Client::history`], [`Client::rollback`], [`Client::events`] (one watch connection from a
//! revision), [`Client::list_flags`], [`Client::set_flag`] and [`Client::clear_flag`], with
//! an actor for the audit records and a request timeout in [`ClientConfig`]. Their answers
//! are typed and serialise back to the API's own JSON.
//!
//! Without the default `http` feature the crate is only [`flag_enabled`] and
//! [`rollout_bucket`], the one definition of how a flag evaluates, which the store's server
//! shares.

#[cfg(feature = "http")]
mod client;
#[cfg(feature = "http")]
mod error;
#[cfg(feature = "http")]
mod events;
#[cfg(feature = "http")]
mod flags;
#[cfg(feature = "http")]
mod keys;
mod rollout;
#[cfg(feature = "http")]
mod sse;
#[cfg(feature = "http")]
mod watch;

#[cfg(feature = "http")]
pub use client::{Client, ClientConfig, Endpoint};
#[cfg(feature = "http")]
pub use error::ClientError;
#[cfg(feature = "http")]
pub use events::{Events, WatchEvent, WatchStart, WatchTarget};
#[cfg(feature = "http")]
pub use flags::{FlagSnapshot, FlagState, Flags};
#[cfg(feature = "http")]
pub use keys::{Action, AuditRecord, KeyHistory, KeyState, KeyValue, Listing};
pub use rollout::{flag_enabled, rollout_bucket, rollout_percent};
#[cfg(feature = "http")]
pub use watch::{Change, Watch};
