//! Devices, their sightings and their reports ([`otter_store::DeviceStore`]).

use super::*;

pub async fn devices(store: &dyn Store) -> Vec<Device> {
    store
        .list_devices("door-sensor", &DeviceFilter::default(), &first(100))
        .await
        .unwrap()
        .items
}

/// Batches from several nodes land in any order: a sighting older than the stored one changes
/// nothing, so last_seen never goes back and a stale check-in never overwrites a newer version.
pub async fn older_sightings_never_win(store: &dyn Store) {
    store
        .record_seen(
            &[seen("door-sensor", "dev-1", Some("1.1.0"), "beta", T0 + 10)],
            None,
        )
        .await
        .unwrap();
    store
        .record_seen(
            &[seen(
                "door-sensor",
                "dev-1",
                Some("1.0.0"),
                "stable",
                T0 + 5,
            )],
            None,
        )
        .await
        .unwrap();
    let dev1 = devices(store).await.remove(0);
    assert_eq!(dev1.current_version.as_deref(), Some("1.1.0"));
    assert_eq!(dev1.channel, "beta");
    assert_eq!((dev1.first_seen, dev1.last_seen), (T0 + 10, T0 + 10));
    // Within the same second the later write wins (one node's queue keeps its order).
    store
        .record_seen(
            &[seen("door-sensor", "dev-1", Some("1.2.0"), "beta", T0 + 10)],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        devices(store).await[0].current_version.as_deref(),
        Some("1.2.0")
    );
}

pub async fn record_seen_upserts(store: &dyn Store) {
    store
        .record_seen(
            &[
                seen("door-sensor", "dev-1", Some("1.0.0"), "stable", T0),
                seen("door-sensor", "dev-2", None, "beta", T0 + 1),
            ],
            None,
        )
        .await
        .unwrap();
    let list = devices(store).await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, "dev-1");
    assert_eq!(list[0].current_version.as_deref(), Some("1.0.0"));
    assert_eq!(list[0].current_hash.as_deref(), Some("hash-of-1.0.0"));
    assert_eq!(list[0].channel, "stable");
    assert_eq!((list[0].first_seen, list[0].last_seen), (T0, T0));
    assert_eq!(list[1].id, "dev-2");
    assert_eq!(list[1].current_version, None);
    assert_eq!(list[1].current_hash, None);
    assert_eq!((list[1].first_seen, list[1].last_seen), (T0 + 1, T0 + 1));

    // One batch, dev-1 twice: a new version, then a sighting without one on another channel.
    // The later sighting wins, but does not forget the version; first_seen is kept.
    store
        .record_seen(
            &[
                seen("door-sensor", "dev-1", Some("1.1.0"), "stable", T0 + 10),
                seen("door-sensor", "dev-3", Some("0.9.0"), "stable", T0 + 11),
                seen("door-sensor", "dev-1", None, "beta", T0 + 20),
                // Same id under another product is another device.
                seen("gate", "dev-1", Some("5.0.0"), "stable", T0 + 30),
            ],
            None,
        )
        .await
        .unwrap();
    let list = devices(store).await;
    let ids: Vec<&str> = list.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["dev-1", "dev-2", "dev-3"]);
    let dev1 = &list[0];
    assert_eq!(dev1.product, "door-sensor");
    assert_eq!(dev1.current_version.as_deref(), Some("1.1.0"));
    assert_eq!(dev1.current_hash.as_deref(), Some("hash-of-1.1.0"));
    assert_eq!(dev1.channel, "beta");
    assert_eq!(dev1.first_seen, T0);
    assert_eq!(dev1.last_seen, T0 + 20);
    // dev-2 was not in the batch and is unchanged.
    assert_eq!(list[1].last_seen, T0 + 1);
    assert_eq!(list[1].channel, "beta");

    let gate = store
        .list_devices("gate", &DeviceFilter::default(), &first(100))
        .await
        .unwrap()
        .items;
    assert_eq!(gate.len(), 1);
    assert_eq!(gate[0].current_version.as_deref(), Some("5.0.0"));
    assert_eq!((gate[0].first_seen, gate[0].last_seen), (T0 + 30, T0 + 30));

    // A device that had no version reports one later.
    store
        .record_seen(
            &[seen(
                "door-sensor",
                "dev-2",
                Some("2.0.0"),
                "stable",
                T0 + 40,
            )],
            None,
        )
        .await
        .unwrap();
    let dev2 = devices(store).await.remove(1);
    assert_eq!(dev2.current_version.as_deref(), Some("2.0.0"));
    assert_eq!(dev2.channel, "stable");
    assert_eq!((dev2.first_seen, dev2.last_seen), (T0 + 1, T0 + 40));

    // An empty batch is fine.
    store.record_seen(&[], None).await.unwrap();
    assert_eq!(devices(store).await.len(), 3);

    // A new device seen twice in one batch (written once) keeps its first sighting's time and
    // the version it said before a sighting that said none.
    store
        .record_seen(
            &[
                seen("door-sensor", "dev-4", Some("1.0.0"), "stable", T0 + 50),
                seen("door-sensor", "dev-4", None, "beta", T0 + 55),
            ],
            None,
        )
        .await
        .unwrap();
    let dev4 = devices(store).await.remove(3);
    assert_eq!(dev4.current_version.as_deref(), Some("1.0.0"));
    assert_eq!(dev4.channel, "beta");
    assert_eq!((dev4.first_seen, dev4.last_seen), (T0 + 50, T0 + 55));
}

