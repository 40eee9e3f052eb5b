//! The HTTP API over a real socket and a real redb file: access, keys, watches, long-polls,
//! leases, audit and rollback, flags and discovery, as a client sees them.

mod access;
mod audit;
mod bad_requests;
mod discovery;
mod flags;
mod keys;
mod leases;
mod support;
mod watches;
