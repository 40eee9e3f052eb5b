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

#[cfg(feature = "http")]
mod client;
#[cfg(feature = "http")]
mod error;
#[cfg(feature = "http")]
mod flags;
mod rollout;
#[cfg(feature = "http")]
mod sse;
#[cfg(feature = "http")]
mod watch;

#[cfg(feature = "http")]
pub use client::{Client, Endpoint};
#[cfg(feature = "http")]
pub use error::ClientError;
#[cfg(feature = "http")]
pub use flags::Flags;
pub use rollout::{flag_enabled, rollout_bucket, rollout_percent};
#[cfg(feature = "http")]
pub use watch::{Change, Watch};