/// `--max-devices-per-product`: a product at its cap records no new device, while the devices
/// it knows go on updating and other products have their own room.
pub async fn new_devices_beyond_the_cap_are_not_recorded(store: &dyn Store) {
    let ids = |list: Vec<Device>| list.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let batch: Vec<DeviceSeen> = ["e", "b", "d", "a", "c"]
        .into_iter()
        .map(|id| seen("door-sensor", id, Some("1.0.0"), "stable", T0))
        .collect();
    // Five new devices with room for three: three get in (the first by id), two are counted.
    let over = store.record_seen(&batch, Some(3)).await.unwrap();
    assert_eq!(over, OverLimit::from([("door-sensor".to_owned(), 2)]));
    assert_eq!(ids(devices(store).await), ["a", "b", "c"]);

    let over = store
        .record_seen(
            &[
                seen("door-sensor", "a", Some("2.0.0"), "beta", T0 + 10),
                seen("door-sensor", "z", Some("2.0.0"), "stable", T0 + 10),
                seen("gate", "a", Some("5.0.0"), "stable", T0 + 10),
            ],
            Some(3),
        )
        .await
        .unwrap();
    assert_eq!(over, OverLimit::from([("door-sensor".to_owned(), 1)]));
    let list = devices(store).await;
    assert_eq!(list[0].current_version.as_deref(), Some("2.0.0"));
    assert_eq!(
        (list[0].channel.as_str(), list[0].last_seen),
        ("beta", T0 + 10)
    );
    assert_eq!(ids(list), ["a", "b", "c"]);
    let gate = store
        .list_devices("gate", &DeviceFilter::default(), &first(10))
        .await
        .unwrap()
        .items;
    assert_eq!(ids(gate), ["a"]);

    // A raised cap lets the next one in.
    let over = store
        .record_seen(
            &[seen("door-sensor", "z", None, "stable", T0 + 20)],
            Some(4),
        )
        .await
        .unwrap();
    assert!(over.is_empty(), "{over:?}");
    assert_eq!(ids(devices(store).await), ["a", "b", "c", "z"]);
}

