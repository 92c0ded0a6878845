//! Devices: the update decision at check-in, update reports, and what the fleet runs (what
//! operators set on devices is [`crate::registry`]'s).
//!
//! Every protocol's check goes through [`decide`], so a rule about who gets what (and the
//! metrics of it) lives here once, whatever the device speaks.

use std::sync::{OnceLock, RwLock};

use otter_core::model::{
    DEFAULT_CHANNEL, Device, Page, ReportState, UpdateReport, validate_device_id, validate_name,
};
use otter_core::version::MAX_VERSION_LEN;
use otter_core::{Current, Decision, FastMap, Version};
use otter_store::{NewReport, PageRequest, now};

use crate::index::{IndexedRelease, ProductIndex, is_digest};
use crate::registry::{self, Route};
use crate::{App, AppError, AppResult, schedules};

/// Protocols whose devices report the outcome of every attempt themselves (hawkBit DDI's
/// feedback; an attempt otter canceled is no failure): their check-ins never count as one.
const REPORTS_OUTCOMES: &[&str] = &["ddi"];

/// Longest report message kept.
const MAX_MESSAGE_LEN: usize = 2000;

/// What `device` running `current` on `channel` would be offered now, for a notice about a new
/// release: the registry (admission, pin, assigned channel), the channel's window and the
/// rollouts' stages decide as on a check, but no concurrency slot is taken (the device's check
/// takes it, or finds none).
pub fn what_to_offer(
    index: &ProductIndex,
    device: &str,
    channel: &str,
    current: Option<&str>,
) -> AppResult<Decision> {
    let check = CheckIn {
        protocol: "notify",
        device: Some(device),
        channel,
        current,
    };
    Ok(match registry::route(index, &check)? {
        Route::Pinned(decision) => decision,
        Route::Channel(channel) => {
            let at = now();
            let outside_window = schedules::withheld(index, channel, at);
            let outside_rollout = crate::rollouts::withheld_from(index, device, channel, at);
            index.decide(channel, current_of(current), at, |r| {
                outside_window.as_ref().is_some_and(|w| w(r)) || outside_rollout(r)
            })?
        }
    })
}

fn current_of(current: Option<&str>) -> Current<'_> {
    current.map_or(Current::Unknown, Current::Reported)
}

/// One device's check, as whichever protocol it speaks put it.
#[derive(Debug, Clone, Copy)]
pub struct CheckIn<'a> {
    /// The protocol, as `otter_checks_total{protocol}` names it.
    pub protocol: &'static str,
    /// The device's id, when its protocol names it (the manifest contract and IotaWatt do not).
    pub device: Option<&'a str>,
    /// The channel the device asked for.
    pub channel: &'a str,
    /// What it runs: a version, or a hex digest of its image.
    pub current: Option<&'a str>,
}

/// A device's check, whatever protocol it speaks: the one decision path. A `device` that named
/// itself is held to `--rate-limit-device` first; the registry then refuses it if the product
/// does not admit it, answers it if it is pinned, or moves it to its assigned channel
/// ([`registry::route`]); then the release rules decide, with the releases this device may not
/// have now held back (outside its channel's maintenance window, those that are not mandatory;
/// rollouts the device is not let into: [`crate::rollouts::decide`]); the result is counted
/// under the protocol in `otter_checks_total`.
pub async fn decide(app: &App, index: &ProductIndex, check: CheckIn<'_>) -> AppResult<Decision> {
    if let Some(device) = check.device {
        admit(app, &index.product.name, device)?;
    }
    let now = now();
    let decision = match registry::route(index, &check)? {
        Route::Pinned(decision) => decision,
        Route::Channel(channel) => {
            let outside_window = schedules::withheld(index, channel, now);
            let withheld =
                |release: &IndexedRelease| outside_window.as_ref().is_some_and(|w| w(release));
            let infer_progress = !REPORTS_OUTCOMES.contains(&check.protocol);
            crate::rollouts::decide(
                app,
                index,
                check.device,
                channel,
                check.current,
                withheld,
                infer_progress,
            )
            .await?
        }
    };
    let result = match decision {
        Decision::Offer { .. } => "offered",
        Decision::UpToDate => "up_to_date",
        Decision::NoPath => "no_path",
    };
    count_check(check.protocol, result);
    Ok(decision)
}

