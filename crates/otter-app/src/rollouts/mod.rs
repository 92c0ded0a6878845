//! Staged rollouts: the gate every device check passes through ([`decide`]) and progress from
//! reports and check-ins (here), the use cases (create, list, show, advance, pause, resume,
//! abort, retry-failed: `manage`), and the background work (scheduled starts, timeouts, automatic
//! advance and pause: `upkeep`).
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

use otter_core::model::ReportState;
use otter_core::rollout::{DeviceState, Policy, Rollout, RolloutState, StageCounts, bucket};
use otter_core::{Current, Decision};
use otter_store::{Failure, SlotAnswer, Store, now};

use crate::index::{IndexedRelease, ProductIndex};
use crate::{App, AppResult};

mod manage;
mod upkeep;

pub use manage::{
    NewRollout, Retried, RolloutView, abort, advance, create, list, pause, release_yanked, resume,
    retry_failed, show,
};
pub use upkeep::{run, tick};

/// Most devices one rollout's memory holds on a node; past it the memory starts over, which
/// costs each device one database round trip to be remembered again (the database is the
/// truth, the memory only spares it).
const MEMORY_LIMIT: usize = 1_000_000;

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

/// Whether the newest rollout of `version` on `channel` is paused or aborted: devices it let in
/// may finish on protocols that cannot take an offer back, but a hawkBit DDI action for it is
/// canceled ([`crate::ddi`]).
pub fn halted(index: &ProductIndex, channel: &str, version: &str) -> bool {
    index.rollouts.gating(channel, version).is_some_and(|g| {
        matches!(
            g.rollout.state,
            RolloutState::Paused | RolloutState::Aborted
        )
    })
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

/// The rollout step of a device's check: decides with the releases `held` holds back (the
/// other steps' rules) and those of rollouts the device is not let into. A release offered under
/// a rollout the device is not yet in takes a slot first; without one it is held back too and
/// the check decided again, so the device is offered what it was offered before.
///
/// With `infer_progress`, what the device runs also records its attempt's progress (running the
/// release: installed; running another after downloading it: failed); protocols whose devices
/// report every outcome themselves (hawkBit DDI's feedback) pass `false`.
pub async fn decide(
    app: &App,
    index: &ProductIndex,
    device: Option<&str>,
    channel: &str,
    current: Option<&str>,
    held: impl Fn(&IndexedRelease) -> bool,
    infer_progress: bool,
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
        && infer_progress
        && gates.iter().any(|gate| gate.progress(runs).is_some())
        // Boxed: its state (store calls) is large and rarely needed; every check would carry it.
        && let Err(e) = Box::pin(progress_from_check(app, &mut gates, device, runs, at)).await
    {
        tracing::warn!(product = %index.product.name, device = device.0, error = %e,
            "could not record a rollout's progress from a check");
    }
    let tags = device.map_or(&[][..], |(d, _)| index.devices.tags(d));
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
                SlotAnswer::Refused
            });
        match admission {
            SlotAnswer::Admitted | SlotAnswer::Holding => {
                g.remember(hash, Phase::Offered);
                return Ok(decision);
            }
            SlotAnswer::Installed => {
                g.remember(hash, Phase::Done);
                return Ok(decision);
            }
            SlotAnswer::Failed => {
                g.remember(hash, Phase::Failed);
                slot.access = Access::Closed;
            }
            SlotAnswer::Refused => slot.access = Access::Closed,
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
                // Counted now, or already (by the device timeout, through another node): its
                // attempt is over either way.
                g.remember(hash, Phase::Failed);
                gate.phase = Some(Phase::Failed);
                if let Some(failure) = failed {
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
    // An agent names an image pushed to it by its hash: the release it is, if any.
    let version = index
        .identify(version)
        .map_or(version, |r| r.release.version.as_str());
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
        app.devices_changed(&rollout.product).await?;
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

/// The releases on `channel` that `device` may not have now by its rollouts, without taking a
/// slot: what a notice about a release to one device goes by (the check itself then takes the
/// slot, or finds none).
pub fn withheld_from<'a>(
    index: &'a ProductIndex,
    device: &'a str,
    channel: &'a str,
    at: i64,
) -> impl Fn(&IndexedRelease) -> bool + 'a {
    let hash = device_hash(device);
    let tags = index.devices.tags(device);
    move |r: &IndexedRelease| {
        index
            .rollouts
            .gating(channel, &r.release.version)
            .is_some_and(|g| {
                g.access(Some((device, hash)), g.recall(hash), tags, at) == Access::Closed
            })
    }
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
