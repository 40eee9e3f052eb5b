//! Client for a tier environment's runtime config store.
