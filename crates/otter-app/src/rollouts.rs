//! Staged rollouts: the use cases (create, list, show, advance, pause, resume, abort,
//! retry-failed), the gate every device check passes through ([`decide`]), progress from
//! reports and check-ins, and the background work (scheduled starts, timeouts, automatic advance
//! and pause).
//!
//! What the check path needs lives in the product's [`ProductIndex`] ([`Rollouts`]): each
//! rollout that still gates its release, the devices in its penalty box, and a per-node memory
//! of the devices it let in, so a device polling again costs no database round trip. The
//! database is asked only to take a slot for a device being let in, and to record progress of
//! devices in flight. A change of a rollout's state (start, advance, pause, resume, abort,
//! retry-failed, a device entering the penalty box, a slot given back by a timeout) rebuilds the
//! product's index here at once and on other nodes at their next catalogue poll; per-device
//! progress does not.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::RwLock;

use otter_core::model::{Page, ReportState, validate_name};
use otter_core::rollout::{
    DeviceState, Policy, Rollout, RolloutState, Stage, StageCounts, Verdict, bucket,
};
use otter_core::{Current, Decision, Version};
use otter_store::{Admission, Failure, PageRequest, Store, StoreError, now};
use serde::{Deserialize, Serialize};

use crate::index::{IndexedRelease, ProductIndex};
use crate::{App, AppError, AppResult};

/// Most devices one rollout's memory holds on a node; past it the memory starts over, which
/// costs each device one database round trip to be remembered again (the database is the
/// truth, the memory only spares it).
const MEMORY_LIMIT: usize = 1_000_000;

/// Most stages a rollout may have.
const MAX_STAGES: usize = 20;

/// What this node remembers of a device in one rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Let in (holds a slot, or held one): offered the release.
    Offered,
    /// Said it is downloading or installing (through this node, or before the index was
    /// built): a check-in on another version then means its attempt failed.
    Downloading,
    /// Its attempt failed: not offered the release until retry-failed.
    Failed,
    /// Runs the release.
    Done,
    /// Not in the current stage (the memory is rebuilt whenever the stage or the device's tags
    /// change), so its next check needs no hashing of the rollout's buckets.
    Outside,
}

/// A device id's key into every rollout's memory on this node: computed once per check.
fn device_hash(device: &str) -> u64 {
    static KEYS: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
    KEYS.get_or_init(RandomState::new).hash_one(device)
}

/// A hasher for keys that are [`device_hash`]es already: it passes them through, so a lookup
/// on the check path hashes the device id once, not once per map.
#[derive(Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by [`device_hash`].
type ByDevice<V> = HashMap<u64, V, std::hash::BuildHasherDefault<Prehashed>>;

/// One rollout that gates its release, as the check path needs it.
pub struct GatingRollout {
    pub rollout: Rollout,
    key: String,
    /// Devices in the penalty box (by [`device_hash`]) and when it ends.
    penalty: ByDevice<i64>,
    /// Read on every check of a device the rollout concerns, written only when a device is let
    /// in or finishes: a read-write lock keeps checks from queueing behind each other.
    memory: RwLock<ByDevice<Phase>>,
}

/// May a device have the release of a rollout?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Open,
    Closed,
    /// Yes, if it gets a slot.
    NeedsSlot,
}

impl GatingRollout {
    fn new(rollout: Rollout, members: otter_store::RolloutMembers) -> Self {
        let hash = |d: &str| device_hash(d);
        let mut memory = ByDevice::default();
        memory.extend(members.offered.iter().map(|d| (hash(d), Phase::Offered)));
        memory.extend(
            members
                .downloading
                .iter()
                .map(|d| (hash(d), Phase::Downloading)),
        );
        memory.extend(members.failed.iter().map(|d| (hash(d), Phase::Failed)));
        let penalty = members
            .penalty
            .iter()
            .map(|(d, until)| (hash(d), *until))
            .collect();
        GatingRollout {
            key: rollout.key(),
            rollout,
            penalty,
            memory: RwLock::new(memory),
        }
    }

