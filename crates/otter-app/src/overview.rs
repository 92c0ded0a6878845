//! A product at a glance, for the web UI's dashboard: its fleet (devices seen lately, the
//! versions they run), its rollouts under way and its recent failures. Every figure comes from
//! an aggregate query or a short list: a dashboard never loads a fleet into memory.

use otter_core::model::{Product, UpdateReport};
use otter_core::rollout::Rollout;

use crate::{App, AppResult};

/// Versions shown by name in the distribution; the rest are summed as "other".
pub const TOP_VERSIONS: usize = 6;
/// How far back failures count as recent.
pub const FAILURE_DAYS: i64 = 3;
/// Failures listed at most.
pub const FAILURE_LINES: u32 = 5;

const DAY: i64 = 24 * 60 * 60;

/// What the dashboard shows of one product.
pub struct Overview {
    pub product: Product,
    /// Every device the product has seen.
    pub devices: u64,
    /// Devices seen in the last 24 hours.
    pub seen_day: u64,
    /// Devices seen in the last 7 days.
    pub seen_week: u64,
    /// Devices per version, most first: the [`TOP_VERSIONS`] largest, then `other` for the
    /// rest; `unknown` for devices that never named their version.
    pub versions: Vec<(String, u64)>,
    /// Rollouts scheduled, running or paused, newest first.
    pub rollouts: Vec<Rollout>,
    /// Failed and rolled-back reports of the last [`FAILURE_DAYS`] days, newest first.
    pub failures: Vec<UpdateReport>,
}

/// `product` (as listed by [`crate::products::list`]) at a glance at `now` (Unix seconds).
/// Reads the store only: showing a product does not build its check index.
pub async fn product(app: &App, product: &Product, now: i64) -> AppResult<Overview> {
    let name = product.name.as_str();
    let summary = app
        .store
        .fleet_summary(name, &[now - DAY, now - 7 * DAY])
        .await?;
    let mut rollouts: Vec<Rollout> = app
        .store
        .gating_rollouts(name)
        .await?
        .into_iter()
        .filter(|r| r.state.is_active())
        .collect();
    rollouts.sort_by_key(|r| std::cmp::Reverse(r.id));
    let failures = app
        .store
        .recent_failures(name, now - FAILURE_DAYS * DAY, FAILURE_LINES)
        .await?;
    Ok(Overview {
        product: product.clone(),
        devices: summary.devices,
        seen_day: summary.seen_since[0],
        seen_week: summary.seen_since[1],
        versions: top_versions(summary.versions, TOP_VERSIONS),
        rollouts,
        failures,
    })
}

/// The `top` largest of `versions` (already most first) by name, the rest summed as `other`.
fn top_versions(versions: Vec<(Option<String>, u64)>, top: usize) -> Vec<(String, u64)> {
    // Folding only one version into "other" would hide a name to save no room.
    let shown = if versions.len() > top + 1 {
        top
    } else {
        versions.len()
    };
    let other: u64 = versions[shown..].iter().map(|(_, n)| n).sum();
    let mut bars: Vec<(String, u64)> = versions
        .into_iter()
        .take(shown)
        .map(|(v, n)| (v.unwrap_or_else(|| "unknown".to_owned()), n))
        .collect();
    if other > 0 {
        bars.push(("other".to_owned(), other));
    }
    bars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(counts: &[(&str, u64)]) -> Vec<(Option<String>, u64)> {
        counts
            .iter()
            .map(|(v, n)| ((!v.is_empty()).then(|| (*v).to_owned()), *n))
            .collect()
    }

    #[test]
    fn beyond_the_top_versions_the_rest_is_other() {
        let all = versions(&[("3", 9), ("", 5), ("2", 4), ("1", 2), ("0", 1)]);
        assert_eq!(
            top_versions(all, 2),
            vec![
                ("3".to_owned(), 9),
                ("unknown".to_owned(), 5),
                ("other".to_owned(), 7)
            ]
        );
        // One version past the top is shown by name rather than as "other".
        let few = versions(&[("2", 4), ("1", 2), ("0", 1)]);
        assert_eq!(top_versions(few, 2).len(), 3);
        assert!(top_versions(Vec::new(), 2).is_empty());
    }
}
