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
//! The [`Notifier`] hears of changes as an [`Observer`] of the application; the work runs in a
//! background task, so an API request never waits for it or for the broker.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use otter_app::index::{ProductIndex, download_path};
use otter_app::{App, AppResult, Observer, devices, rollouts, tokens};
use otter_core::Decision;
use otter_core::model::{Device, Release};
use otter_mqtt::Publisher;
use otter_store::PageRequest;
use serde_json::{Value, json};

/// The MQTT side of the server; clones share the connection and what devices were told.
#[derive(Clone)]
pub struct Notifier {
    pub publisher: Arc<Publisher>,
    /// The version each THiNX device was last told about, so a change elsewhere in the product
    /// does not mint it a new token for the same update.
    thinx_told: Arc<Mutex<HashMap<(String, String), String>>>,
}

impl Notifier {
    pub fn new(publisher: Arc<Publisher>) -> Self {
        Notifier {
            publisher,
            thinx_told: Arc::default(),
        }
    }
}

impl Observer for Notifier {
    /// Recomputes the product's messages in the background.
    fn product_changed(&self, app: &App, product: &str) {
        let (app, product) = (app.clone(), product.to_owned());
        let notifier = self.clone();
        tokio::spawn(async move {
            if let Err(e) = notifier.publish_product(&app, &product).await {
                tracing::warn!(product = %product, error = %e, "could not compute MQTT notifications");
            }
        });
    }

    /// The device's update message follows at once instead of at the product's next change.
    fn device_changed(
        &self,
        app: &App,
        index: &ProductIndex,
        device: &str,
        current: Option<&str>,
        channel: &str,
    ) {
        self.device_update(app, index, device, current, channel);
    }
}

impl Notifier {
    /// Every product's messages, at startup.
    pub async fn publish_all(&self, app: &App) {
        let products = match app.store.all_products().await {
            Ok(products) => products,
            Err(e) => {
                tracing::warn!(error = %e, "could not list products for MQTT notifications");
                return;
            }
        };
        for product in products {
            if let Err(e) = self.publish_product(app, &product.name).await {
                tracing::warn!(product = %product.name, error = %e, "could not compute MQTT notifications");
            }
        }
    }
}

fn url(app: &App, release: &Release) -> String {
    let path = download_path(
        &release.product,
        &release.version,
        &release.artifact.filename,
    );
    // Without a public URL there is no request to take a host from: the path alone.
    format!(
        "{}{path}",
        app.config.public_url.as_deref().unwrap_or_default()
    )
}

fn release_message(app: &App, release: &Release) -> Value {
    json!({
        "product": release.product,
        "version": release.version,
        "releaseDate": release.release_date,
        "sha256": release.artifact.sha256,
        "size": release.artifact.size,
        "url": url(app, release),
        "mandatory": release.mandatory,
        "deprecated": release.deprecated,
        "minSourceVersion": release.min_source_version,
    })
}

fn bytes(value: &Value) -> Bytes {
    Bytes::from(value.to_string())
}

impl Notifier {
    async fn publish_product(&self, app: &App, product: &str) -> AppResult<()> {
        let Some(index) = app.find_product(product).await? else {
            return Ok(());
        };
        let publisher = &self.publisher;

        // One message per channel that has (or had) releases.
        let channels: BTreeSet<&str> = index
            .releases
            .iter()
            .flat_map(|r| r.release.channels.iter().map(String::as_str))
            .collect();
        for channel in channels {
            let topic = format!("otter/{product}/{channel}/latest");
            // A release under a rollout is announced to the channel once it is everyone's;
            // before that, only the devices its stage let in hear of it on their own topics.
            let message = rollouts::newest_for_anyone(&index, channel).map(|r| {
                let mut m = release_message(app, &r.release);
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
            let devices = app
                .store
                .list_devices(product, &Default::default(), &page)
                .await?;
            for device in &devices.items {
                let current = device
                    .current_hash
                    .as_deref()
                    .filter(|h| index.identify(h).is_some())
                    .or(device.current_version.as_deref());
                let (topic, offered) =
                    self.device_update(app, &index, &device.id, current, &device.channel);
                if let Some(i) = offered {
                    stale.remove(&topic);
                    self.tell_thinx_device(app, device, &index.releases[i].release)
                        .await?;
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

    /// Sets (or removes) `device`'s update message; returns its topic and the offered release.
    fn device_update(
        &self,
        app: &App,
        index: &ProductIndex,
        device: &str,
        current: Option<&str>,
        channel: &str,
    ) -> (String, Option<usize>) {
        let topic = format!("otter/{}/devices/{device}/update", index.product.name);
        let decision = devices::what_to_offer(index, device, channel, current);
        match decision {
            Ok(Decision::Offer {
                index: i,
                stepping_stone,
            }) => {
                let mut m = release_message(app, &index.releases[i].release);
                m["device"] = json!(device);
                m["steppingStone"] = json!(stepping_stone);
                m["current"] = json!(current);
                self.publisher.set(topic.clone(), bytes(&m));
                (topic, Some(i))
            }
            _ => {
                self.publisher.set(topic.clone(), Bytes::new());
                (topic, None)
            }
        }
    }

    /// THiNX's `FIRMWARE_UPDATE` message on the device's own topic, with a fresh one-time token;
    /// only devices registered through THiNX (their owner is known) and only once per version.
    async fn tell_thinx_device(
        &self,
        app: &App,
        device: &Device,
        release: &Release,
    ) -> AppResult<()> {
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
            let told = self.thinx_told.lock().unwrap_or_else(|e| e.into_inner());
            if told.get(&key) == Some(&release.version) {
                return Ok(());
            }
        }
        let token = tokens::issue_ott(app, &device.product, &device.id, &release.artifact).await?;
        let url = format!(
            "{}/device/firmware?ott={token}",
            app.config.public_url.as_deref().unwrap_or_default()
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
        self.publisher
            .set(format!("/{owner}/{}", device.id), bytes(&message));
        self.thinx_told
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, release.version.clone());
        Ok(())
    }
}
