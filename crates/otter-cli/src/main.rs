//! The `otter` binary: `otter serve` runs the server, `otter migrate` brings its database schema
//! up to date; the other subcommands are an admin client for a running server.

mod admin;
mod iotawatt;
mod migrate;
mod migrate_data;
mod serve;
mod sign;
mod signing;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::admin::{
    ApiKeyCommand, AuditArgs, DeviceCommand, ProductCommand, ReleaseCommand, ReportCommand,
    RolloutCommand, TokenCommand, UserCommand,
};
use otter_client::{Client, ClientArgs};

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
    // Boxed: every server setting makes it several times the size of the other commands.
    Serve(Box<serve::ServeArgs>),
    /// Apply pending database migrations (PostgreSQL needs this before `otter serve`).
    Migrate(migrate::MigrateArgs),
    /// Copy an installation into another (e.g. SQLite + files → PostgreSQL + S3).
    MigrateData(migrate_data::MigrateDataArgs),
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
    /// The device registry: list, tag, pin, move, delete, allow and deny devices.
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
    /// Roll a release out in stages: create, list, show, advance, pause, resume, abort,
    /// retry-failed.
    Rollout {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: RolloutCommand,
    },
    /// Keep an embedded-Linux device up to date: A/B slots, verification, health check and
    /// rollback.
    Agent(otter_agent::AgentArgs),
    /// Push an image straight to a device over ViperHTTP's OTA protocol (a ViperHTTP device,
    /// or `otter-agent --listen`).
    Push(otter_client::push::PushArgs),
    /// Sign an image offline: raw detached signatures, or the vendors' own formats.
    Sign(sign::SignArgs),
    /// Check an image's signature as a device would.
    Verify(sign::VerifyArgs),
    /// Generate and inspect signing keys (offline).
    #[command(subcommand)]
    Keys(signing::KeysCommand),
    /// Roots of trust: write root versions, upload them.
    #[command(subcommand)]
    Root(signing::RootCommand),
    /// Add a signature to a DSSE envelope (a root or a release manifest), offline.
    #[command(subcommand)]
    Envelope(EnvelopeCommand),
    /// Print the server's online public key (PEM), to list in roots under role online.
    OnlineKey {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Sign and check IotaWatt release blobs with your own key.
    #[command(subcommand)]
    Iotawatt(iotawatt::IotawattCommand),
    /// Create, list and revoke device API keys (THiNX devices).
    Apikey {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: ApiKeyCommand,
    },
    /// Create, list and revoke admin API tokens with roles (admin, publisher, viewer).
    Token {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: TokenCommand,
    },
    /// Create, list, disable and enable users of the web UI, and set their passwords.
    User {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: UserCommand,
    },
    /// Show the audit log: who changed what through the admin API (needs an admin token).
    Audit {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: AuditArgs,
    },
}

#[derive(Subcommand, Debug)]
enum EnvelopeCommand {
    /// Sign an envelope in place with a key, or with an external signer in two steps.
    #[command(after_help = "Examples:
  otter envelope sign root-2.json --key root-a.key
  otter envelope sign root-2.json --to-be-signed tbs.bin        # then sign tbs.bin in the HSM
  otter envelope sign root-2.json --signature tbs.sig --pubkey hsm.pub")]
    Sign(signing::EnvelopeSignArgs),
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
        Command::Serve(args) => serve::run(*args).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::MigrateData(args) => migrate_data::run(args).await,
        Command::Product { client, cmd } => cmd.run(&Client::new(&client)?).await,
        Command::Release { client, cmd } => cmd.run(&Client::new(&client)?).await,
        Command::Device { client, cmd } => cmd.run(&Client::new(&client)?).await,
        Command::Report { client, cmd } => cmd.run(&Client::new(&client)?).await,
        Command::Rollout { client, cmd } => cmd.run(&Client::new(&client)?).await,
        Command::Apikey { client, cmd } => cmd.run(&Client::new(&client)?).await,
        Command::Token { client, cmd } => cmd.run(&Client::new(&client)?).await,
        Command::User { client, cmd } => cmd.run(&Client::new(&client)?).await,
        Command::Audit { client, args } => args.run(&Client::new(&client)?).await,
        Command::Iotawatt(cmd) => cmd.run().await,
        Command::Keys(cmd) => cmd.run(),
        Command::Sign(args) => args.run(),
        Command::Agent(args) => args.run().await,
        Command::Push(args) => args.run().await,
        Command::Verify(args) => args.run(),
        Command::Root(cmd) => cmd.run().await,
        Command::Envelope(EnvelopeCommand::Sign(args)) => args.run(),
        Command::OnlineKey { client } => signing::online_key(&Client::new(&client)?).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks a command's definition only when it is parsed; this checks all of them
    /// (duplicate flags, bad defaults, conflicts naming missing args) without running any.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