    fn recall(&self, hash: u64) -> Option<Phase> {
        self.memory
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash)
            .copied()
    }

    fn remember(&self, hash: u64, phase: Phase) {
        let mut memory = self.memory.write().unwrap_or_else(|e| e.into_inner());
        if memory.len() >= MEMORY_LIMIT {
            memory.clear();
        }
        memory.insert(hash, phase);
    }

    /// Whether `device` (none: a device that does not say who it is), with its
    /// [`device_hash`], what this node remembers of it (`phase`) and `tags`, may have the
    /// release at `now`.
    fn access(
        &self,
        device: Option<(&str, u64)>,
        phase: Option<Phase>,
        tags: &[String],
        now: i64,
    ) -> Access {
        let r = &self.rollout;
        let running = r.state == RolloutState::Running;
        if !matches!(r.state, RolloutState::Running | RolloutState::Paused) {
            return Access::Closed;
        }
        let Some((device, hash)) = device else {
            return if running && r.stage().is_everyone() {
                Access::Open
            } else {
                Access::Closed
            };
        };
        if self.penalty.get(&hash).is_some_and(|&until| until > now) {
            return Access::Closed;
        }
        match phase {
            Some(Phase::Offered | Phase::Downloading | Phase::Done) => Access::Open,
            Some(Phase::Failed | Phase::Outside) => Access::Closed,
            None if !running => Access::Closed,
            None if r.stage().admits(tags, bucket(&self.key, device)) => Access::NeedsSlot,
            None => {
                self.remember(hash, Phase::Outside);
                Access::Closed
            }
        }
    }
}

/// A product's rollouts that gate their release, by channel (newest last).
#[derive(Default)]
pub struct Rollouts {
    by_channel: HashMap<String, Vec<GatingRollout>>,
}

impl Rollouts {
    /// The rollout gating `version` on `channel`, if any (the newest, when an aborted one was
    /// followed by another).
    fn gating(&self, channel: &str, version: &str) -> Option<&GatingRollout> {
        self.by_channel
            .get(channel)?
            .iter()
            .rev()
            .find(|g| g.rollout.version == version)
    }

    /// Every gating rollout of `version`, on any channel.
    fn of_version<'a>(&'a self, version: &'a str) -> impl Iterator<Item = &'a GatingRollout> {
        self.by_channel
            .values()
            .flatten()
            .filter(move |g| g.rollout.version == version)
    }
}

/// Reads a product's gating rollouts and the devices each keeps in memory.
pub async fn load(store: &dyn Store, product: &str) -> otter_store::Result<Rollouts> {
    let at = now();
    let mut rollouts = Rollouts::default();
    for rollout in store.gating_rollouts(product).await? {
        let members = match rollout.state {
            RolloutState::Running | RolloutState::Paused => {
                store.rollout_members(rollout.id, at).await?
            }
            _ => Default::default(),
        };
        rollouts
            .by_channel
            .entry(rollout.channel.clone())
            .or_default()
            .push(GatingRollout::new(rollout, members));
    }
    Ok(rollouts)
}

/// A device's tags, from the device registry.
fn device_tags<'a>(_index: &'a ProductIndex, _device: &str) -> &'a [String] {
    // merge: index.devices.tags(device)
    &[]
}