pub async fn a_sighting_naming_what_runs_replaces_version_and_hash(store: &dyn Store) {
    store
        .record_seen(
            &[seen("door-sensor", "dev-1", Some("1.0.0"), "stable", T0)],
            None,
        )
        .await
        .unwrap();
    // An image the server could not name: known by its hash alone, not as 1.0.0 any more.
    let mut unknown = seen("door-sensor", "dev-1", None, "stable", T0 + 1);
    unknown.current_hash = Some("ab".repeat(32));
    store.record_seen(&[unknown], None).await.unwrap();
    let dev = devices(store).await.remove(0);
    assert_eq!(dev.current_version, None);
    assert_eq!(dev.current_hash, Some("ab".repeat(32)));
    // A version alone (a device that reports versions): the old hash goes with the old image.
    let mut named = seen("door-sensor", "dev-1", Some("2.0.0"), "stable", T0 + 2);
    named.current_hash = None;
    store.record_seen(&[named], None).await.unwrap();
    let dev = devices(store).await.remove(0);
    assert_eq!(dev.current_version.as_deref(), Some("2.0.0"));
    assert_eq!(dev.current_hash, None);
}

pub async fn devices_paginate_by_id(store: &dyn Store) {
    let batch: Vec<DeviceSeen> = ["d", "b", "e", "a", "c"]
        .into_iter()
        .map(|id| seen("door-sensor", id, Some("1.0.0"), "stable", T0))
        .chain([seen("gate", "aa", None, "stable", T0)])
        .collect();
    store.record_seen(&batch, None).await.unwrap();
    let ids = |page: &Page<Device>| page.items.iter().map(|d| d.id.clone()).collect::<Vec<_>>();

    let p1 = store
        .list_devices("door-sensor", &DeviceFilter::default(), &first(2))
        .await
        .unwrap();
    assert_eq!(ids(&p1), ["a", "b"]);
    let p2 = store
        .list_devices(
            "door-sensor",
            &DeviceFilter::default(),
            &after(2, &p1.next_cursor),
        )
        .await
        .unwrap();
    assert_eq!(ids(&p2), ["c", "d"]);
    let p3 = store
        .list_devices(
            "door-sensor",
            &DeviceFilter::default(),
            &after(2, &p2.next_cursor),
        )
        .await
        .unwrap();
    assert_eq!(ids(&p3), ["e"]);
    assert_eq!(p3.next_cursor, None);
}

