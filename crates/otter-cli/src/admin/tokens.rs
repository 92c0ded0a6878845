//! `otter token` (admin API tokens with roles) and `otter audit` (the audit log).

use otter_client::Client;
use otter_core::model::{ApiToken, AuditEntry, Role, format_rfc3339};
use otter_core::units::parse_duration;
use serde_json::{Value, json};

use super::{list, or_dash};

/// Admin API tokens: each has a name and a role (viewer < publisher < admin).
#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token; it is printed once and only its hash is kept.
    #[command(
        after_help = "Roles: viewer reads; publisher also uploads, publishes, flags and \
signs releases and manages devices; admin also manages tokens, products and their keys, and \
reads the audit log.

Examples:
  otter token create ci --role publisher --expires 90d
  otter token create dashboard --role viewer"
    )]
    Create {
        /// A unique name for the token (names are never reused, even after a revoke).
        name: String,
        /// What the token may do.
        #[arg(long, value_parser = parse_role, value_name = "admin|publisher|viewer")]
        role: Role,
        /// How long the token is valid (e.g. 90d, 12h); without it, until revoked.
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// List the tokens: name, role, created, last used (to within a minute), expiry, revoked.
    List {
        /// Print the tokens as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: refused at once by this server, by other nodes within a second.
    Revoke {
        /// The token's name, as `otter token list` shows it.
        name: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

impl TokenCommand {
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let tokens = client.url(&["api", "v1", "tokens"]);
        match self {
            TokenCommand::Create {
                name,
                role,
                expires,
            } => {
                // Checked here too, so a typo fails before anything is sent.
                if let Some(expires) = &expires {
                    parse_duration(expires).map_err(anyhow::Error::msg)?;
                }
                let created: Value = client
                    .post(
                        tokens,
                        &json!({ "name": name, "role": role, "expires": expires }),
                    )
                    .await?;
                let expiry = created["expiresAt"].as_str().map_or_else(
                    || "does not expire".to_owned(),
                    |at| format!("expires {at}"),
                );
                eprintln!("{role} token {name} ({expiry}; shown once, only its hash is kept):");
                println!("{}", created["token"].as_str().unwrap_or_default());
                Ok(())
            }
            TokenCommand::List { json } => {
                list(client, tokens, json, "tokens", |t: ApiToken| {
                    vec![
                        t.name,
                        t.role.to_string(),
                        format_rfc3339(t.created_at),
                        or_dash(t.last_used_at.map(format_rfc3339)),
                        or_dash(t.expires_at.map(format_rfc3339)),
                        or_dash(t.revoked_at.map(format_rfc3339)),
                    ]
                })
                .await
            }
            TokenCommand::Revoke { name } => {
                let url = client.url(&["api", "v1", "tokens", &name]);
                client.delete(url).await?;
                println!("revoked token {name}");
                Ok(())
            }
        }
    }
}

/// Which audit entries to show.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  otter audit --since 24h
  otter audit --actor ci --action release.publish
  otter audit --target door-sensor --json | jq '.[] | .summary'")]
pub struct AuditArgs {
    /// Only what this token (or user) did.
    #[arg(long, value_name = "NAME")]
    actor: Option<String>,
    /// Only this action, e.g. release.publish, token.revoke.
    #[arg(long)]
    action: Option<String>,
    /// Only changes to this target or under it, e.g. door-sensor or door-sensor/1.1.0.
    #[arg(long)]
    target: Option<String>,
    /// Only entries since this long ago (24h, 7d) or this RFC 3339 time.
    #[arg(long, value_name = "DURATION|TIME")]
    since: Option<String>,
    /// Only entries before this long ago or this RFC 3339 time.
    #[arg(long, value_name = "DURATION|TIME")]
    until: Option<String>,
    /// Print the entries as a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// `24h` (that long ago) or an RFC 3339 time, as RFC 3339 for the API.
fn time_arg(value: &str) -> anyhow::Result<String> {
    match parse_duration(value) {
        Ok(ago) => Ok(format_rfc3339(
            otter_store::now() - i64::try_from(ago.as_secs()).unwrap_or(i64::MAX),
        )),
        Err(_) => {
            otter_core::model::parse_rfc3339("time", value)?;
            Ok(value.to_owned())
        }
    }
}

impl AuditArgs {
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let mut url = client.url(&["api", "v1", "audit"]);
        {
            let mut query = url.query_pairs_mut();
            for (key, value) in [
                ("actor", self.actor),
                ("action", self.action),
                ("target", self.target),
            ] {
                if let Some(value) = value {
                    query.append_pair(key, &value);
                }
            }
            for (key, value) in [("since", self.since), ("until", self.until)] {
                if let Some(value) = value {
                    query.append_pair(key, &time_arg(&value)?);
                }
            }
        }
        list(client, url, self.json, "audit entries", |e: AuditEntry| {
            vec![
                format_rfc3339(e.at),
                format!("{} ({})", e.actor, e.role),
                e.action,
                e.target,
                or_dash(e.remote),
                or_dash(e.summary),
            ]
        })
        .await
    }
}
