//! The device registry: filters, tags (one device or by filter), assigned channel, pin, delete,
//! and what the check index loads of it.

use super::*;

/// Four devices of `door-sensor`: d1 and d2 on 1.0.0 (stable), d3 on 2.0.0 (beta), d4 on
/// 2.0.0 (stable) seen long ago, each via a protocol.
async fn fleet(store: &dyn Store) {
    let via = |mut s: DeviceSeen, protocol| {
        s.protocol = Some(protocol);
        s
    };
    store
        .record_seen(
            &[
                via(
                    seen("door-sensor", "d1", Some("1.0.0"), "stable", T0 + 100),
                    "native",
                ),
                via(
                    seen("door-sensor", "d2", Some("1.0.0"), "stable", T0 + 100),
                    "arduino",
                ),
                via(
                    seen("door-sensor", "d3", Some("2.0.0"), "beta", T0 + 100),
                    "native",
                ),
                via(
                    seen("door-sensor", "d4", Some("2.0.0"), "stable", T0),
                    "thinx",
                ),
                seen("other", "d1", Some("1.0.0"), "stable", T0),
            ],
            None,
        )
        .await
        .unwrap();
}

async fn ids(store: &dyn Store, filter: DeviceFilter) -> Vec<String> {
    store
        .list_devices("door-sensor", &filter, &first(100))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| d.id)
        .collect()
}

fn tag(tag: &str) -> DeviceFilter {
    DeviceFilter {
        tag: Some(tag.to_owned()),
        ..DeviceFilter::default()
    }
}

fn one(device: &str) -> DeviceFilter {
    DeviceFilter {
        device: Some(device.to_owned()),
        ..DeviceFilter::default()
    }
}

pub async fn devices_filter_by_tag_version_channel_protocol_and_last_seen(store: &dyn Store) {
    fleet(store).await;
    store
        .tag_devices("door-sensor", &one("d2"), "canary")
        .await
        .unwrap();
    store
        .tag_devices("door-sensor", &one("d3"), "canary")
        .await
        .unwrap();
    assert_eq!(
        ids(store, DeviceFilter::default()).await,
        ["d1", "d2", "d3", "d4"]
    );
    assert_eq!(ids(store, tag("canary")).await, ["d2", "d3"]);
    let version = DeviceFilter {
        version: Some("2.0.0".into()),
        ..DeviceFilter::default()
    };
    assert_eq!(ids(store, version).await, ["d3", "d4"]);
    let protocol = DeviceFilter {
        protocol: Some("native".into()),
        ..DeviceFilter::default()
    };
    assert_eq!(ids(store, protocol).await, ["d1", "d3"]);
    let before = DeviceFilter {
        seen_before: Some(T0 + 100),
        ..DeviceFilter::default()
    };
    assert_eq!(ids(store, before).await, ["d4"]);
    let after = DeviceFilter {
        seen_after: Some(T0 + 100),
        ..DeviceFilter::default()
    };
    assert_eq!(ids(store, after).await, ["d1", "d2", "d3"]);
    // Every field set must match.
    let both = DeviceFilter {
        tag: Some("canary".into()),
        channel: Some("stable".into()),
        ..DeviceFilter::default()
    };
    assert_eq!(ids(store, both).await, ["d2"]);
    // The channel filter sees an assigned channel in place of the one asked for.
    let moved = DeviceChange {
        assigned_channel: Some(Some("beta".into())),
        ..DeviceChange::default()
    };
    store
        .update_device("door-sensor", "d1", &moved)
        .await
        .unwrap();
    let beta = DeviceFilter {
        channel: Some("beta".into()),
        ..DeviceFilter::default()
    };
    assert_eq!(ids(store, beta.clone()).await, ["d1", "d3"]);
    // Filtered lists paginate like the plain one.
    let page = store
        .list_devices("door-sensor", &beta, &first(1))
        .await
        .unwrap();
    assert_eq!(page.items[0].id, "d1");
    let rest = store
        .list_devices("door-sensor", &beta, &after_page(1, &page.next_cursor))
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["d3"]
    );
    assert_eq!(rest.next_cursor, None);
}

fn after_page(limit: u32, cursor: &Option<String>) -> PageRequest {
    PageRequest {
        limit,
        cursor: cursor.clone(),
    }
}