pub async fn reports_list_newest_first_and_filter_by_device(store: &dyn Store) {
    let inputs = [
        report("dev-1", "1.1.0", ReportState::Downloading, T0),
        report("dev-2", "1.1.0", ReportState::Downloading, T0 + 1),
        report("dev-1", "1.1.0", ReportState::Installed, T0 + 2),
        NewReport {
            message: Some("checksum mismatch".to_owned()),
            ..report("dev-2", "1.1.0", ReportState::Failed, T0 + 3)
        },
        report("dev-1", "1.2.0", ReportState::RolledBack, T0 + 4),
    ];
    let mut stored = Vec::new();
    for input in &inputs {
        let r = store.insert_report(input).await.unwrap();
        assert_eq!(
            (
                &r.product,
                &r.device,
                &r.version,
                r.state,
                &r.message,
                r.created_at
            ),
            (
                &input.product,
                &input.device,
                &input.version,
                input.state,
                &input.message,
                input.created_at
            )
        );
        stored.push(r);
    }
    for pair in stored.windows(2) {
        assert!(pair[1].id > pair[0].id, "report ids should increase");
    }
    // Another product's report stays out of door-sensor's lists.
    store
        .insert_report(&NewReport {
            product: "gate".to_owned(),
            ..report("dev-1", "5.0.0", ReportState::Installed, T0 + 5)
        })
        .await
        .unwrap();

    let all = store
        .list_reports("door-sensor", None, &first(100))
        .await
        .unwrap();
    let newest_first: Vec<_> = stored.iter().rev().cloned().collect();
    assert_eq!(all.items, newest_first);
    assert_eq!(all.next_cursor, None);

    let dev1 = store
        .list_reports("door-sensor", Some("dev-1"), &first(100))
        .await
        .unwrap();
    assert_eq!(
        dev1.items,
        vec![stored[4].clone(), stored[2].clone(), stored[0].clone()]
    );

    // Paging, with and without the device filter.
    let p1 = store
        .list_reports("door-sensor", None, &first(2))
        .await
        .unwrap();
    assert_eq!(
        p1.items,
        stored[3..].iter().rev().cloned().collect::<Vec<_>>()
    );
    let p2 = store
        .list_reports("door-sensor", None, &after(2, &p1.next_cursor))
        .await
        .unwrap();
    assert_eq!(
        p2.items,
        stored[1..3].iter().rev().cloned().collect::<Vec<_>>()
    );
    let p3 = store
        .list_reports("door-sensor", None, &after(2, &p2.next_cursor))
        .await
        .unwrap();
    assert_eq!(p3.items, vec![stored[0].clone()]);
    assert_eq!(p3.next_cursor, None);

    let d1 = store
        .list_reports("door-sensor", Some("dev-1"), &first(2))
        .await
        .unwrap();
    assert_eq!(d1.items, vec![stored[4].clone(), stored[2].clone()]);
    let d2 = store
        .list_reports("door-sensor", Some("dev-1"), &after(2, &d1.next_cursor))
        .await
        .unwrap();
    assert_eq!(d2.items, vec![stored[0].clone()]);
    assert_eq!(d2.next_cursor, None);

    let nobody = store
        .list_reports("door-sensor", Some("dev-9"), &first(100))
        .await
        .unwrap();
    assert!(nobody.items.is_empty());
    assert_eq!(nobody.next_cursor, None);
}

/// The dashboard's aggregate: versions counted most first (a device that never named its
/// version apart), devices seen since each time, and another product's devices left out.
pub async fn fleet_summary_counts_versions_and_recent_sightings(store: &dyn Store) {
    let empty = store
        .fleet_summary("door-sensor", &[T0, T0 + 50])
        .await
        .unwrap();
    assert_eq!(
        empty,
        FleetSummary {
            devices: 0,
            seen_since: vec![0, 0],
            versions: vec![],
        }
    );
    store
        .record_seen(
            &[
                seen("door-sensor", "a", Some("1.0.0"), "stable", T0 - 100),
                seen("door-sensor", "b", Some("1.1.0"), "stable", T0),
                seen("door-sensor", "c", Some("1.1.0"), "stable", T0 + 60),
                seen("door-sensor", "d", Some("1.0.0"), "stable", T0 + 10),
                seen("door-sensor", "e", None, "stable", T0 + 70),
                seen("door-sensor", "f", Some("1.2.0"), "beta", T0 + 80),
                seen("gate", "a", Some("1.1.0"), "stable", T0 + 90),
            ],
            None,
        )
        .await
        .unwrap();
    let summary = store
        .fleet_summary("door-sensor", &[T0, T0 + 60])
        .await
        .unwrap();
    assert_eq!(summary.devices, 6);
    assert_eq!(summary.seen_since, vec![5, 3]);
    assert_eq!(
        summary.versions,
        vec![
            (Some("1.0.0".to_owned()), 2),
            (Some("1.1.0".to_owned()), 2),
            (None, 1),
            (Some("1.2.0".to_owned()), 1),
        ]
    );
}

