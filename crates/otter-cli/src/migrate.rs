//! `otter migrate`: brings the database schema up to date.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use otter_store::sql::{SqlStore, redact_url};
use serde::Deserialize;

/// Apply pending database migrations, then exit.
///
/// A PostgreSQL database is migrated only by this command: `otter serve` refuses to start on
/// one that is behind, so that a schema shared by several nodes changes when an operator says
/// so. Run it before the first start and after each upgrade; running it again does nothing.
/// Several at once are safe (they take turns). SQLite databases also migrate themselves when
/// `otter serve` opens them.
#[derive(Args, Debug, Default)]
#[command(after_help = "Examples:\n  \
    otter migrate --database-url postgres://otter:secret@db.example.com/otter\n  \
    OTTER_DATABASE_URL=postgres://otter:secret@db.example.com/otter otter migrate\n  \
    otter migrate --config /etc/otter.toml\n  \
    otter migrate --data /var/lib/otter")]
pub struct MigrateArgs {
    /// TOML file as for `otter serve`; only `data` and `database_url` are read from it.
    /// Environment variables and flags override it.
    #[arg(long, env = "OTTER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Data directory holding the default SQLite database [default: ./otter-data].
    #[arg(long, env = "OTTER_DATA", value_name = "DIR")]
    data: Option<PathBuf>,

    /// Database URL, e.g. postgres://user:password@host/otter [default: sqlite://<data>/otter.db].
    #[arg(
        long,
        env = "OTTER_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
}

/// The settings `otter migrate` shares with `otter serve`'s config file (other keys are
/// `otter serve`'s business and ignored here).
#[derive(Debug, Default, Deserialize)]
struct FileSettings {
    data: Option<PathBuf>,
    database_url: Option<String>,
}

impl MigrateArgs {
    /// The database URL, resolved like `otter serve` does: flag or environment, then the config
    /// file, then `sqlite://<data>/otter.db` (and then also the data directory, to create).
    fn database_url(&self) -> anyhow::Result<(String, Option<PathBuf>)> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        if let Some(url) = self.database_url.clone().or(file.database_url) {
            return Ok((url, None));
        }
        let data = self
            .data
            .clone()
            .or(file.data)
            .unwrap_or_else(|| PathBuf::from("otter-data"));
        let url = format!("sqlite://{}", data.join("otter.db").display());
        Ok((url, Some(data)))
    }
}

/// Reads the keys of `otter serve`'s TOML config file that `otter migrate` shares.
fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let (url, default_data_dir) = args.database_url()?;
    if let Some(dir) = &default_data_dir {
        // As `otter serve` would: the default database lives in the data directory.
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
    }
    let shown = redact_url(&url);
    println!("database: {shown}");
    let pending = SqlStore::pending_migrations(&url)
        .await
        .with_context(|| format!("reading the schema of {shown}"))?;
    let applied = SqlStore::migrate(&url)
        .await
        .with_context(|| format!("migrating {shown}"))?;
    if applied == 0 {
        println!("the schema is current: nothing to apply");
        return Ok(());
    }
    // Another `otter migrate` may have applied some of them meanwhile; then only the count
    // is certain.
    if applied == pending.len() {
        for (version, description) in &pending {
            println!("applied {version:04} {description}");
        }
    }
    let plural = if applied == 1 { "" } else { "s" };
    println!("applied {applied} migration{plural}: the schema is current");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        migrate: MigrateArgs,
    }

    fn url(args: &[&str]) -> (String, Option<PathBuf>) {
        let mut argv = vec!["otter"];
        argv.extend_from_slice(args);
        Wrapper::try_parse_from(argv)
            .unwrap()
            .migrate
            .database_url()
            .unwrap()
    }

    #[test]
    fn the_url_comes_from_flags_then_the_file_then_the_data_directory() {
        // (Environment variables are clap's and behave like the flags.)
        assert_eq!(
            url(&["--data", "/var/lib/otter"]),
            (
                "sqlite:///var/lib/otter/otter.db".to_owned(),
                Some(PathBuf::from("/var/lib/otter"))
            )
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("otter.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:8080\"\ndatabase_url = \"postgres://otter:pw@db/otter\"\n",
        )
        .unwrap();
        let config = file.to_str().unwrap();
        assert_eq!(
            url(&["--config", config]),
            ("postgres://otter:pw@db/otter".to_owned(), None)
        );
        assert_eq!(
            url(&["--config", config, "--database-url", "postgres://db2/otter"]),
            ("postgres://db2/otter".to_owned(), None)
        );
        std::fs::write(&file, "data = \"/srv/otter\"\n").unwrap();
        assert_eq!(url(&["--config", config]).0, "sqlite:///srv/otter/otter.db");
    }
}
