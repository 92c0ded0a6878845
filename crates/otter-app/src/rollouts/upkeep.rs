//! The background work every node runs every few seconds: scheduled starts, attempts that
//! went silent, automatic advance and pause. Every change is a conditional statement, so nodes
//! running it at the same time never apply one twice.

use otter_core::rollout::{DeviceState, Rollout, RolloutState, Verdict};
use otter_store::now;

use super::manage::step;
use super::{pause_for, pause_if_failing, penalty_until, stage_counts};
use crate::{App, AppResult};

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
                    app.devices_changed(&rollout.product).await?;
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
