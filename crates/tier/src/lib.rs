//! The `tier` command line: argument parsing and output only. Everything it shows comes from
//! the library crates below it.

pub mod args;
mod commands;
mod output;

pub use commands::run;
