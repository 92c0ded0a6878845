//! Delta updates (`docs/deltas.md`): each product's policy, and the background builder that makes
//! patches from earlier releases to a new one.
//!
//! Nothing here runs on a device's request: a publish (or a new policy) records the patches it
//! wants as `pending` and hands them to the [`Builder`]'s queue; one worker task builds them one
//! at a time on a blocking thread, so memory holds at most one base, one target and one patch
//! being made. A patch is kept only when it is smaller than the policy's share of the image; its
//! bytes become an artifact addressed by their SHA-256 (so `/dl/{sha256}` serves it with ranges,
//! on local disk or S3), and the product is reindexed, which puts the ready patch in the check
//! index ([`crate::index::ReadyDeltas`]). At start the worker picks up what a restart cut short:
//! patches still pending or building, ready patches whose blob is gone, and patches to the
//! newest releases that were never recorded.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use bytes::Bytes;
use otter_core::deltas::{Delta, DeltaPolicy, DeltaState};
use otter_core::model::Release;
use otter_store::now;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::index::ProductIndex;
use crate::{App, AppError, AppResult, artifacts};

/// One patch for the worker to build: which product, base, target and format.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Job {
    product: String,
    from: String,
    to: String,
    format: String,
}

impl Job {
    fn of(delta: &Delta) -> Self {
        Job {
            product: delta.product.clone(),
            from: delta.from.clone(),
            to: delta.to.clone(),
            format: delta.format.clone(),
        }
    }

    /// The patch's record in `state` at `now`, with nothing built yet.
    fn record(&self, state: DeltaState, message: Option<String>) -> Delta {
        Delta {
            product: self.product.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            format: self.format.clone(),
            state,
            size: None,
            sha256: None,
            message,
            updated_at: now(),
        }
    }
}

/// The builder's queue: requests go in from any task, the one worker ([`run`]) takes them out.
pub struct Builder {
    queue: mpsc::UnboundedSender<Job>,
    /// Taken by the worker when the background starts.
    jobs: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
}

impl Default for Builder {
    fn default() -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        Builder {
            queue,
            jobs: Mutex::new(Some(jobs)),
        }
    }
}

impl Builder {
    fn push(&self, job: Job) {
        // The receiver lives as long as the app's background; after that nothing is built.
        self.queue.send(job).ok();
    }
}

fn parse_format(name: &str) -> AppResult<otter_delta::Format> {
    name.parse().map_err(|e: otter_delta::UnknownFormat| {
        AppError::invalid("invalid_delta_policy", e.to_string())
    })
}

/// Sets (`Some`) or removes (`None`) `product`'s delta policy. A new policy is applied at once to
/// the newest release of each channel; removing it stops offering patches (those stored stay).
pub async fn set_policy(
    app: &App,
    product: &str,
    policy: Option<DeltaPolicy>,
) -> AppResult<Option<DeltaPolicy>> {
    let index = app.product(product).await?;
    let policy = policy
        .map(|p| {
            p.normalized()
                .map_err(|e| AppError::invalid("invalid_delta_policy", e))
        })
        .transpose()?;
    if let Some(policy) = &policy {
        if parse_format(&policy.format)? == otter_delta::Format::EspDeltaOta {
            check_esp_images(app, &index).await?;
        }
        if let Some(from) = &policy.from_version
            && index.release(from).is_none()
        {
            return Err(AppError::release_not_found(product, from));
        }
    }
    app.store
        .set_delta_policy(product, policy.as_ref(), now())
        .await?;
    app.reindex(product).await?;
    tracing::info!(product, policy = ?policy, "delta policy changed");
    if policy.is_some() {
        plan_newest(app, &index, Retry::Failed).await?;
    }
    Ok(policy)
}

/// Whether planning records a patch again whose earlier build failed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    Failed,
    No,
}

/// [`plan`] for the newest release of each of the product's channels: what devices are offered
/// now.
async fn plan_newest(app: &App, index: &ProductIndex, retry: Retry) -> AppResult<()> {
    let channels: BTreeSet<&str> = index
        .releases
        .iter()
        .flat_map(|r| r.release.channels.iter().map(String::as_str))
        .collect();
    let mut newest = HashSet::new();
    for channel in channels {
        if let Some(release) = index.newest(channel)
            && newest.insert(release.release.version.clone())
        {
            plan(app, &release.release, retry).await?;
        }
    }
    Ok(())
}

