//! Releases ([`otter_store::ReleaseStore`]).

use super::*;

pub async fn releases_round_trip_with_increasing_seq(store: &dyn Store) {
    store
        .create_product(&product("door-sensor", Scheme::Semver))
        .await
        .unwrap();
    let a1 = store.put_artifact(&artifact(1, "a.bin")).await.unwrap();
    let a2 = store.put_artifact(&artifact(2, "b.bin")).await.unwrap();

    let plain = store
        .create_release(&release("door-sensor", "1.0.0", &a1))
        .await
        .unwrap();
    let full_input = Release {
        channels: vec!["beta".to_owned(), "stable".to_owned()],
        min_source_version: Some("0.9.0".to_owned()),
        mandatory: true,
        title: Some("Faster pairing".to_owned()),
        summary: Some("Pairs in half the time; fixes the stuck LED.".to_owned()),
        release_notes_url: Some("https://example.com/notes/1.1.0".to_owned()),
        metadata: json!({
            "build": 4711,
            "signed": true,
            "boards": ["rev-a", "rev-b"],
            "nested": { "x": null, "y": 1.5 }
        }),
        created_at: T0 + 200,
        ..release("door-sensor", "1.1.0", &a2)
    };
    let full = store.create_release(&full_input).await.unwrap();

    assert!(plain.seq > 0, "seq {} should be positive", plain.seq);
    assert!(
        full.seq > plain.seq,
        "seq should increase: {} then {}",
        plain.seq,
        full.seq
    );
    // Apart from the seq, what was given is what is returned…
    assert_eq!(
        plain,
        Release {
            seq: plain.seq,
            ..release("door-sensor", "1.0.0", &a1)
        }
    );
    assert_eq!(
        full,
        Release {
            seq: full.seq,
            ..full_input
        }
    );
    // …and what is read back, with the artifact joined in.
    assert_eq!(
        store.get_release("door-sensor", "1.0.0").await.unwrap(),
        Some(plain.clone())
    );
    let read = store
        .get_release("door-sensor", "1.1.0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, full);
    assert_eq!(read.artifact, a2);
    assert_eq!(read.channels, ["beta", "stable"]);
    assert_eq!(read.metadata["boards"], json!(["rev-a", "rev-b"]));

    assert_eq!(
        store.get_release("door-sensor", "9.9.9").await.unwrap(),
        None
    );
    assert_eq!(store.get_release("nope", "1.0.0").await.unwrap(), None);

    // all_releases is in publish order.
    assert_eq!(
        store.all_releases("door-sensor").await.unwrap(),
        vec![plain, full]
    );
    assert!(store.all_releases("nope").await.unwrap().is_empty());
}

pub async fn release_versions_are_unique_per_product(store: &dyn Store) {
    for name in ["door-sensor", "gate"] {
        store
            .create_product(&product(name, Scheme::Semver))
            .await
            .unwrap();
    }
    let a1 = store.put_artifact(&artifact(1, "a.bin")).await.unwrap();
    let a2 = store.put_artifact(&artifact(2, "b.bin")).await.unwrap();
    let first = store
        .create_release(&release("door-sensor", "1.0.0", &a1))
        .await
        .unwrap();

    // Same version again, even with another artifact: refused, the first one stands.
    let err = store
        .create_release(&release("door-sensor", "1.0.0", &a2))
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict(what) => assert_eq!(what, "release"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(
        store.get_release("door-sensor", "1.0.0").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.all_releases("door-sensor").await.unwrap(),
        vec![first]
    );

    // Another product may use the same version (and the same artifact).
    let gate = store
        .create_release(&release("gate", "1.0.0", &a1))
        .await
        .unwrap();
    assert_eq!(
        store.get_release("gate", "1.0.0").await.unwrap(),
        Some(gate)
    );
}

pub async fn releases_need_a_known_product_and_artifact(store: &dyn Store) {
    store
        .create_product(&product("door-sensor", Scheme::Semver))
        .await
        .unwrap();
    let stored = store.put_artifact(&artifact(1, "a.bin")).await.unwrap();
    let unknown_artifact = artifact(2, "never-uploaded.bin");

    assert!(
        store
            .create_release(&release("door-sensor", "1.0.0", &unknown_artifact))
            .await
            .is_err()
    );
    assert!(
        store
            .create_release(&release("nope", "1.0.0", &stored))
            .await
            .is_err()
    );
    assert_eq!(
        store.get_release("door-sensor", "1.0.0").await.unwrap(),
        None
    );
    assert!(store.all_releases("door-sensor").await.unwrap().is_empty());
    assert!(store.all_releases("nope").await.unwrap().is_empty());
}

pub async fn releases_list_newest_first_and_paginate(store: &dyn Store) {
    for name in ["door-sensor", "gate"] {
        store
            .create_product(&product(name, Scheme::Semver))
            .await
            .unwrap();
    }
    // Interleave another product's releases to show they stay out of the list.
    let door1 = publish(store, "door-sensor", &["1.0.0", "1.1.0"]).await;
    publish(store, "gate", &["5.0.0"]).await;
    let door2 = publish(store, "door-sensor", &["1.2.0", "2.0.0", "2.1.0"]).await;
    let all: Vec<Release> = door1.into_iter().chain(door2).collect();
    let versions = |page: &Page<Release>| {
        page.items
            .iter()
            .map(|r| r.version.clone())
            .collect::<Vec<_>>()
    };

    let p1 = store.list_releases("door-sensor", &first(2)).await.unwrap();
    assert_eq!(versions(&p1), ["2.1.0", "2.0.0"]);
    assert_eq!(p1.items[0], all[4], "list items are full, joined releases");
    assert!(p1.next_cursor.is_some());
    let p2 = store
        .list_releases("door-sensor", &after(2, &p1.next_cursor))
        .await
        .unwrap();
    assert_eq!(versions(&p2), ["1.2.0", "1.1.0"]);
    assert!(p2.next_cursor.is_some());
    let p3 = store
        .list_releases("door-sensor", &after(2, &p2.next_cursor))
        .await
        .unwrap();
    assert_eq!(versions(&p3), ["1.0.0"]);
    assert_eq!(p3.next_cursor, None);

    let everything = store
        .list_releases("door-sensor", &first(100))
        .await
        .unwrap();
    let newest_first: Vec<Release> = all.iter().rev().cloned().collect();
    assert_eq!(everything.items, newest_first);
    assert_eq!(everything.next_cursor, None);

    let gate = store.list_releases("gate", &first(100)).await.unwrap();
    assert_eq!(versions(&gate), ["5.0.0"]);
    let none = store.list_releases("nope", &first(100)).await.unwrap();
    assert!(none.items.is_empty());
    assert_eq!(none.next_cursor, None);
}

pub async fn releases_reject_invalid_cursors(store: &dyn Store) {
    store
        .create_product(&product("door-sensor", Scheme::Semver))
        .await
        .unwrap();
    publish(store, "door-sensor", &["1.0.0"]).await;
    for cursor in ["not-a-cursor", "", "1.0.0"] {
        let err = store
            .list_releases(
                "door-sensor",
                &PageRequest {
                    limit: 10,
                    cursor: Some(cursor.to_owned()),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidCursor),
            "cursor {cursor:?}: expected InvalidCursor, got {err:?}"
        );
    }
}

pub async fn patch_release_changes_only_given_flags(store: &dyn Store) {
    store
        .create_product(&product("door-sensor", Scheme::Semver))
        .await
        .unwrap();
    let a = store.put_artifact(&artifact(1, "a.bin")).await.unwrap();
    let created = store
        .create_release(&Release {
            mandatory: true,
            title: Some("Hotfix".to_owned()),
            ..release("door-sensor", "1.0.0", &a)
        })
        .await
        .unwrap();

    let yanked = store
        .patch_release(
            "door-sensor",
            "1.0.0",
            &ReleasePatch {
                yanked: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let expected = Release {
        yanked: true,
        ..created.clone()
    };
    assert_eq!(yanked, expected);
    assert_eq!(
        store.get_release("door-sensor", "1.0.0").await.unwrap(),
        Some(expected.clone())
    );

    let flipped = store
        .patch_release(
            "door-sensor",
            "1.0.0",
            &ReleasePatch {
                deprecated: Some(true),
                yanked: Some(false),
                mandatory: Some(false),
            },
        )
        .await
        .unwrap();
    let expected = Release {
        deprecated: true,
        yanked: false,
        mandatory: false,
        ..created.clone()
    };
    assert_eq!(flipped, expected);
    assert_eq!(
        store.get_release("door-sensor", "1.0.0").await.unwrap(),
        Some(expected.clone())
    );

    // An empty patch changes nothing.
    assert_eq!(
        store
            .patch_release("door-sensor", "1.0.0", &ReleasePatch::default())
            .await
            .unwrap(),
        expected
    );

    for (product, version) in [("door-sensor", "9.9.9"), ("nope", "1.0.0")] {
        let err = store
            .patch_release(
                product,
                version,
                &ReleasePatch {
                    yanked: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::NotFound),
            "{product} {version}: expected NotFound, got {err:?}"
        );
    }
}
