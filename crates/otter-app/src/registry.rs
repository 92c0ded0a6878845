//! The device registry: what operators set on a product's devices (tags, an assigned channel,
//! a pinned version; deleting a device) and which devices the product admits (`open` or
//! `allowlist`, per-device allow and deny rules; deny always wins).
//!
//! The check path never reads the registry from the database: [`DeviceDirectory`], part of the
//! product's check index, holds only the devices with something set plus the admission rules,
//! and every change here rebuilds it through [`App::reindex`] (other nodes follow at their next
//! catalogue poll); a change to what devices are offered also tells the observers
//! ([`App::devices_changed`]), so MQTT notices follow. [`route`] is the registry's step in
//! [`crate::devices::decide`].

use std::collections::HashMap;
use std::sync::Arc;

use otter_core::Decision;
use otter_core::access::{ALL, Access, Admission, Firewall};
use otter_core::model::{Device, Page, validate_device_id, validate_name};
use otter_core::rollout::DeviceAttempt;
use otter_store::{DeviceChange, DeviceControls, DeviceFilter, PageRequest, StoreError, now};

use crate::devices::CheckIn;
use crate::index::ProductIndex;
use crate::{App, AppError, AppResult};

/// The registry as the check path needs it: the devices of one product that have a tag, an
/// assigned channel or a pin, and the product's admission rules. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct DeviceDirectory {
    controls: Arc<HashMap<String, DeviceControls>>,
    firewall: Arc<Firewall>,
}

impl DeviceDirectory {
    pub fn new(controls: Vec<DeviceControls>, firewall: Firewall) -> Self {
        DeviceDirectory {
            controls: Arc::new(
                controls
                    .into_iter()
                    .map(|c| (c.device.clone(), c))
                    .collect(),
            ),
            firewall: Arc::new(firewall),
        }
    }

    /// The device's tags, sorted (empty when it has none).
    pub fn tags(&self, device: &str) -> &[String] {
        self.controls.get(device).map_or(&[], |c| &c.tags)
    }

    /// The version an operator pinned the device to.
    pub fn pinned(&self, device: &str) -> Option<&str> {
        self.controls.get(device)?.pinned_version.as_deref()
    }

    /// The channel an operator moved the device to.
    pub fn channel(&self, device: &str) -> Option<&str> {
        self.controls.get(device)?.assigned_channel.as_deref()
    }

    /// Whether the product lets the device in: its own rule, else the admission mode.
    pub fn admits(&self, device: &str) -> bool {
        self.firewall.admits(device)
    }

    pub fn admission(&self) -> Admission {
        self.firewall.admission()
    }
}

/// Where the registry sends a device's check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// A pinned device: this is its answer, whatever rollouts or windows say.
    Pinned(Decision),
    /// Decide by the release rules on this channel (the assigned one, else the one asked for).
    Channel(&'a str),
}

/// The registry's step in a check: a device the product does not admit is refused
/// (`device_denied`), a pinned one is answered with its pin, and an assigned channel replaces
/// the one the device asked for. A check without a device id passes through.
pub fn route<'a>(index: &'a ProductIndex, check: &CheckIn<'a>) -> AppResult<Route<'a>> {
    let Some(device) = check.device else {
        return Ok(Route::Channel(check.channel));
    };
    admit(index, device)?;
    if let Some(pinned) = index.devices.pinned(device) {
        return Ok(Route::Pinned(pinned_decision(index, pinned, check.current)));
    }
    Ok(Route::Channel(
        index.devices.channel(device).unwrap_or(check.channel),
    ))
}

/// Refuses a device the product keeps out, with 403 `device_denied`.
pub fn admit(index: &ProductIndex, device: &str) -> AppResult<()> {
    if index.devices.admits(device) {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "device_denied",
            format!(
                "product {:?} does not admit device {device:?}",
                index.product.name
            ),
        ))
    }
}

/// A pinned device is offered exactly its pinned release whenever it runs anything else (an
/// older release too: pinning is the one way back), and nothing once the pinned release is
/// yanked.
fn pinned_decision(index: &ProductIndex, pinned: &str, current: Option<&str>) -> Decision {
    let Some(i) = index.position(pinned) else {
        return Decision::UpToDate;
    };
    let release = &index.releases[i];
    let runs_it = current
        .and_then(|c| index.identify(c))
        .is_some_and(|r| r.release.version == release.release.version);
    if runs_it || release.release.yanked {
        Decision::UpToDate
    } else {
        Decision::Offer {
            index: i,
            stepping_stone: false,
        }
    }
}

/// A product's devices matching `filter`, by id.
pub async fn list(
    app: &App,
    product: &str,
    filter: &DeviceFilter,
    page: &PageRequest,
) -> AppResult<Page<Device>> {
    app.product(product).await?;
    Ok(app.store.list_devices(product, filter, page).await?)
}

