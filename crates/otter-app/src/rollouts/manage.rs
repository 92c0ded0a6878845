//! The operator's use cases: create, list, show, advance, pause, resume, abort, retry-failed,
//! and aborting the rollouts of a yanked release. Every change of state rebuilds the product's
//! check index (here at once, on other nodes at their next catalogue poll).

use otter_core::Version;
use otter_core::model::{Page, validate_name};
use otter_core::rollout::{Policy, Rollout, RolloutState, Stage, StageCounts};
use otter_store::{PageRequest, StoreError, now};
use serde::{Deserialize, Serialize};

use super::stage_count;
use crate::{App, AppError, AppResult};

/// Most stages a rollout may have.
const MAX_STAGES: usize = 20;

/// A rollout as an operator asks for it.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewRollout {
    pub version: String,
    pub channel: Option<String>,
    pub stages: Vec<Stage>,
    #[serde(default)]
    pub policy: Policy,
    /// When to start (RFC 3339 or Unix seconds); none or past: now.
    #[serde(default, with = "otter_core::model::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub start_at: Option<i64>,
}

/// A rollout with its devices counted per stage.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RolloutView {
    #[serde(flatten)]
    pub rollout: Rollout,
    /// One entry per stage, in order.
    pub counts: Vec<StageCounts>,
}

fn invalid(message: impl Into<String>) -> AppError {
    AppError::invalid("invalid_rollout", message)
}

/// Starts a rollout of release `version` to a channel. The release must be on that channel and
/// not yanked, or not published yet (create the rollout first, then publish: the release then
/// reaches nobody outside the first stage, not even for a moment).
pub async fn create(app: &App, product: &str, new: NewRollout) -> AppResult<RolloutView> {
    let index = app.product(product).await?;
    let channel = new
        .channel
        .unwrap_or_else(|| otter_core::model::DEFAULT_CHANNEL.to_owned());
    validate_name("channel", &channel)?;
    Version::parse(index.product.scheme, &new.version)?;
    if let Some(release) = index.release(&new.version) {
        let release = &release.release;
        if release.yanked {
            return Err(invalid(format!("release {} is yanked", new.version)));
        }
        if !release.channels.contains(&channel) {
            return Err(invalid(format!(
                "release {} is not on channel {channel:?}",
                new.version
            )));
        }
    }
    if new.stages.is_empty() || new.stages.len() > MAX_STAGES {
        return Err(invalid(format!("a rollout has 1-{MAX_STAGES} stages")));
    }
    for stage in &new.stages {
        stage.validate().map_err(invalid)?;
        for tag in &stage.tags {
            validate_name("tag", tag)?;
        }
    }
    new.policy.validate().map_err(invalid)?;
    let at = now();
    let start_at = new.start_at.filter(|&s| s > at);
    let rollout = Rollout {
        id: 0,
        product: product.to_owned(),
        version: new.version,
        channel,
        stages: new.stages,
        policy: new.policy,
        current_stage: 0,
        state: if start_at.is_some() {
            RolloutState::Scheduled
        } else {
            RolloutState::Running
        },
        counted_from: at,
        reason: None,
        start_at,
        stage_started_at: at,
        in_flight: 0,
        created_at: at,
        updated_at: at,
    };
    let rollout = app
        .store
        .create_rollout(&rollout)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => AppError::conflict(
                "rollout_exists",
                format!(
                    "channel {:?} of {product:?} has a rollout that is not over: finish or \
                     abort it first",
                    rollout.channel
                ),
            ),
            other => other.into(),
        })?;
    app.devices_changed(product).await?;
    tracing::info!(product = %product, rollout = rollout.id, version = %rollout.version,
        channel = %rollout.channel, state = rollout.state.as_str(), "rollout created");
    view(app, rollout).await
}

/// A product's rollouts, newest first.
pub async fn list(app: &App, product: &str, page: &PageRequest) -> AppResult<Page<Rollout>> {
    app.product(product).await?;
    Ok(app.store.list_rollouts(product, page).await?)
}

/// One rollout with its devices counted per stage.
pub async fn show(app: &App, product: &str, id: i64) -> AppResult<RolloutView> {
    let rollout = get(app, product, id).await?;
    view(app, rollout).await
}

async fn get(app: &App, product: &str, id: i64) -> AppResult<Rollout> {
    app.product(product).await?;
    app.store.get_rollout(product, id).await?.ok_or_else(|| {
        AppError::not_found(
            "rollout_not_found",
            format!("product {product:?} has no rollout {id}"),
        )
    })
}