/// The rollout step of a device's check: decides with the releases `held` holds back (the
/// other steps' rules) and those of rollouts the device is not let into. A release offered under
/// a rollout the device is not yet in takes a slot first; without one it is held back too and
/// the check decided again, so the device is offered what it was offered before.
pub async fn decide(
    app: &App,
    index: &ProductIndex,
    device: Option<&str>,
    channel: &str,
    current: Option<&str>,
    held: impl Fn(&IndexedRelease) -> bool,
) -> AppResult<Decision> {
    let at = now();
    let current_of = current.map_or(Current::Unknown, Current::Reported);
    let gating = index.rollouts.by_channel.get(channel);
    let Some(gating) = gating.filter(|g| !g.is_empty()) else {
        return Ok(index.decide(channel, current_of, at, held)?);
    };
    let device = device.map(|d| (d, device_hash(d)));
    let runs = current
        .and_then(|c| index.identify(c))
        .map(|r| r.release.version.as_str());
    // One entry per gating rollout: what this node remembers of the device, then its access.
    let mut gates: Vec<Gate<'_>> = gating
        .iter()
        .map(|g| Gate {
            rollout: g,
            phase: device.and_then(|(_, hash)| g.recall(hash)),
            access: Access::Closed,
        })
        .collect();
    // A database that fails here fails no check: progress is recorded by the next check, a
    // report or the device timeout, and a device that could not be let in is offered what it
    // would be offered without the rollout's release.
    if let Some(device) = device
        && gates.iter().any(|gate| gate.progress(runs).is_some())
        && let Err(e) = progress_from_check(app, &mut gates, device, runs, at).await
    {
        tracing::warn!(product = %index.product.name, device = device.0, error = %e,
            "could not record a rollout's progress from a check");
    }
    let tags = device.map_or(&[][..], |(d, _)| device_tags(index, d));
    for gate in &mut gates {
        gate.access = gate.rollout.access(device, gate.phase, tags, at);
    }
    // Ends: each round returns, or closes one rollout that needed a slot.
    loop {
        let withheld = |r: &IndexedRelease| {
            // The newest rollout of the release decides (an aborted one may precede it).
            held(r)
                || gates
                    .iter()
                    .rev()
                    .find(|gate| gate.rollout.rollout.version == r.release.version)
                    .is_some_and(|gate| gate.access == Access::Closed)
        };
        let decision = index.decide(channel, current_of, at, withheld)?;
        let Decision::Offer { index: i, .. } = decision else {
            return Ok(decision);
        };
        let version = &index.releases[i].release.version;
        let Some(slot) = gates
            .iter_mut()
            .rev()
            .find(|gate| &gate.rollout.rollout.version == version)
            .filter(|gate| gate.access == Access::NeedsSlot)
        else {
            return Ok(decision);
        };
        let (Some((device, hash)), g) = (device, slot.rollout) else {
            return Ok(decision);
        };
        let r = &g.rollout;
        let admission = app
            .store
            .admit_device(r.id, device, r.current_stage, r.policy.max_concurrent, at)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(product = %r.product, rollout = r.id, device, error = %e,
                    "could not let a device into a rollout; it keeps what it had");
                Admission::Refused
            });
        match admission {
            Admission::Admitted | Admission::Holding => {
                g.remember(hash, Phase::Offered);
                return Ok(decision);
            }
            Admission::Installed => {
                g.remember(hash, Phase::Done);
                return Ok(decision);
            }
            Admission::Failed => {
                g.remember(hash, Phase::Failed);
                slot.access = Access::Closed;
            }
            Admission::Refused => slot.access = Access::Closed,
        }
    }
}

/// One gating rollout as one check sees it.
struct Gate<'a> {
    rollout: &'a GatingRollout,
    /// What this node remembers of the device.
    phase: Option<Phase>,
    access: Access,
}

/// What a check-in says of a device's attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    Installed,
    Failed,
}

impl Gate<'_> {
    /// What a check-in of the device running release `runs` says of its attempt, if anything:
    /// running the release means it installed it; still on another version after saying it was
    /// downloading means its attempt failed. Only what this node knows counts, so checks of
    /// devices merely offered the release cost no database round trip; a device that said it was
    /// downloading through another node and comes back on its old version fails by the device
    /// timeout instead.
    fn progress(&self, runs: Option<&str>) -> Option<Progress> {
        if runs == Some(self.rollout.rollout.version.as_str()) {
            (self.phase != Some(Phase::Done)).then_some(Progress::Installed)
        } else {
            (self.phase == Some(Phase::Downloading)).then_some(Progress::Failed)
        }
    }
}