fn device_not_found(product: &str, id: &str) -> AppError {
    AppError::not_found(
        "device_not_found",
        format!("product {product:?} has never seen device {id:?}"),
    )
}
/// One device with its rollout attempts, or `device_not_found`.
/// One device, or `device_not_found`.
pub async fn get(app: &App, product: &str, id: &str) -> AppResult<DeviceDetail> {
    app.product(product).await?;
    let device = app
        .store
        .get_device(product, id)
        .await?
        .ok_or_else(|| device_not_found(product, id))?;
    let rollouts = app
        .store
        .device_attempts(product, id, MAX_ATTEMPTS_SHOWN)
        .await?;
    Ok(DeviceDetail { device, rollouts })
}

/// How many of a device's rollout attempts [`get`] shows, newest first.
const MAX_ATTEMPTS_SHOWN: u32 = 20;

/// One device and where it stands in its product's rollouts.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub device: Device,
    /// Its attempts, newest rollout first (at most [`MAX_ATTEMPTS_SHOWN`]).
    pub rollouts: Vec<DeviceAttempt>,
}

/// Changes what an operator sets on one device: auto-update, the assigned channel (validated
/// like channel names), the pin (a release of the product that is not yanked).
pub async fn update(app: &App, product: &str, id: &str, change: DeviceChange) -> AppResult<Device> {
    let index = app.product(product).await?;
    if let Some(Some(channel)) = &change.assigned_channel {
        validate_name("channel", channel)?;
    }
    if let Some(Some(version)) = &change.pinned_version {
        let release = index
            .release(version)
            .ok_or_else(|| AppError::release_not_found(product, version))?;
        if release.release.yanked {
            return Err(AppError::conflict(
                "release_yanked",
                format!("release {version:?} is yanked: a device cannot be pinned to it"),
            ));
        }
    }
    let device = app
        .store
        .update_device(product, id, &change)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => device_not_found(product, id),
            other => other.into(),
        })?;
    if change.assigned_channel.is_some() || change.pinned_version.is_some() {
        app.devices_changed(product).await?;
    }
    tracing::info!(product = %product, device = %id, auto_update = device.auto_update,
        assigned_channel = ?device.assigned_channel, pinned_version = ?device.pinned_version,
        "device changed");
    Ok(device)
}

/// Adds (`on`) or removes `tag` on every device of `product` matching `filter`, in one store
/// statement; how many devices changed.
pub async fn tag(
    app: &App,
    product: &str,
    filter: &DeviceFilter,
    tag: &str,
    on: bool,
) -> AppResult<u64> {
    app.product(product).await?;
    validate_name("tag", tag)?;
    let changed = if on {
        app.store.tag_devices(product, filter, tag).await?
    } else {
        app.store.untag_devices(product, filter, tag).await?
    };
    if changed > 0 {
        app.reindex(product).await?;
    }
    tracing::info!(product = %product, tag = %tag, on, changed, "devices tagged");
    Ok(changed)
}

/// Forgets a device: its registry entry and tags. Its reports stay, and so does its access
/// rule (deleting a denied device must not let it back in); a device that checks in again is
/// recorded afresh.
pub async fn delete(app: &App, product: &str, id: &str) -> AppResult<()> {
    app.product(product).await?;
    if !app.store.delete_device(product, id).await? {
        return Err(device_not_found(product, id));
    }
    app.devices_changed(product).await?;
    tracing::info!(product = %product, device = %id, "device deleted");
    Ok(())
}

/// A product's admission mode and per-device rules.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRules {
    pub mode: String,
    /// Devices allowed by name, sorted.
    pub allowed: Vec<String>,
    /// Devices denied by name, sorted.
    pub denied: Vec<String>,
}

/// What a product admits.
pub async fn admission(app: &App, product: &str) -> AppResult<AdmissionRules> {
    let index = app.product(product).await?;
    let mut rules = AdmissionRules {
        mode: index.devices.admission().to_string(),
        allowed: Vec::new(),
        denied: Vec::new(),
    };
    for (device, access) in app.store.device_access(product).await? {
        if device == ALL {
            continue;
        }
        match access {
            Access::Allow => rules.allowed.push(device),
            Access::Deny => rules.denied.push(device),
        }
    }
    Ok(rules)
}

/// Sets a product's admission mode (its `all` rule).
pub async fn set_admission(app: &App, product: &str, mode: Admission) -> AppResult<()> {
    app.product(product).await?;
    set_rule(app, product, ALL, Some(mode.rule())).await
}

/// Allows or denies one device by name (`None`: removes its rule, so the mode decides). `all`
/// is the admission mode, not a device.
pub async fn set_device_rule(
    app: &App,
    product: &str,
    device: &str,
    access: Option<Access>,
) -> AppResult<()> {
    app.product(product).await?;
    validate_device_id("device", device)?;
    if device == ALL {
        return Err(AppError::invalid(
            "reserved_device_id",
            "\"all\" stands for every device: set the product's admission mode instead",
        ));
    }
    set_rule(app, product, device, access).await
}

/// Stores a rule (ota-backend's firewall calls this directly: there `all` is its "any device"
/// switch) and rebuilds the product's check index.
pub async fn set_rule(
    app: &App,
    product: &str,
    device: &str,
    access: Option<Access>,
) -> AppResult<()> {
    app.store
        .set_device_access(product, device, access, now())
        .await?;
    app.devices_changed(product).await?;
    tracing::info!(product = %product, device = %device, access = ?access, "device access changed");
    Ok(())
}
