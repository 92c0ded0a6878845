//! Update notifications over MQTT (`--mqtt-url`): what THiNX announced as "in progress", done.
//!
//! When a release is published, deprecated or yanked (and for every product at startup), otter
//! sets these retained messages through [`otter_mqtt::Publisher`]:
//!
//! - `otter/{product}/{channel}/latest`: the channel's newest release (`version`, `sha256`,
//!   `size`, `url`, `mandatory`, `deprecated`, …); empty (removed) when the channel has none;
//! - `otter/{product}/devices/{device}/update`: for each known device that has an update now,
//!   what it would be offered (the update decision is otter's, stepping stones included);
//!   removed once the device has nothing to install;
//! - for devices registered through THiNX (their owner is known), THiNX's own message on
//!   `/{owner}/{udid}`: `{"FIRMWARE_UPDATE":{…,"ott":…,"url":…}}`, which THiNXLib acts on.
//!
//! The work runs in a background task; an API request never waits for it or for the broker.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use otter_core::model::{Device, Release};
use otter_core::{Current, Decision, decide};
use otter_mqtt::Publisher;
use otter_store::PageRequest;
use serde_json::{Value, json};

use crate::index::{ProductIndex, download_path};
use crate::state::AppState;

/// The MQTT side of the server.
pub struct Notifier {
    pub publisher: Arc<Publisher>,
    /// The version each THiNX device was last told about, so a change elsewhere in the product
    /// does not mint it a new token for the same update.
    thinx_told: Mutex<HashMap<(String, String), String>>,
}

impl Notifier {
    pub fn new(publisher: Arc<Publisher>) -> Self {
        Notifier {
            publisher,
            thinx_told: Mutex::new(HashMap::new()),
        }
    }
}

/// Recomputes a product's messages in the background, if MQTT is on.
pub fn product_changed(state: &AppState, product: &str) {
    if state.notifier.is_none() {
        return;
    }
    let (state, product) = (state.clone(), product.to_owned());
    tokio::spawn(async move {
        if let Err(e) = publish_product(&state, &product).await {
            tracing::warn!(product = %product, error = %e, "could not compute MQTT notifications");
        }
    });
}

/// Every product's messages, at startup.
pub async fn publish_all(state: &AppState) {
    let products = match state.store.all_products().await {
        Ok(products) => products,
        Err(e) => {
            tracing::warn!(error = %e, "could not list products for MQTT notifications");
            return;
        }
    };
    for product in products {
        if let Err(e) = publish_product(state, &product.name).await {
            tracing::warn!(product = %product.name, error = %e, "could not compute MQTT notifications");
        }
    }
}

fn url(state: &AppState, release: &Release) -> String {
    let path = download_path(
        &release.product,
        &release.version,
        &release.artifact.filename,
    );
    // Without a public URL there is no request to take a host from: the path alone.
    format!(
        "{}{path}",
        state.config.public_url.as_deref().unwrap_or_default()
    )
}

fn release_message(state: &AppState, release: &Release) -> Value {
    json!({
        "product": release.product,
        "version": release.version,
        "releaseDate": release.release_date,
        "sha256": release.artifact.sha256,
        "size": release.artifact.size,
        "url": url(state, release),
        "mandatory": release.mandatory,
        "deprecated": release.deprecated,
        "minSourceVersion": release.min_source_version,
    })
}

fn bytes(value: &Value) -> Bytes {
    Bytes::from(value.to_string())
}