pub async fn tagging_by_filter_is_counted_and_idempotent(store: &dyn Store) {
    fleet(store).await;
    let stable = DeviceFilter {
        channel: Some("stable".into()),
        ..DeviceFilter::default()
    };
    assert_eq!(
        store
            .tag_devices("door-sensor", &stable, "wave-1")
            .await
            .unwrap(),
        3
    );
    // Again: nobody changes.
    assert_eq!(
        store
            .tag_devices("door-sensor", &stable, "wave-1")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .tag_devices("door-sensor", &DeviceFilter::default(), "wave-1")
            .await
            .unwrap(),
        1,
        "only d3 lacked it"
    );
    let device = store
        .get_device("door-sensor", "d1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(device.tags, ["wave-1"]);
    store
        .tag_devices("door-sensor", &one("d1"), "a-first")
        .await
        .unwrap();
    let device = store
        .get_device("door-sensor", "d1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(device.tags, ["a-first", "wave-1"], "tags are sorted");
    // The other product's d1 is not touched.
    let other = store.get_device("other", "d1").await.unwrap().unwrap();
    assert!(other.tags.is_empty());

    let on_1 = DeviceFilter {
        version: Some("1.0.0".into()),
        ..DeviceFilter::default()
    };
    assert_eq!(
        store
            .untag_devices("door-sensor", &on_1, "wave-1")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .untag_devices("door-sensor", &on_1, "wave-1")
            .await
            .unwrap(),
        0
    );
    assert_eq!(ids(store, tag("wave-1")).await, ["d3", "d4"]);
    // A filter matching nobody changes nothing.
    assert_eq!(
        store
            .tag_devices("door-sensor", &one("nobody"), "x")
            .await
            .unwrap(),
        0
    );
}

pub async fn assigned_channel_and_pin_are_set_and_cleared(store: &dyn Store) {
    let change = |channel: Option<Option<&str>>, pin: Option<Option<&str>>| DeviceChange {
        auto_update: None,
        assigned_channel: channel.map(|c| c.map(str::to_owned)),
        pinned_version: pin.map(|p| p.map(str::to_owned)),
    };
    assert!(matches!(
        store
            .update_device("door-sensor", "d1", &change(Some(Some("beta")), None))
            .await,
        Err(StoreError::NotFound)
    ));
    fleet(store).await;
    let d = store
        .update_device("door-sensor", "d1", &change(Some(Some("beta")), None))
        .await
        .unwrap();
    assert_eq!(d.assigned_channel.as_deref(), Some("beta"));
    assert_eq!(d.channel, "stable", "what the device asks for is kept");
    let d = store
        .update_device("door-sensor", "d1", &change(None, Some(Some("1.0.0"))))
        .await
        .unwrap();
    assert_eq!(
        (d.assigned_channel.as_deref(), d.pinned_version.as_deref()),
        (Some("beta"), Some("1.0.0")),
        "a change leaves the fields it does not name"
    );
    // A sighting changes neither.
    store
        .record_seen(
            &[seen("door-sensor", "d1", Some("2.0.0"), "stable", T0 + 200)],
            None,
        )
        .await
        .unwrap();
    let d = store
        .update_device("door-sensor", "d1", &change(Some(None), None))
        .await
        .unwrap();
    assert_eq!(
        (d.assigned_channel, d.pinned_version.as_deref()),
        (None, Some("1.0.0"))
    );
    let d = store
        .update_device("door-sensor", "d1", &change(None, Some(None)))
        .await
        .unwrap();
    assert_eq!(d.pinned_version, None);
}

pub async fn deleting_a_device_forgets_its_row_and_tags(store: &dyn Store) {
    fleet(store).await;
    store
        .tag_devices("door-sensor", &one("d1"), "canary")
        .await
        .unwrap();
    assert!(store.delete_device("door-sensor", "d1").await.unwrap());
    assert!(!store.delete_device("door-sensor", "d1").await.unwrap());
    assert_eq!(store.get_device("door-sensor", "d1").await.unwrap(), None);
    assert!(store.get_device("other", "d1").await.unwrap().is_some());
    // Seen again, it starts afresh: no tag comes back.
    store
        .record_seen(
            &[seen("door-sensor", "d1", Some("1.0.0"), "stable", T0 + 300)],
            None,
        )
        .await
        .unwrap();
    let d = store
        .get_device("door-sensor", "d1")
        .await
        .unwrap()
        .unwrap();
    assert!(d.tags.is_empty());
    assert_eq!(d.first_seen, T0 + 300);
}

pub async fn device_controls_hold_only_devices_with_something_set(store: &dyn Store) {
    fleet(store).await;
    assert!(
        store
            .device_controls("door-sensor")
            .await
            .unwrap()
            .is_empty()
    );
    store
        .tag_devices("door-sensor", &one("d2"), "b")
        .await
        .unwrap();
    store
        .tag_devices("door-sensor", &one("d2"), "a")
        .await
        .unwrap();
    let pin = DeviceChange {
        pinned_version: Some(Some("1.0.0".into())),
        ..DeviceChange::default()
    };
    store
        .update_device("door-sensor", "d3", &pin)
        .await
        .unwrap();
    let moved = DeviceChange {
        assigned_channel: Some(Some("beta".into())),
        ..DeviceChange::default()
    };
    store
        .update_device("door-sensor", "d2", &moved)
        .await
        .unwrap();
    // Auto-update alone is not something the check path obeys.
    store
        .update_device("door-sensor", "d4", &auto_update(true))
        .await
        .unwrap();
    assert_eq!(
        store.device_controls("door-sensor").await.unwrap(),
        [
            DeviceControls {
                device: "d2".into(),
                tags: vec!["a".into(), "b".into()],
                assigned_channel: Some("beta".into()),
                pinned_version: None,
            },
            DeviceControls {
                device: "d3".into(),
                tags: vec![],
                assigned_channel: None,
                pinned_version: Some("1.0.0".into()),
            },
        ]
    );
    assert!(store.device_controls("other").await.unwrap().is_empty());
}

pub async fn sightings_record_protocol_and_address(store: &dyn Store) {
    let mut first = seen("door-sensor", "d1", Some("1.0.0"), "stable", T0);
    first.protocol = Some("arduino");
    first.remote_addr = Some("192.0.2.7".parse().unwrap());
    store.record_seen(&[first], None).await.unwrap();
    let d = store
        .get_device("door-sensor", "d1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.protocol.as_deref(), Some("arduino"));
    assert_eq!(d.remote_address.as_deref(), Some("192.0.2.7"));
    // A report's sighting names no protocol: the check-in's stays.
    store
        .record_seen(
            &[seen("door-sensor", "d1", Some("1.1.0"), "stable", T0 + 5)],
            None,
        )
        .await
        .unwrap();
    let d = store
        .get_device("door-sensor", "d1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.protocol.as_deref(), Some("arduino"));
    assert_eq!(d.current_version.as_deref(), Some("1.1.0"));
    // A later check-in over another protocol replaces both; an older one changes nothing.
    let mut native = seen("door-sensor", "d1", None, "stable", T0 + 10);
    native.protocol = Some("native");
    native.remote_addr = Some("2001:db8::1".parse().unwrap());
    let mut stale = seen("door-sensor", "d1", None, "stable", T0 + 1);
    stale.protocol = Some("thinx");
    store.record_seen(&[native], None).await.unwrap();
    store.record_seen(&[stale], None).await.unwrap();
    let d = store
        .get_device("door-sensor", "d1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.protocol.as_deref(), Some("native"));
    assert_eq!(d.remote_address.as_deref(), Some("2001:db8::1"));
}

/// Before the registry, an ota-backend firmware without an `all` rule let no device in; now no
/// `all` rule means open, so migration 0009 writes the closed firmwares' rule. Firmwares opened
/// with `allow all` and products without a key are left as they were, and devices keep their
/// rows.
pub async fn migration_0009_keeps_closed_firmwares_closed(fresh: Fresh) {
    let migrator = sqlx::migrate::Migrator::new(migrations_dir(fresh.backend))
        .await
        .unwrap();
    let pool = raw_pool(&fresh.url).await;
    // Everything before the registry (0008 is another area's, when it exists).
    migrator.run_to(8, &pool).await.unwrap();
    for statement in [
        "INSERT INTO product_keys (product, key_sha256, created_at) VALUES ('closed', 'h1', 1)",
        "INSERT INTO product_keys (product, key_sha256, created_at) VALUES ('opened', 'h2', 1)",
        "INSERT INTO device_access (product, device, access, updated_at) \
         VALUES ('opened', 'all', 'allow', 2)",
        "INSERT INTO device_access (product, device, access, updated_at) \
         VALUES ('closed', 'dev-1', 'allow', 2)",
        "INSERT INTO devices (product, id, channel, first_seen, last_seen) \
         VALUES ('plain', 'd1', 'stable', 1, 1)",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
    SqlStore::migrate(&fresh.url).await.unwrap();
    let store: &dyn Store = &SqlStore::connect(&fresh.url).await.unwrap();
    let rules = |rules: &[(&str, Access)]| -> Vec<(String, Access)> {
        rules.iter().map(|(d, a)| ((*d).to_owned(), *a)).collect()
    };
    assert_eq!(
        store.device_access("closed").await.unwrap(),
        rules(&[("all", Access::Deny), ("dev-1", Access::Allow)])
    );
    assert_eq!(
        store.device_access("opened").await.unwrap(),
        rules(&[("all", Access::Allow)])
    );
    assert!(store.device_access("plain").await.unwrap().is_empty());
    let d1 = store.get_device("plain", "d1").await.unwrap().unwrap();
    assert_eq!(
        (d1.protocol, d1.tags, d1.pinned_version, d1.assigned_channel),
        (None, vec![], None, None)
    );
}
