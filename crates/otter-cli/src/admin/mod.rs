//! The admin subcommands: `otter product`, `otter release`, `otter device`, `otter report`,
//! `otter apikey`, `otter token`, `otter audit`, `otter rollout` and `otter user`.
//!
//! Each is a thin layer over the admin API (docs/api.md) through [`Client`]; `release publish`
//! sends the image with otter-client's resumable uploader. This module holds what they share:
//! listing every page of a collection as a table (or the server's JSON).

mod fleet;
mod products;
mod releases;
mod rollouts;
mod tokens;
mod users;

pub use fleet::{ApiKeyCommand, DeviceCommand, ReportCommand};
pub use products::ProductCommand;
pub use releases::ReleaseCommand;
pub use rollouts::RolloutCommand;
pub use tokens::{AuditArgs, TokenCommand};
pub use users::UserCommand;

use std::io::Write;

use anyhow::Context;
use otter_client::Client;
use otter_core::model::{
    ApiKey, ApiToken, AuditEntry, Device, Product, Release, UpdateReport, User,
};
use serde::de::DeserializeOwned;

/// A row type that knows its table header, so `list` can stay generic.
trait Row: DeserializeOwned {
    const HEADER: &'static [&'static str];
}

impl Row for Product {
    const HEADER: &'static [&'static str] = &["NAME", "SCHEME", "CREATED"];
}

impl Row for Release {
    const HEADER: &'static [&'static str] = &[
        "VERSION", "CHANNELS", "FLAGS", "SIZE", "SHA256", "RELEASED", "TITLE",
    ];
}

impl Row for Device {
    const HEADER: &'static [&'static str] = &[
        "ID",
        "CHANNEL",
        "VERSION",
        "HASH",
        "TAGS",
        "PINNED",
        "PROTOCOL",
        "LAST SEEN",
        "FIRST SEEN",
    ];
}

impl Row for ApiKey {
    const HEADER: &'static [&'static str] = &["ID", "CREATED", "LABEL"];
}

impl Row for ApiToken {
    const HEADER: &'static [&'static str] =
        &["NAME", "ROLE", "CREATED", "LAST USED", "EXPIRES", "REVOKED"];
}

impl Row for User {
    const HEADER: &'static [&'static str] = &["NAME", "ROLE", "DISABLED", "CREATED", "LAST LOGIN"];
}

impl Row for AuditEntry {
    const HEADER: &'static [&'static str] =
        &["TIME", "ACTOR", "ACTION", "TARGET", "REMOTE", "SUMMARY"];
}

impl Row for UpdateReport {
    const HEADER: &'static [&'static str] = &["TIME", "DEVICE", "VERSION", "STATE", "MESSAGE"];
}

/// Fetches every page of `url` and prints the items as a table (one row per item from `row`),
/// or as the server's raw JSON with `--json`.
async fn list<T: Row>(
    client: &Client,
    url: reqwest::Url,
    json: bool,
    what: &str,
    row: impl Fn(T) -> Vec<String>,
) -> anyhow::Result<()> {
    let items = client.list_all(url).await?;
    let written = if json {
        // One item per line: easy to read, grep and feed to jq.
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &items)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else if items.is_empty() {
        // On stderr, so a script reading the table sees no rows rather than a sentence.
        eprintln!("no {what}");
        Ok(())
    } else {
        let rows = items
            .iter()
            .map(|item| serde_json::from_str::<T>(item.get()).map(&row))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("the server sent {what} in an unexpected shape"))?;
        write_table(&mut std::io::stdout().lock(), T::HEADER, &rows)
    };
    match written {
        // The reader went away (`otter release list p | head`): it has all it wanted.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Writes left-aligned columns separated by two spaces; the last column is not padded so lines
/// carry no trailing blanks.
fn write_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:width$}  "));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_owned())
}

/// The first 12 hex digits: enough to tell images apart at a glance and to grep `--json` output.
fn short_hash(hash: &str) -> String {
    hash.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_without_trailing_blanks() {
        let mut out = Vec::new();
        let rows = vec![
            vec![
                "door-sensor".to_owned(),
                "semver".to_owned(),
                "x".to_owned(),
            ],
            vec!["gw".to_owned(), "lexical".to_owned(), "-".to_owned()],
        ];
        write_table(&mut out, &["NAME", "SCHEME", "CREATED"], &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME         SCHEME   CREATED\n\
             door-sensor  semver   x\n\
             gw           lexical  -\n"
        );
    }
}