/// Refuses `esp-delta-ota` for a product whose newest image is not an ESP app image: its
/// patches name the base by the hash only such an image carries, and every build would fail.
async fn check_esp_images(app: &App, index: &ProductIndex) -> AppResult<()> {
    let Some(newest) = index.releases.iter().max_by_key(|r| r.release.seq) else {
        return Ok(());
    };
    let image = artifacts::read_whole(app, &newest.release.artifact).await?;
    otter_delta::esp_validation_hash(&image).map_err(|e| {
        AppError::invalid(
            "not_esp_image",
            format!(
                "esp-delta-ota needs ESP app images, and {} {} is not one: {e}",
                index.product.name, newest.release.version
            ),
        )
    })?;
    Ok(())
}

/// `product`'s delta policy, if it has one.
pub async fn policy(app: &App, product: &str) -> AppResult<Option<DeltaPolicy>> {
    app.product(product).await?;
    Ok(app.store.delta_policy(product).await?)
}

/// After `release` was published: records and queues the patches its product's policy asks for.
/// A failure here is logged, not returned: the release is published either way.
pub async fn release_published(app: &App, release: &Release) {
    if let Err(e) = plan(app, release, Retry::No).await {
        tracing::warn!(
            product = %release.product, version = %release.version, error = %e,
            "could not plan delta patches"
        );
    }
}

/// Records as pending, and queues, the patches to `target` that the product's policy asks for
/// and that are not recorded yet (or whose build failed, with [`Retry::Failed`]).
async fn plan(app: &App, target: &Release, retry: Retry) -> AppResult<()> {
    let Some(policy) = app.store.delta_policy(&target.product).await? else {
        return Ok(());
    };
    let index = app.product(&target.product).await?;
    let bases: Vec<String> = match &policy.from_version {
        Some(from) => vec![from.clone()],
        None => {
            let mut earlier: Vec<&Release> = index
                .releases
                .iter()
                .map(|r| &r.release)
                .filter(|r| {
                    r.seq < target.seq
                        && !r.yanked
                        && r.channels.iter().any(|c| target.channels.contains(c))
                })
                .collect();
            earlier.sort_by_key(|r| std::cmp::Reverse(r.seq));
            earlier
                .into_iter()
                .take(policy.from_last.unwrap_or(DeltaPolicy::DEFAULT_FROM_LAST) as usize)
                .map(|r| r.version.clone())
                .collect()
        }
    };
    let known: HashSet<Job> = app
        .store
        .deltas(&target.product, Some(&target.version))
        .await?
        .iter()
        .filter(|d| retry == Retry::No || d.state != DeltaState::Failed)
        .map(Job::of)
        .collect();
    for from in bases.into_iter().filter(|from| *from != target.version) {
        let job = Job {
            product: target.product.clone(),
            from,
            to: target.version.clone(),
            format: policy.format.clone(),
        };
        if known.contains(&job) {
            continue;
        }
        app.store
            .put_delta(&job.record(DeltaState::Pending, None))
            .await?;
        app.deltas.push(job);
    }
    Ok(())
}

/// A release's patches and how far the builder got with them.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeltaStatus {
    /// The product's policy (`null`: no patches are built or offered).
    pub policy: Option<DeltaPolicy>,
    /// Patches to this release, by base.
    pub deltas: Vec<Delta>,
    /// How many of them the builder is done with (skipped, failed, or ready and, under the
    /// current policy, offered by this node).
    pub done: usize,
    /// How many there are.
    pub total: usize,
}

/// The patches to `product`'s release `version`.
pub async fn status(app: &App, product: &str, version: &str) -> AppResult<DeltaStatus> {
    let index = app.product(product).await?;
    if index.release(version).is_none() {
        return Err(AppError::release_not_found(product, version));
    }
    let deltas = app.store.deltas(product, Some(version)).await?;
    let policy = app.store.delta_policy(product).await?;
    // The worker marks a patch ready, then reindexes: until this node's check index holds the
    // patch, devices are not offered it yet, so it is not done (`--wait` returns when they are).
    let offered_or_never = |d: &Delta| {
        d.state != DeltaState::Ready
            || policy.as_ref().is_none_or(|p| p.format != d.format)
            || index.deltas.has(&d.from, &d.to)
    };
    Ok(DeltaStatus {
        done: deltas
            .iter()
            .filter(|d| d.state.is_final() && offered_or_never(d))
            .count(),
        total: deltas.len(),
        policy,
        deltas,
    })
}