/// Records what a check-in says of the device's attempts ([`Gate::progress`]).
async fn progress_from_check(
    app: &App,
    gates: &mut [Gate<'_>],
    (device, hash): (&str, u64),
    runs: Option<&str>,
    at: i64,
) -> AppResult<()> {
    for gate in gates {
        let g = gate.rollout;
        let r = &g.rollout;
        match gate.progress(runs) {
            None => {}
            Some(Progress::Installed) => {
                app.store.device_installed(r.id, device, at).await?;
                g.remember(hash, Phase::Done);
                gate.phase = Some(Phase::Done);
            }
            Some(Progress::Failed) => {
                let failed = app
                    .store
                    .fail_device(
                        r.id,
                        device,
                        &[DeviceState::Downloading],
                        r.policy.penalty_failures,
                        penalty_until(&r.policy, at),
                        at,
                    )
                    .await?;
                if let Some(failure) = failed {
                    g.remember(hash, Phase::Failed);
                    gate.phase = Some(Phase::Failed);
                    after_failure(app, r, failure).await?;
                }
            }
        }
    }
    Ok(())
}

fn penalty_until(policy: &Policy, at: i64) -> i64 {
    at.saturating_add(i64::try_from(policy.penalty_seconds).unwrap_or(i64::MAX))
}

/// Records what a device's update report says of its attempt in the rollouts of the release it
/// names.
pub async fn report(
    app: &App,
    index: &ProductIndex,
    device: &str,
    version: &str,
    state: ReportState,
) -> AppResult<()> {
    let at = now();
    let hash = device_hash(device);
    for g in index.rollouts.of_version(version) {
        let r = &g.rollout;
        match state {
            ReportState::Downloading | ReportState::Downloaded | ReportState::Installing => {
                if app.store.device_downloading(r.id, device, at).await? {
                    g.remember(hash, Phase::Downloading);
                }
            }
            ReportState::Installed => {
                app.store.device_installed(r.id, device, at).await?;
                g.remember(hash, Phase::Done);
            }
            ReportState::Failed | ReportState::RolledBack => {
                let failed = app
                    .store
                    .fail_device(
                        r.id,
                        device,
                        &[DeviceState::Offered, DeviceState::Downloading],
                        r.policy.penalty_failures,
                        penalty_until(&r.policy, at),
                        at,
                    )
                    .await?;
                if let Some(failure) = failed {
                    g.remember(hash, Phase::Failed);
                    after_failure(app, r, failure).await?;
                }
            }
        }
    }
    Ok(())
}

/// After a failure: pauses the rollout at once if its stage's failures passed a threshold, and
/// rebuilds the index when the device entered the penalty box (every node must hold it back).
async fn after_failure(app: &App, rollout: &Rollout, failure: Failure) -> AppResult<()> {
    let paused = pause_if_failing(app, rollout).await?;
    if failure.boxed && !paused {
        app.reindex(&rollout.product).await?;
    }
    Ok(())
}

/// Pauses a running rollout whose current stage's failures passed its thresholds; whether it
/// did.
async fn pause_if_failing(app: &App, rollout: &Rollout) -> AppResult<bool> {
    if rollout.policy.pause_on.is_none() {
        return Ok(false);
    }
    let recent = stage_counts(app, rollout, rollout.counted_from).await?;
    let Some(reason) = rollout.policy.pause_reason(&recent) else {
        return Ok(false);
    };
    pause_for(app, rollout, &reason).await
}

async fn pause_for(app: &App, rollout: &Rollout, reason: &str) -> AppResult<bool> {
    let reason = format!("paused automatically: {reason}");
    let paused = app
        .store
        .set_rollout_state(
            rollout.id,
            &[RolloutState::Running],
            RolloutState::Paused,
            Some(&reason),
            now(),
        )
        .await?;
    if paused {
        tracing::warn!(product = %rollout.product, rollout = rollout.id,
            version = %rollout.version, %reason, "rollout paused");
        app.reindex(&rollout.product).await?;
    }
    Ok(paused)
}

/// The current stage's counts, of the devices whose state changed at `since` or later.
async fn stage_counts(app: &App, rollout: &Rollout, since: i64) -> AppResult<StageCounts> {
    let counts = app
        .store
        .rollout_counts(rollout.id, stage_count(rollout), now(), since)
        .await?;
    Ok(counts
        .get(rollout.current_stage as usize)
        .copied()
        .unwrap_or_default())
}

fn stage_count(rollout: &Rollout) -> u32 {
    u32::try_from(rollout.stages.len()).unwrap_or(u32::MAX)
}

/// The newest release on `channel` that a device which does not say who it is may have
/// (IotaWatt's versions.json): a release under a rollout only once its current stage takes
/// everyone.
pub fn newest_for_anyone<'a>(index: &'a ProductIndex, channel: &str) -> Option<&'a IndexedRelease> {
    let at = now();
    index.newest_withholding(channel, |r| {
        index
            .rollouts
            .gating(channel, &r.release.version)
            .is_some_and(|g| g.access(None, None, &[], at) != Access::Open)
    })
}

// ---------------------------------------------------------------------------------------------
// Use cases
// ---------------------------------------------------------------------------------------------

