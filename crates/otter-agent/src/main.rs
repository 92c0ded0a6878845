//! The `otter-agent` binary: the update agent alone, for devices (`otter agent` in the `otter`
//! binary is the same agent, with the server and admin tools alongside).

use std::process::ExitCode;

use clap::Parser;

/// otter's update agent for embedded-Linux devices: A/B slots, verified downloads, health checks
/// and rollback, and images pushed over the LAN.
#[derive(Parser, Debug)]
#[command(name = "otter-agent", version)]
struct Cli {
    #[command(flatten)]
    agent: otter_agent::AgentArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().agent.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