/// The builder's worker: first what a restart cut short, then every queued patch, one at a time.
pub(crate) async fn run(app: App) {
    let Some(mut jobs) = app
        .deltas
        .jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    else {
        return;
    };
    match unfinished(&app).await {
        Ok(resumed) => {
            if !resumed.is_empty() {
                tracing::info!(patches = resumed.len(), "resuming delta builds");
            }
            // After the list is taken, so what this plans is queued once, not also resumed.
            if let Err(e) = plan_policies(&app).await {
                tracing::warn!(error = %e, "could not plan missing delta patches");
            }
            for job in resumed {
                build_logged(&app, job).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not look for unfinished delta builds"),
    }
    while let Some(job) = jobs.recv().await {
        build_logged(&app, job).await;
    }
}

/// At start, the patches to the newest releases that were never recorded (a stop between a
/// publish and its planning).
async fn plan_policies(app: &App) -> AppResult<()> {
    for (product, _) in app.store.all_delta_policies().await? {
        let index = app.product(&product).await?;
        plan_newest(app, &index, Retry::No).await?;
    }
    Ok(())
}

/// Patches of the current policies that are pending or building (a restart interrupted them), or
/// ready with their blob gone (deleted from the bucket, a data directory restored without it).
async fn unfinished(app: &App) -> AppResult<Vec<Job>> {
    let mut jobs = Vec::new();
    for (product, policy) in app.store.all_delta_policies().await? {
        for delta in app.store.deltas(&product, None).await? {
            if delta.format != policy.format {
                continue;
            }
            let redo = match (&delta.state, &delta.sha256) {
                (DeltaState::Pending | DeltaState::Building, _) => true,
                (DeltaState::Ready, Some(sha256)) => !app.blobs.exists(sha256).await?,
                _ => false,
            };
            if redo {
                jobs.push(Job::of(&delta));
            }
        }
    }
    Ok(jobs)
}

async fn build_logged(app: &App, job: Job) {
    if let Err(e) = build(app, &job).await {
        tracing::warn!(
            product = %job.product, from = %job.from, to = %job.to, error = %e,
            "delta build failed"
        );
        let record = job.record(DeltaState::Failed, Some(e.to_string()));
        if let Err(e) = finish(app, &record).await {
            tracing::warn!(error = %e, "could not record a failed delta build");
        }
    }
}

/// Builds one patch and records the outcome: ready (stored and offered), skipped (not small
/// enough) or failed (the patch format refused the pair).
async fn build(app: &App, job: &Job) -> AppResult<()> {
    let Some(policy) = app.store.delta_policy(&job.product).await? else {
        // Removed while this waited: nothing is offered, so nothing is built.
        let message = Some("the product no longer has a delta policy".to_owned());
        return finish(app, &job.record(DeltaState::Skipped, message)).await;
    };
    let format = parse_format(&job.format)?;
    let index = app.product(&job.product).await?;
    let release = |version: &str| {
        index
            .release(version)
            .map(|r| r.release.artifact.clone())
            .ok_or_else(|| AppError::release_not_found(&job.product, version))
    };
    let (base, target) = (release(&job.from)?, release(&job.to)?);
    drop(index);
    app.store
        .put_delta(&job.record(DeltaState::Building, None))
        .await?;
    let base = artifacts::read_whole(app, &base).await?;
    let whole = artifacts::read_whole(app, &target).await?;
    let full = whole.len() as u64;
    let made = tokio::task::spawn_blocking(move || otter_delta::create(format, &base, &whole))
        .await
        .map_err(AppError::internal)?;
    let patch = match made {
        Ok(patch) => patch,
        Err(e) => {
            let record = job.record(DeltaState::Failed, Some(e.to_string()));
            return finish(app, &record).await;
        }
    };
    let size = patch.len() as u64;
    let share = format!(
        "{:.2} % of the image ({size} of {full} bytes)",
        size as f64 * 100.0 / full.max(1) as f64
    );
    if size * 100 >= u64::from(policy.max_share_percent) * full {
        let message = format!("{share}: not under {} %", policy.max_share_percent);
        let record = job.record(DeltaState::Skipped, Some(message));
        return finish(app, &record).await;
    }
    let staged = app
        .staging
        .ingest(
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(patch))]),
            u64::MAX,
        )
        .await?;
    let filename = format!("{}-{}-to-{}.{}", job.product, job.from, job.to, job.format);
    let kept = artifacts::keep(app, staged, &filename).await?;
    let record = Delta {
        state: DeltaState::Ready,
        size: Some(size),
        sha256: Some(kept.artifact.sha256),
        message: Some(share),
        ..job.record(DeltaState::Ready, None)
    };
    finish(app, &record).await?;
    tracing::info!(
        product = %job.product, from = %job.from, to = %job.to, format = %job.format, size,
        "delta patch ready"
    );
    // Puts the patch in the check index, here and on the other nodes.
    app.reindex(&job.product).await
}

/// Records the outcome of a build (ready, skipped or failed) and counts it.
async fn finish(app: &App, record: &Delta) -> AppResult<()> {
    app.store.put_delta(record).await?;
    metrics::counter!(
        "otter_delta_builds_total",
        "format" => record.format.clone(),
        "state" => record.state.as_str()
    )
    .increment(1);
    Ok(())
}
