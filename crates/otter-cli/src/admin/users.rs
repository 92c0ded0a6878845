//! `otter user`: user accounts of the admin web UI (create, list, passwd, disable, enable).
//!
//! Passwords are never arguments (they would show in `ps` and the shell's history): on a
//! terminal they are prompted for twice without echo, otherwise one line is read from stdin, so
//! `printf '%s\n' "$PW" | otter user create ann --role viewer` works in scripts.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use otter_client::Client;
use otter_core::model::{Role, User, format_rfc3339};
use serde_json::{Value, json};

use super::{list, or_dash};

/// User accounts of the web UI: each has a name, a password and a role (as API tokens do).
#[derive(clap::Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; the password is prompted for (or read from stdin).
    #[command(after_help = "Examples:
  otter user create ann --role publisher
  printf '%s\\n' \"$PASSWORD\" | otter user create ci-viewer --role viewer")]
    Create {
        /// The user's name (letters, digits, '.', '_', '-').
        name: String,
        /// What the user may do.
        #[arg(long, value_parser = parse_role, value_name = "admin|publisher|viewer")]
        role: Role,
    },
    /// List the users: name, role, disabled, created, last login.
    List {
        /// Print the users as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password (prompted for, or read from stdin); ends their sessions.
    Passwd { name: String },
    /// Disable a user: they cannot log in, and their sessions end.
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

impl UserCommand {
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        match self {
            UserCommand::Create { name, role } => {
                let password = read_password()?;
                let url = client.url(&["api", "v1", "users"]);
                let user: User = client
                    .post(
                        url,
                        &json!({"name": name, "role": role, "password": password}),
                    )
                    .await?;
                println!("created {} user {}", user.role, user.name);
                Ok(())
            }
            UserCommand::List { json } => {
                let url = client.url(&["api", "v1", "users"]);
                list(client, url, json, "users", |u: User| {
                    vec![
                        u.name,
                        u.role.to_string(),
                        (if u.disabled { "yes" } else { "no" }).to_owned(),
                        format_rfc3339(u.created_at),
                        or_dash(u.last_login_at.map(format_rfc3339)),
                    ]
                })
                .await
            }
            UserCommand::Passwd { name } => {
                let password = read_password()?;
                patch(client, &name, json!({"password": password})).await?;
                println!("changed the password of {name} (their sessions have ended)");
                Ok(())
            }
            UserCommand::Disable { name } => {
                patch(client, &name, json!({"disabled": true})).await?;
                println!("disabled {name} (their sessions have ended)");
                Ok(())
            }
            UserCommand::Enable { name } => {
                patch(client, &name, json!({"disabled": false})).await?;
                println!("enabled {name}");
                Ok(())
            }
        }
    }
}

async fn patch(client: &Client, name: &str, body: Value) -> anyhow::Result<User> {
    let url = client.url(&["api", "v1", "users", name]);
    Ok(client.patch(url, &body).await?)
}

/// The new password: prompted for twice without echo on a terminal, else stdin's first line.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        let password = line.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            bail!("no password on stdin (one line is read)");
        }
        return Ok(password.to_owned());
    }
    let first = prompt("Password: ")?;
    let second = prompt("Again: ")?;
    if first != second {
        bail!("the passwords differ");
    }
    Ok(first)
}

/// Asks on stderr and reads a line from the terminal with echo off.
fn prompt(question: &str) -> anyhow::Result<String> {
    let mut stderr = std::io::stderr();
    write!(stderr, "{question}")?;
    stderr.flush()?;
    let _quiet = NoEcho::on_stdin()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Terminal echo turned off until dropped (also when reading fails).
struct NoEcho {
    #[cfg(unix)]
    saved: rustix::termios::Termios,
}

impl NoEcho {
    #[cfg(unix)]
    fn on_stdin() -> anyhow::Result<Self> {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).context("reading the terminal's settings")?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        // Keep ECHONL: the newline still shows, so the next prompt starts on its own line.
        quiet.local_modes.insert(LocalModes::ECHONL);
        tcsetattr(&stdin, OptionalActions::Now, &quiet).context("turning echo off")?;
        Ok(NoEcho { saved })
    }

    #[cfg(not(unix))]
    fn on_stdin() -> anyhow::Result<Self> {
        bail!("cannot turn terminal echo off here: pipe the password to stdin instead")
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            use rustix::termios::{OptionalActions, tcsetattr};
            let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
        }
    }
}
