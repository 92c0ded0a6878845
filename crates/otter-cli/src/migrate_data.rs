//! `otter migrate-data`: copies one otter installation into another, typically a single
//! machine's SQLite database and blob directory into PostgreSQL and an S3 bucket.
//!
//! Everything goes through the store traits and the blob store, so any pair of backends works.
//! The copy keeps what devices and operators see: products, releases (in publish order, with
//! their flags), artifacts and their bytes (verified by SHA-256 on the way), devices (first and
//! last seen, auto-update, attributes), update reports (in order), admin tokens (with their
//! roles, expiry and revocation), users of the web UI (with their password hashes; not their
//! sessions, so everyone logs in again) and the audit log (in order), the keys and
//! device rules of ota-backend firmwares, device API keys, signing keys, roots of trust,
//! release signatures, maintenance windows and poll hints, hawkBit DDI tokens and options (not
//! DDI actions: a device with an open one is offered afresh). The online key is a file in the data directory (or `--online-key`):
//! copy it, or give the new installation the same `--online-key`, or devices will not trust
//! its check responses until a root lists the new one. One-time download tokens are not
//! copied: devices get new ones at their next check-in. Upload sessions in progress are not
//! copied: finish or abort them first.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use otter_core::deltas::{Delta, DeltaState};
use otter_core::model::{Artifact, DeviceSeen};
use otter_core::signing::documents::Root;
use otter_core::signing::dsse::Envelope;
use otter_store::blob::{BlobLocation, Blobs, Staging};
use otter_store::objects::S3Settings;
use otter_store::sql::{SqlStore, redact_url};
use otter_store::{
    AuditFilter, DeviceChange, DeviceFilter, NewAuditEntry, NewReport, PageRequest, Store,
    StoreError,
};

/// Copy an installation (database and firmware) into another, e.g. SQLite + files → PostgreSQL + S3.
///
/// The destination database is migrated first and must hold no products yet. Stop the source
/// server (or at least stop publishing) while copying. S3 credentials come from the standard AWS
/// environment variables, the endpoint of a non-AWS service from OTTER_S3_ENDPOINT.
#[derive(Args, Debug)]
#[command(after_help = "Example:\n  \
    otter migrate-data --from-data ./otter-data \\\n    \
    --to-database-url postgres://otter:secret@db/otter --to-blob-url s3://firmware/otter")]
pub struct MigrateDataArgs {
    /// Data directory of the source installation [default: ./otter-data].
    #[arg(long, value_name = "DIR", default_value = "otter-data")]
    from_data: PathBuf,

    /// Source database [default: sqlite://<from-data>/otter.db].
    #[arg(long, value_name = "URL")]
    from_database_url: Option<String>,

    /// Source blobs [default: file://<from-data>/blobs].
    #[arg(long, value_name = "URL")]
    from_blob_url: Option<String>,

    /// Destination database, e.g. postgres://user:password@host/otter.
    #[arg(long, value_name = "URL")]
    to_database_url: String,

    /// Destination blobs, e.g. s3://bucket/prefix or file:///var/lib/otter/blobs.
    #[arg(long, value_name = "URL")]
    to_blob_url: String,

    /// Endpoint of a non-AWS S3 service (MinIO, Garage, Ceph, ...).
    #[arg(long, env = "OTTER_S3_ENDPOINT", value_name = "URL")]
    s3_endpoint: Option<String>,
}

/// One side of the copy.
struct Installation {
    store: Arc<dyn Store>,
    blobs: Blobs,
}

async fn open(database_url: &str, blob_url: &str, s3: &S3Settings) -> anyhow::Result<Installation> {
    let store = SqlStore::connect(database_url)
        .await
        .with_context(|| format!("opening {}", redact_url(database_url)))?;
    let location = BlobLocation::parse(blob_url).map_err(anyhow::Error::msg)?;
    let blobs = Blobs::at(&location, s3).with_context(|| format!("opening {blob_url}"))?;
    Ok(Installation {
        store: Arc::new(store),
        blobs,
    })
}