/// Failed and rolled-back reports since a time, newest first and capped; successes, older
/// failures and another product's stay out.
pub async fn recent_failures_are_failed_or_rolled_back_reports_since(store: &dyn Store) {
    let inputs = [
        report("dev-1", "1.1.0", ReportState::Failed, T0 - 10),
        report("dev-2", "1.1.0", ReportState::Failed, T0),
        report("dev-3", "1.1.0", ReportState::Installed, T0 + 1),
        report("dev-4", "1.1.0", ReportState::RolledBack, T0 + 2),
        report("dev-5", "1.1.0", ReportState::Downloading, T0 + 3),
        report("dev-6", "1.2.0", ReportState::Failed, T0 + 4),
    ];
    for input in &inputs {
        store.insert_report(input).await.unwrap();
    }
    store
        .insert_report(&NewReport {
            product: "gate".to_owned(),
            ..report("dev-7", "5.0.0", ReportState::Failed, T0 + 5)
        })
        .await
        .unwrap();
    let devices = |reports: Vec<otter_core::model::UpdateReport>| {
        reports
            .into_iter()
            .map(|r| (r.device, r.state))
            .collect::<Vec<_>>()
    };
    let recent = store.recent_failures("door-sensor", T0, 10).await.unwrap();
    assert_eq!(
        devices(recent),
        vec![
            ("dev-6".to_owned(), ReportState::Failed),
            ("dev-4".to_owned(), ReportState::RolledBack),
            ("dev-2".to_owned(), ReportState::Failed),
        ]
    );
    let capped = store.recent_failures("door-sensor", T0, 2).await.unwrap();
    assert_eq!(capped.len(), 2);
    assert!(
        store
            .recent_failures("door-sensor", T0 + 5, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn reports_reject_invalid_cursors(store: &dyn Store) {
    store
        .insert_report(&report("dev-1", "1.0.0", ReportState::Installed, T0))
        .await
        .unwrap();
    for device in [None, Some("dev-1")] {
        for cursor in ["not-a-cursor", "", "1.5"] {
            let err = store
                .list_reports(
                    "door-sensor",
                    device,
                    &PageRequest {
                        limit: 10,
                        cursor: Some(cursor.to_owned()),
                    },
                )
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidCursor),
                "device {device:?} cursor {cursor:?}: expected InvalidCursor, got {err:?}"
            );
        }
    }
}

pub async fn devices_keep_attributes_and_auto_update(store: &dyn Store) {
    assert_eq!(store.get_device("door-sensor", "d1").await.unwrap(), None);
    assert!(matches!(
        store
            .update_device("door-sensor", "d1", &auto_update(true))
            .await,
        Err(StoreError::NotFound)
    ));
    let mut sighting = seen("door-sensor", "d1", Some("1.0.0"), "stable", T0);
    sighting.attributes = Some(json!({"mac": "5C:CF:7F:12:34:56", "alias": "hall"}));
    store.record_seen(&[sighting], None).await.unwrap();
    let device = store
        .get_device("door-sensor", "d1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(device.attributes["alias"], "hall");
    assert!(!device.auto_update, "auto-update is off until turned on");

    let on = store
        .update_device("door-sensor", "d1", &auto_update(true))
        .await
        .unwrap();
    assert!(on.auto_update);
    // A sighting without attributes keeps them, and never touches auto-update; one with
    // attributes replaces them.
    store
        .record_seen(
            &[seen("door-sensor", "d1", Some("1.1.0"), "stable", T0 + 10)],
            None,
        )
        .await
        .unwrap();
    let device = store
        .get_device("door-sensor", "d1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(device.attributes["mac"], "5C:CF:7F:12:34:56");
    assert!(device.auto_update);
    assert_eq!(device.current_version.as_deref(), Some("1.1.0"));
    let mut renamed = seen("door-sensor", "d1", None, "stable", T0 + 20);
    renamed.attributes = Some(json!({"alias": "porch"}));
    store.record_seen(&[renamed], None).await.unwrap();
    let listed = store
        .list_devices("door-sensor", &DeviceFilter::default(), &first(10))
        .await
        .unwrap();
    assert_eq!(listed.items[0].attributes, json!({"alias": "porch"}));
    assert!(listed.items[0].auto_update);
    assert!(
        !store
            .update_device("door-sensor", "d1", &auto_update(false))
            .await
            .unwrap()
            .auto_update
    );
}
