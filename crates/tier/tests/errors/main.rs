//! Snapshots of what `tier` says about a broken project: one bad input per test, each named
//! after the mistake it guards. Every problem must name its file, line and column and say
//! what to do, and every problem in a run must be reported at once.

mod at_once;
mod config;
mod health_and_secrets;
mod keys;
mod names;
mod other_commands;
mod references;
mod runtimes;
mod support;
mod syntax;