async fn publish_product(state: &AppState, product: &str) -> otter_store::Result<()> {
    let Some(notifier) = &state.notifier else {
        return Ok(());
    };
    let Some(index) = state.index.product(product) else {
        return Ok(());
    };
    let publisher = &notifier.publisher;
    let scheme = index.product.scheme;

    // One message per channel that has (or had) releases.
    let channels: BTreeSet<&str> = index
        .releases
        .iter()
        .flat_map(|r| r.release.channels.iter().map(String::as_str))
        .collect();
    for channel in channels {
        let topic = format!("otter/{product}/{channel}/latest");
        let message = otter_core::decision::newest(scheme, &index.releases, channel).map(|i| {
            let mut m = release_message(state, &index.releases[i].release);
            m["channel"] = json!(channel);
            bytes(&m)
        });
        publisher.set(topic, message.unwrap_or_default());
    }

    // Devices: what each would be offered now.
    let prefix = format!("otter/{product}/devices/");
    let mut stale: BTreeSet<String> = publisher.topics_under(&prefix).into_iter().collect();
    let mut page = PageRequest {
        limit: 500,
        cursor: None,
    };
    loop {
        let devices = state.store.list_devices(product, &page).await?;
        for device in &devices.items {
            let current = device
                .current_hash
                .as_deref()
                .filter(|h| index.identify(h).is_some())
                .or(device.current_version.as_deref());
            let (topic, offered) =
                device_update(state, &index, &device.id, current, &device.channel);
            if let Some(i) = offered {
                stale.remove(&topic);
                tell_thinx_device(state, notifier, device, &index.releases[i].release).await?;
            }
        }
        match devices.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => break,
        }
    }
    for topic in stale {
        publisher.set(topic, Bytes::new());
    }
    Ok(())
}

/// A device said what it runs now (an `installed` report, a THiNX check-in): its update
/// message follows at once instead of at the product's next change.
pub fn device_changed(
    state: &AppState,
    index: &ProductIndex,
    device: &str,
    current: Option<&str>,
    channel: &str,
) {
    if state.notifier.is_some() {
        device_update(state, index, device, current, channel);
    }
}

/// Sets (or removes) `device`'s update message; returns its topic and the offered release.
fn device_update(
    state: &AppState,
    index: &ProductIndex,
    device: &str,
    current: Option<&str>,
    channel: &str,
) -> (String, Option<usize>) {
    let topic = format!("otter/{}/devices/{device}/update", index.product.name);
    let Some(notifier) = &state.notifier else {
        return (topic, None);
    };
    let decision = decide(
        index.product.scheme,
        &index.releases,
        channel,
        current.map_or(Current::Unknown, Current::Reported),
    );
    match decision {
        Ok(Decision::Offer {
            index: i,
            stepping_stone,
        }) => {
            let mut m = release_message(state, &index.releases[i].release);
            m["device"] = json!(device);
            m["steppingStone"] = json!(stepping_stone);
            m["current"] = json!(current);
            notifier.publisher.set(topic.clone(), bytes(&m));
            (topic, Some(i))
        }
        _ => {
            notifier.publisher.set(topic.clone(), Bytes::new());
            (topic, None)
        }
    }
}

/// THiNX's `FIRMWARE_UPDATE` message on the device's own topic, with a fresh one-time token;
/// only devices registered through THiNX (their owner is known) and only once per version.
async fn tell_thinx_device(
    state: &AppState,
    notifier: &Notifier,
    device: &Device,
    release: &Release,
) -> otter_store::Result<()> {
    // THiNX owner ids are [a-z0-9]{64,}; anything else cannot be a topic level.
    let Some(owner) = device
        .attributes
        .get("owner")
        .and_then(Value::as_str)
        .filter(|o| !o.is_empty() && o.bytes().all(|b| b.is_ascii_alphanumeric()))
    else {
        return Ok(());
    };
    let key = (device.product.clone(), device.id.clone());
    {
        let told = notifier
            .thinx_told
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if told.get(&key) == Some(&release.version) {
            return Ok(());
        }
    }
    let token =
        crate::protocols::thinx::issue_token(state, &device.product, &device.id, &release.artifact)
            .await?;
    let url = format!(
        "{}/device/firmware?ott={token}",
        state.config.public_url.as_deref().unwrap_or_default()
    );
    let message = json!({
        "FIRMWARE_UPDATE": {
            "status": "FIRMWARE_UPDATE",
            "udid": device.id,
            "mac": device.attributes.get("mac"),
            "version": release.version,
            "ott": token,
            "url": url,
            "auto_update": device.auto_update,
        }
    });
    notifier
        .publisher
        .set(format!("/{owner}/{}", device.id), bytes(&message));
    notifier
        .thinx_told
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, release.version.clone());
    Ok(())
}