async fn view(app: &App, rollout: Rollout) -> AppResult<RolloutView> {
    let counts = app
        .store
        .rollout_counts(rollout.id, stage_count(&rollout), now(), 0)
        .await?;
    Ok(RolloutView { rollout, counts })
}

fn not_in(rollout: &Rollout, action: &str) -> AppError {
    AppError::conflict(
        "rollout_not_active",
        format!(
            "rollout {} is {}: it cannot be {action}",
            rollout.id,
            rollout.state.as_str()
        ),
    )
}

/// Moves a rollout (running or paused) to its next stage, or completes it past the last.
pub async fn advance(app: &App, product: &str, id: i64) -> AppResult<RolloutView> {
    let rollout = get(app, product, id).await?;
    let from = [RolloutState::Running, RolloutState::Paused];
    if !from.contains(&rollout.state) {
        return Err(not_in(&rollout, "advanced"));
    }
    step(app, &rollout, &from).await?;
    show(app, product, id).await
}

/// Advances `rollout` by one stage if it is still in one of the states `from` at that stage;
/// whether it did.
pub(super) async fn step(app: &App, rollout: &Rollout, from: &[RolloutState]) -> AppResult<bool> {
    let completed = rollout.at_last_stage();
    let moved = app
        .store
        .advance_rollout(rollout.id, from, rollout.current_stage, completed, now())
        .await?;
    if moved {
        tracing::info!(product = %rollout.product, rollout = rollout.id,
            stage = rollout.current_stage + u32::from(!completed), completed, "rollout advanced");
        app.devices_changed(&rollout.product).await?;
    }
    Ok(moved)
}

/// Changes a rollout's state by hand.
async fn transition(
    app: &App,
    product: &str,
    id: i64,
    from: &[RolloutState],
    to: RolloutState,
    reason: Option<&str>,
    action: &str,
) -> AppResult<RolloutView> {
    let rollout = get(app, product, id).await?;
    if !app
        .store
        .set_rollout_state(id, from, to, reason, now())
        .await?
    {
        return Err(not_in(&rollout, action));
    }
    tracing::info!(product = %product, rollout = id, state = to.as_str(), "rollout {action}");
    app.devices_changed(product).await?;
    show(app, product, id).await
}

/// Stops letting new devices in; devices already in may finish.
pub async fn pause(app: &App, product: &str, id: i64) -> AppResult<RolloutView> {
    let from = [RolloutState::Running, RolloutState::Scheduled];
    let reason = Some("paused by hand");
    transition(
        app,
        product,
        id,
        &from,
        RolloutState::Paused,
        reason,
        "paused",
    )
    .await
}

/// Lets devices in again.
pub async fn resume(app: &App, product: &str, id: i64) -> AppResult<RolloutView> {
    let from = [RolloutState::Paused];
    transition(
        app,
        product,
        id,
        &from,
        RolloutState::Running,
        None,
        "resumed",
    )
    .await
}

/// Stops the rollout for good: nobody new gets the release.
pub async fn abort(app: &App, product: &str, id: i64) -> AppResult<RolloutView> {
    let from = [
        RolloutState::Scheduled,
        RolloutState::Running,
        RolloutState::Paused,
    ];
    let reason = Some("aborted by hand");
    transition(
        app,
        product,
        id,
        &from,
        RolloutState::Aborted,
        reason,
        "aborted",
    )
    .await
}

/// What retry-failed did.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Retried {
    /// Failed devices let in again (those in the penalty box wait until it ends).
    pub retried: u64,
    pub rollout: RolloutView,
}

/// Lets the rollout's failed devices that are not in the penalty box try again.
pub async fn retry_failed(app: &App, product: &str, id: i64) -> AppResult<Retried> {
    let rollout = get(app, product, id).await?;
    if !rollout.state.is_active() {
        return Err(not_in(&rollout, "retried"));
    }
    let retried = app.store.retry_failed(id, now()).await?;
    if retried > 0 {
        app.devices_changed(product).await?;
    }
    tracing::info!(product = %product, rollout = id, retried, "failed devices retried");
    Ok(Retried {
        retried,
        rollout: show(app, product, id).await?,
    })
}

/// A yanked release's rollouts are aborted.
pub async fn release_yanked(app: &App, product: &str, version: &str) -> AppResult<()> {
    let aborted = app
        .store
        .abort_release_rollouts(product, version, "aborted: the release was yanked", now())
        .await?;
    if aborted > 0 {
        tracing::info!(product = %product, version = %version, aborted, "rollouts aborted");
        app.reindex(product).await?;
    }
    Ok(())
}
