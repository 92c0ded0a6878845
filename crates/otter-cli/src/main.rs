//! The `otter` binary: `otter serve` runs the server; the other subcommands are an admin client
//! for a running server.

mod admin;
mod client;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::admin::{DeviceCommand, ProductCommand, ReleaseCommand, ReportCommand};
use crate::client::{Client, ClientArgs};

/// otter: a self-hosted firmware OTA update server, and its admin client.
#[derive(Parser, Debug)]
#[command(name = "otter", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the otter server.
    Serve(serve::ServeArgs),
    /// Create and list products.
    Product {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: ProductCommand,
    },
    /// Publish, list, deprecate and yank releases.
    Release {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: ReleaseCommand,
    },
    /// List devices.
    Device {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: DeviceCommand,
    },
    /// List update reports.
    Report {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: ReportCommand,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Product { client, cmd } => cmd.run(&Client::new(&client)?).await,
        Command::Release { client, cmd } => cmd.run(&Client::new(&client)?).await,
        Command::Device { client, cmd } => cmd.run(&Client::new(&client)?).await,
        Command::Report { client, cmd } => cmd.run(&Client::new(&client)?).await,
    }
}