/// A rollout as an operator asks for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewRollout {
    pub version: String,
    pub channel: Option<String>,
    pub stages: Vec<Stage>,
    #[serde(default)]
    pub policy: Policy,
    /// When to start (RFC 3339 or Unix seconds); none or past: now.
    #[serde(default, with = "otter_core::model::rfc3339::option")]
    pub start_at: Option<i64>,
}

/// A rollout with its devices counted per stage.
#[derive(Debug, Clone, Serialize)]
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
    app.reindex(product).await?;
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
async fn step(app: &App, rollout: &Rollout, from: &[RolloutState]) -> AppResult<bool> {
    let completed = rollout.at_last_stage();
    let moved = app
        .store
        .advance_rollout(rollout.id, from, rollout.current_stage, completed, now())
        .await?;
    if moved {
        tracing::info!(product = %rollout.product, rollout = rollout.id,
            stage = rollout.current_stage + u32::from(!completed), completed, "rollout advanced");
        app.reindex(&rollout.product).await?;
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
    app.reindex(product).await?;
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
        app.reindex(product).await?;
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

// ---------------------------------------------------------------------------------------------
// Background work
// ---------------------------------------------------------------------------------------------

/// One pass over every active rollout: starts those whose time came, ends attempts that went
/// silent, and advances or pauses by the figures. Every change is a conditional statement, so
/// nodes running this at the same time never apply one twice.
pub async fn tick(app: &App) -> AppResult<()> {
    for rollout in app.store.active_rollouts().await? {
        let at = now();
        if rollout.state == RolloutState::Scheduled {
            if rollout.start_at.is_none_or(|s| s <= at) {
                let from = [RolloutState::Scheduled];
                let started = app
                    .store
                    .set_rollout_state(rollout.id, &from, RolloutState::Running, None, at)
                    .await?;
                if started {
                    tracing::info!(product = %rollout.product, rollout = rollout.id,
                        "scheduled rollout started");
                    app.reindex(&rollout.product).await?;
                }
            }
            continue;
        }
        expire_silent(app, &rollout, at).await?;
        if rollout.state != RolloutState::Running {
            continue;
        }
        let counts = stage_counts(app, &rollout, 0).await?;
        let recent = stage_counts(app, &rollout, rollout.counted_from).await?;
        let soaked = u64::try_from(at - rollout.stage_started_at).unwrap_or(0);
        match rollout.policy.verdict(&counts, &recent, soaked) {
            Verdict::Pause(reason) => {
                pause_for(app, &rollout, &reason).await?;
            }
            Verdict::Advance => {
                step(app, &rollout, &[RolloutState::Running]).await?;
            }
            Verdict::Hold => {}
        }
    }
    Ok(())
}

/// Devices that started downloading and said nothing for the device timeout have failed;
/// devices offered the release that said nothing for as long give their slot back, without a
/// failure (they may never have seen the offer).
async fn expire_silent(app: &App, rollout: &Rollout, at: i64) -> AppResult<()> {
    let timeout = i64::try_from(rollout.policy.device_timeout_seconds).unwrap_or(i64::MAX);
    let before = at.saturating_sub(timeout);
    let mut changed = false;
    for device in app
        .store
        .stale_devices(rollout.id, DeviceState::Downloading, before)
        .await?
    {
        let failure = app
            .store
            .fail_device(
                rollout.id,
                &device,
                &[DeviceState::Downloading],
                rollout.policy.penalty_failures,
                penalty_until(&rollout.policy, at),
                at,
            )
            .await?;
        changed |= failure.is_some();
    }
    for device in app
        .store
        .stale_devices(rollout.id, DeviceState::Offered, before)
        .await?
    {
        changed |= app.store.drop_offer(rollout.id, &device, before).await?;
    }
    if changed {
        // Every node forgets the devices let go of (they take a slot again if they come back).
        let paused =
            rollout.state == RolloutState::Running && pause_if_failing(app, rollout).await?;
        if !paused {
            app.reindex(&rollout.product).await?;
        }
    }
    Ok(())
}

/// Runs [`tick`] every `every`.
pub async fn run(app: App, every: std::time::Duration) {
    let mut tick_every = tokio::time::interval(every);
    tick_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick_every.tick().await;
        if let Err(e) = tick(&app).await {
            tracing::warn!(error = %e, "rollout upkeep failed");
        }
    }
}