/// Reads every page of a list.
async fn all_pages<T, F, Fut>(mut page: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = otter_store::Result<otter_core::model::Page<T>>>,
{
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let got = page(PageRequest { limit: 500, cursor }).await?;
        items.extend(got.items);
        match got.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(items),
        }
    }
}

pub async fn run(args: MigrateDataArgs) -> anyhow::Result<()> {
    let s3 = S3Settings {
        endpoint: args.s3_endpoint.clone(),
        options: Vec::new(),
    };
    let from_db = args
        .from_database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", args.from_data.join("otter.db").display()));
    let from_blobs = match args.from_blob_url.clone() {
        Some(url) => url,
        None => format!(
            "file://{}",
            std::path::absolute(args.from_data.join("blobs"))?.display()
        ),
    };
    // Opening a missing SQLite file would create an empty one and copy nothing.
    if args.from_database_url.is_none() && !args.from_data.join("otter.db").exists() {
        bail!(
            "no otter database at {}",
            args.from_data.join("otter.db").display()
        );
    }
    let from = open(&from_db, &from_blobs, &s3).await?;
    let applied = SqlStore::migrate(&args.to_database_url)
        .await
        .with_context(|| format!("migrating {}", redact_url(&args.to_database_url)))?;
    let to = open(&args.to_database_url, &args.to_blob_url, &s3).await?;
    if !to.store.all_products().await?.is_empty() {
        bail!(
            "the destination already has products; migrate-data copies into an empty installation"
        );
    }
    println!(
        "copying {} + {} → {} + {} ({applied} migrations applied)",
        redact_url(&from_db),
        from_blobs,
        redact_url(&args.to_database_url),
        args.to_blob_url
    );

    let products = from.store.all_products().await?;
    let mut releases = Vec::new();
    for product in &products {
        releases.extend(from.store.all_releases(&product.name).await?);
    }
    // Publish order across products, so opaque products keep their order.
    releases.sort_by_key(|r| r.seq);
    let mut seen = HashSet::new();
    let artifacts: Vec<Artifact> = releases
        .iter()
        .filter(|r| seen.insert(r.artifact.sha256.clone()))
        .map(|r| r.artifact.clone())
        .collect();

    let total: u64 = artifacts.iter().map(|a| a.size).sum();
    let bar = progress(total);
    let staging_dir = tempfile_dir()?;
    let staging = Staging::new(&staging_dir)?;
    for artifact in &artifacts {
        copy_blob(&from.blobs, &to.blobs, &staging, artifact).await?;
        to.store.put_artifact(artifact).await?;
        bar.inc(artifact.size);
    }
    bar.finish_and_clear();
    std::fs::remove_dir_all(&staging_dir).ok();

    for product in &products {
        // Keys and device rules first: nothing a device could reach exists yet.
        if let Some(key) = from.store.product_key(&product.name).await? {
            to.store
                .set_product_key(&product.name, &key, product.created_at)
                .await?;
        }
        // Key hashes are copied as they are; the ids are derived from them.
        let keys = from.store.api_keys(&product.name).await?;
        for hash in from.store.api_key_hashes(&product.name).await? {
            if let Some(key) = keys.iter().find(|k| hash.starts_with(&k.id)) {
                to.store.add_api_key(key, &hash).await?;
            }
        }
        for (kind, public_key) in from.store.signing_keys(&product.name).await? {
            to.store
                .set_signing_key(&product.name, &kind, &public_key, product.created_at)
                .await?;
        }
        // hawkBit DDI tokens (their hashes) and options; DDI actions are not copied.
        for (hash, holder) in from.store.ddi_tokens(&product.name).await? {
            to.store
                .set_ddi_token(&hash, &holder, product.created_at)
                .await?;
        }
        let ddi = from.store.ddi_options(&product.name).await?;
        to.store
            .set_ddi_options(&product.name, &ddi, product.created_at)
            .await?;
        for (device, access) in from.store.device_access(&product.name).await? {
            to.store
                .set_device_access(&product.name, &device, Some(access), otter_store::now())
                .await?;
        }
        to.store.create_product(product).await?;
    }
    // Signatures before the releases they sign (as publishing does), roots first.
    for product in &products {
        let name = &product.name;
        for (version, envelope) in from.store.roots(name).await? {
            let expires = Envelope::parse(envelope.as_bytes())
                .ok()
                .and_then(|e| e.payload_bytes().ok())
                .and_then(|p| serde_json::from_slice::<Root>(&p).ok())
                .and_then(|r| otter_core::signing::unix("root expires", &r.expires).ok())
                .unwrap_or_default();
            to.store
                .add_root(name, version, &envelope, expires, product.created_at)
                .await?;
        }
        for (channel, window) in from.store.windows(name).await? {
            to.store
                .set_window(name, &channel, Some(&window), product.created_at)
                .await?;
        }
        if let Some(hint) = from.store.poll_hint(name).await? {
            to.store
                .set_poll_hint(name, Some(&hint), product.created_at)
                .await?;
        }
        for signed in from.store.release_signatures(name).await? {
            if let Some(manifest) = &signed.manifest {
                to.store
                    .set_release_manifest(
                        name,
                        &signed.version,
                        manifest,
                        signed.security_counter.unwrap_or_default(),
                        signed.expires_at.unwrap_or_default(),
                    )
                    .await?;
            }
            if let Some(binary) = &signed.binary_signature {
                to.store
                    .set_binary_signature(name, &signed.version, binary)
                    .await?;
            }
        }
    }
    for release in &releases {
        to.store.create_release(release).await?;
    }
    // Delta policies, and their patches as pending: patch bytes are not copied (they are not
    // release artifacts), so the destination's first start builds them again.
    let mut patches = 0;
    for (product, policy) in from.store.all_delta_policies().await? {
        to.store
            .set_delta_policy(&product, Some(&policy), otter_store::now())
            .await?;
        for delta in from.store.deltas(&product, None).await? {
            let delta = match delta.state {
                DeltaState::Ready => {
                    patches += 1;
                    Delta {
                        state: DeltaState::Pending,
                        size: None,
                        sha256: None,
                        message: None,
                        ..delta
                    }
                }
                _ => delta,
            };
            to.store.put_delta(&delta).await?;
        }
    }
    if patches > 0 {
        println!("not copied: {patches} delta patches (the destination builds them at its start)");
    }
    let mut devices = 0;
    let mut reports = 0;
    for product in &products {
        let name = product.name.clone();
        let store = from.store.clone();
        for device in all_pages(|page| {
            let (store, name) = (store.clone(), name.clone());
            async move { store.list_devices(&name, &Default::default(), &page).await }
        })
        .await?
        {
            // Two sightings: the first creates the device with its first-seen time, the second
            // sets what it runs and when it was last seen.
            let at = |at| DeviceSeen {
                product: device.product.clone(),
                id: device.id.clone(),
                current_version: device.current_version.clone(),
                current_hash: device.current_hash.clone(),
                channel: device.channel.clone(),
                at,
                first_at: at,
                attributes: Some(device.attributes.clone()),
                // The protocols whose check-ins record one (a name otter wrote itself).
                protocol: device.protocol.as_deref().and_then(|p| {
                    ["native", "arduino", "thinx", "ota_backend", "ddi"]
                        .into_iter()
                        .find(|known| *known == p)
                }),
                remote_addr: device
                    .remote_address
                    .as_deref()
                    .and_then(|a| a.parse().ok()),
            };
            // No device cap: a migration copies every device there is.
            to.store
                .record_seen(&[at(device.first_seen), at(device.last_seen)], None)
                .await?;
            // What operators set: auto-update, assigned channel, pin, tags.
            let change = DeviceChange {
                auto_update: Some(device.auto_update),
                assigned_channel: Some(device.assigned_channel.clone()),
                pinned_version: Some(device.pinned_version.clone()),
            };
            to.store
                .update_device(&device.product, &device.id, &change)
                .await?;
            let this = DeviceFilter {
                device: Some(device.id.clone()),
                ..DeviceFilter::default()
            };
            for tag in &device.tags {
                to.store.tag_devices(&device.product, &this, tag).await?;
            }
            devices += 1;
        }
        let mut history = all_pages(|page| {
            let (store, name) = (store.clone(), name.clone());
            async move { store.list_reports(&name, None, &page).await }
        })
        .await?;
        history.reverse();
        for report in history {
            to.store
                .insert_report(&NewReport {
                    product: report.product,
                    device: report.device,
                    version: report.version,
                    state: report.state,
                    message: report.message,
                    created_at: report.created_at,
                })
                .await?;
            reports += 1;
        }
        to.store.bump_catalog(&product.name).await?;
    }
    // A destination that `otter serve` opened has its own bootstrap token, which stays.
    let mut kept_tokens = Vec::new();
    for stored in from.store.all_tokens().await? {
        match to.store.add_token(&stored.sha256, &stored.token).await {
            Err(StoreError::Conflict(_)) => kept_tokens.push(stored.token.name),
            other => other?,
        }
    }
    if !kept_tokens.is_empty() {
        println!(
            "not copied: admin tokens {} (the destination has its own by those names)",
            kept_tokens.join(", ")
        );
    }
    let mut users = 0;
    for stored in from.store.all_users().await? {
        to.store.add_user(&stored).await?;
        users += 1;
    }
    let audit = copy_audit_log(&*from.store, &*to.store).await?;
    let open_uploads = from.store.all_uploads().await?.len();
    println!(
        "copied {} products, {} releases, {} artifacts ({}), {devices} devices, {reports} reports, \
         {audit} audit entries, {users} users",
        products.len(),
        releases.len(),
        artifacts.len(),
        HumanBytes(total),
    );
    if open_uploads > 0 {
        println!(
            "not copied: {open_uploads} unfinished upload sessions (upload those files again)"
        );
    }
    Ok(())
}

