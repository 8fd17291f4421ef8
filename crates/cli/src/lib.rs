//! The moss client CLI: bucket, object, GetBatch, config and job commands on top of `moss-client`.
use clap::Subcommand;

/// Client commands of the `moss` binary.
#[derive(Debug, Subcommand)]
pub enum Command {}

/// Runs a client command against `endpoint`.
pub async fn run(endpoint: &str, command: Command) -> anyhow::Result<()> {
    let _ = endpoint;
    match command {}
}
