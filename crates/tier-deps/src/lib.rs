//! Library dependencies across the services of a project (`tier deps`).
//!
//! [`scan`] is the only module that reads files: it turns each service's `Cargo.lock` and
//! `package-lock.json` and each internal library's manifest into an [`Inventory`]. Everything
//! else takes data and returns data: [`why`] (who depends on a library, by which chains, and
//! whether the locked version is inside an affected range), [`outdated`], [`conflicts`],
//! [`bump`] (the new text of every manifest, formatting kept) and [`release_order`].

mod analysis;
mod bump;
mod error;
mod graph;
mod inventory;
mod lockfile;
mod manifest;
mod order;
pub mod scan;

pub use analysis::{
    AffectedRange, BumpKind, CONFLICT_CHAINS, Conflicts, Diamond, DiamondSide, LockedUse,
    MajorGroup, OutdatedPackage, ServiceUse, ServiceVersion, SplitLibrary, WHY_CHAINS, WhyReport,
    bump_kind, conflicts, outdated, why,
};
pub use bump::{Edit, ManifestText, RequirementChange, bump};
pub use error::{DepsError, DepsErrors, Location};
pub use inventory::{Ecosystem, Inventory, Library, LockedPackage, ServiceInventory, SourceKind};
pub use lockfile::{parse_cargo_lock, parse_package_lock};
pub use manifest::{Manifest, parse_cargo_manifest, parse_package_json};
pub use order::{release_order, release_order_from};