/// Streams one blob from `from` to `to` through a local staging file, checking its SHA-256.
async fn copy_blob(
    from: &Blobs,
    to: &Blobs,
    staging: &Staging,
    artifact: &Artifact,
) -> anyhow::Result<()> {
    if to.exists(&artifact.sha256).await? {
        return Ok(());
    }
    let bytes = from
        .open(&artifact.sha256, artifact.size, 0..artifact.size)
        .await
        .with_context(|| format!("reading blob {}", artifact.sha256))?;
    let staged = staging
        .ingest(bytes, artifact.size)
        .await
        .with_context(|| format!("copying blob {}", artifact.sha256))?;
    if staged.digests.sha256 != artifact.sha256 {
        let actual = staged.digests.sha256.clone();
        staging.discard(staged).await;
        bail!(
            "blob {} is corrupt in the source (its bytes hash to {actual})",
            artifact.sha256
        );
    }
    to.commit(staged).await?;
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("otter-migrate-{}", otter_store::random_id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn progress(total: u64) -> ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// Appends the source's audit log to the destination's, oldest first; returns how many entries.
async fn copy_audit_log(from: &dyn Store, to: &dyn Store) -> anyhow::Result<usize> {
    let mut entries = Vec::new();
    let mut page = PageRequest {
        limit: 500,
        cursor: None,
    };
    loop {
        let listed = from.list_audit(&AuditFilter::default(), &page).await?;
        entries.extend(listed.items);
        match listed.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => break,
        }
    }
    let copied = entries.len();
    for e in entries.into_iter().rev() {
        to.append_audit(&NewAuditEntry {
            at: e.at,
            actor: otter_core::model::Actor {
                kind: e.actor_kind,
                name: e.actor,
                role: e.role,
            },
            remote: e.remote,
            request_id: e.request_id,
            action: e.action,
            target: e.target,
            summary: e.summary,
        })
        .await?;
    }
    Ok(copied)
}