/// Adds one to `otter_checks_total{protocol,result}`. The handles are kept: looking one up in
/// the recorder on every check (hashing its labels, a lock, an allocation) cost about a third of
/// deciding the check.
pub(crate) fn count_check(protocol: &'static str, result: &'static str) {
    type Handles = FastMap<(&'static str, &'static str), metrics::Counter>;
    static HANDLES: OnceLock<RwLock<Handles>> = OnceLock::new();
    let handles = HANDLES.get_or_init(Default::default);
    let found = handles
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(protocol, result))
        .cloned();
    let counter = found.unwrap_or_else(|| {
        let made =
            metrics::counter!("otter_checks_total", "protocol" => protocol, "result" => result);
        handles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((protocol, result), made.clone());
        made
    });
    counter.increment(1);
}

/// Holds a device of `product` to `--rate-limit-device`: its checks and reports share one
/// bucket, refusals counted in `otter_rate_limited_total{scope="device"}`.
pub(crate) fn admit(app: &App, product: &str, device: &str) -> AppResult<()> {
    app.device_limit.take((product, device)).map_err(|wait| {
        metrics::counter!("otter_rate_limited_total", "scope" => "device").increment(1);
        AppError::rate_limited(format!("device {device:?} asks too often"), wait)
    })
}

/// An update report as a device sends it (the native API's body).
#[derive(Debug, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub device: String,
    pub version: String,
    pub state: ReportState,
    pub message: Option<String>,
    pub channel: Option<String>,
}

/// Records how an update went. The report is written before this returns, never dropped; an
/// `installed` report also records the device's new version, in order behind its earlier
/// check-ins.
pub async fn report(app: &App, product: &str, report: Report) -> AppResult<UpdateReport> {
    let index = app.product(product).await?;
    validate_device_id("device", &report.device)?;
    admit(app, product, &report.device)?;
    registry::admit(&index, &report.device)?;
    if report.version.is_empty() || report.version.len() > MAX_VERSION_LEN {
        return Err(AppError::invalid(
            "invalid_version",
            format!("version must be 1-{MAX_VERSION_LEN} characters"),
        ));
    }
    // A version the product's scheme rejects could never be checked against or offered, and
    // would otherwise become the device's current version.
    if !is_digest(&report.version) {
        Version::parse(index.product.scheme, &report.version)?;
    }
    if report
        .message
        .as_ref()
        .is_some_and(|m| m.chars().count() > MAX_MESSAGE_LEN)
    {
        return Err(AppError::invalid(
            "field_too_long",
            format!("message is longer than {MAX_MESSAGE_LEN} characters"),
        ));
    }
    let at = now();
    let stored = app
        .store
        .insert_report(&NewReport {
            product: product.to_owned(),
            device: report.device.clone(),
            version: report.version.clone(),
            state: report.state,
            message: report.message,
            created_at: at,
        })
        .await?;
    crate::rollouts::report(app, &index, &report.device, &report.version, report.state).await?;
    if report.state == ReportState::Installed {
        let channel = report.channel.unwrap_or_else(|| DEFAULT_CHANNEL.to_owned());
        validate_name("channel", &channel)?;
        app.device_changed(&index, &report.device, Some(&report.version), &channel);
        let mut seen = index.sighting(report.device, Some(&report.version), &channel);
        seen.at = at;
        app.seen.record_in_order(seen).await;
    }
    Ok(stored)
}

/// One device, if the product has seen it.
pub async fn get(app: &App, product: &str, id: &str) -> AppResult<Option<Device>> {
    Ok(app.store.get_device(product, id).await?)
}

/// A product's update reports, newest first, optionally of one device.
pub async fn reports(
    app: &App,
    product: &str,
    device: Option<&str>,
    page: &PageRequest,
) -> AppResult<Page<UpdateReport>> {
    app.product(product).await?;
    Ok(app.store.list_reports(product, device, page).await?)
}
