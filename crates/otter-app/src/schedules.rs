//! When devices update and when they ask: maintenance windows per channel, and the poll hint the
//! native check answers as `nextCheckSeconds` (see `docs/windows.md`).
//!
//! Both live in the product's check index, so the check path consults them in memory; a change
//! reindexes the product (other nodes follow at their next catalogue poll).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use otter_core::model::validate_name;
use otter_core::schedule::{MaintenanceWindow, PollHint, WindowSpec};
use otter_store::now;
use serde::Serialize;

use crate::index::{IndexedRelease, ProductIndex};
use crate::{App, AppError, AppResult};

/// A channel's window as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ChannelWindow {
    pub channel: String,
    #[serde(flatten)]
    pub window: WindowSpec,
    /// Whether releases that are not mandatory are offered right now.
    pub open_now: bool,
}

/// Sets (`Some`) or removes (`None`) the maintenance window of `product`'s `channel`.
pub async fn set_window(
    app: &App,
    product: &str,
    channel: &str,
    window: Option<WindowSpec>,
) -> AppResult<Option<ChannelWindow>> {
    app.product(product).await?;
    validate_name("channel", channel)?;
    let checked = window
        .as_ref()
        .map(|w| {
            MaintenanceWindow::new(w)
                .map_err(|e| AppError::invalid("invalid_window", e.to_string()))
        })
        .transpose()?;
    app.store
        .set_window(product, channel, window.as_ref(), now())
        .await?;
    app.reindex(product).await?;
    tracing::info!(product, channel, window = ?window, "maintenance window changed");
    Ok(window.zip(checked).map(|(window, checked)| ChannelWindow {
        channel: channel.to_owned(),
        open_now: checked.is_open(now()),
        window,
    }))
}

/// A product's maintenance windows, by channel.
pub async fn windows(app: &App, product: &str) -> AppResult<Vec<ChannelWindow>> {
    let index = app.product(product).await?;
    let at = now();
    Ok(app
        .store
        .windows(product)
        .await?
        .into_iter()
        .map(|(channel, window)| ChannelWindow {
            open_now: index.windows.get(&channel).is_some_and(|w| w.is_open(at)),
            channel,
            window,
        })
        .collect())
}

/// Sets (`Some`) or removes (`None`) the product's poll hint.
pub async fn set_poll_hint(
    app: &App,
    product: &str,
    hint: Option<PollHint>,
) -> AppResult<Option<PollHint>> {
    app.product(product).await?;
    if let Some(hint) = &hint {
        hint.validate()
            .map_err(|e| AppError::invalid("invalid_poll_hint", e.to_string()))?;
    }
    app.store
        .set_poll_hint(product, hint.as_ref(), now())
        .await?;
    app.reindex(product).await?;
    tracing::info!(product, hint = ?hint, "poll hint changed");
    Ok(hint)
}

/// The product's poll hint, if it has one.
pub async fn poll_hint(app: &App, product: &str) -> AppResult<Option<PollHint>> {
    Ok(app.product(product).await?.poll_hint)
}

/// The windows of `product` as the check index holds them. A stored window that no longer
/// checks (a time zone this build does not know) is left out with a warning: that channel is
/// then always open, rather than the product failing to load.
pub fn load_windows(
    product: &str,
    stored: Vec<(String, WindowSpec)>,
) -> HashMap<String, MaintenanceWindow> {
    stored
        .into_iter()
        .filter_map(|(channel, spec)| match MaintenanceWindow::new(&spec) {
            Ok(window) => Some((channel, window)),
            Err(e) => {
                tracing::warn!(product, channel, error = %e, "ignoring a maintenance window");
                None
            }
        })
        .collect()
}

/// The check path's window step: outside `channel`'s window at `now`, the releases that are
/// not mandatory are withheld. `None` when nothing is withheld.
pub fn withheld(
    index: &ProductIndex,
    channel: &str,
    now: i64,
) -> Option<impl Fn(&IndexedRelease) -> bool> {
    let closed = index
        .windows
        .get(channel)
        .is_some_and(|window| !window.is_open(now));
    closed.then_some(|release: &IndexedRelease| !release.release.mandatory)
}

/// The `nextCheckSeconds` to answer a device of `index`'s product, jittered anew each time.
pub fn next_check_seconds(index: &ProductIndex) -> Option<u32> {
    index.poll_hint.map(|hint| hint.next_check(uniform()))
}

/// A number drawn uniformly from `0.0..1.0`; not for secrets. `RandomState` is seeded per thread
/// and stepped on every call, which is all a jitter needs, without a random-number crate.
fn uniform() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}
