//! Products, artifacts and catalogue versions ([`otter_store::ProductStore`]).

use super::*;

pub async fn products_create_get_list(store: &dyn Store) {
    assert!(store.all_products().await.unwrap().is_empty());
    let door = product("door-sensor", Scheme::Semver);
    let gate = product("gate", Scheme::Opaque);
    let attic = product("attic", Scheme::Lexical);
    for p in [&door, &gate, &attic] {
        store.create_product(p).await.unwrap();
    }

    assert_eq!(store.get_product("gate").await.unwrap(), Some(gate.clone()));
    assert_eq!(
        store.get_product("attic").await.unwrap(),
        Some(attic.clone())
    );
    assert_eq!(store.get_product("nope").await.unwrap(), None);

    let by_name = vec![attic, door, gate];
    assert_eq!(store.all_products().await.unwrap(), by_name);
    let page = store.list_products(&first(10)).await.unwrap();
    assert_eq!(page.items, by_name);
    assert_eq!(page.next_cursor, None);
}

pub async fn products_are_unique(store: &dyn Store) {
    store
        .create_product(&product("door-sensor", Scheme::Semver))
        .await
        .unwrap();
    let err = store
        .create_product(&Product {
            created_at: T0 + 5,
            ..product("door-sensor", Scheme::Opaque)
        })
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict(what) => assert_eq!(what, "product"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    // The first one is untouched.
    assert_eq!(
        store.get_product("door-sensor").await.unwrap(),
        Some(product("door-sensor", Scheme::Semver))
    );
    assert_eq!(store.all_products().await.unwrap().len(), 1);
}

pub async fn products_paginate(store: &dyn Store) {
    for name in ["e", "c", "a", "d", "b"] {
        store
            .create_product(&product(name, Scheme::Semver))
            .await
            .unwrap();
    }
    let names = |page: &Page<Product>| {
        page.items
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
    };

    let p1 = store.list_products(&first(2)).await.unwrap();
    assert_eq!(names(&p1), ["a", "b"]);
    assert!(p1.next_cursor.is_some());
    let p2 = store
        .list_products(&after(2, &p1.next_cursor))
        .await
        .unwrap();
    assert_eq!(names(&p2), ["c", "d"]);
    assert!(p2.next_cursor.is_some());
    let p3 = store
        .list_products(&after(2, &p2.next_cursor))
        .await
        .unwrap();
    assert_eq!(names(&p3), ["e"]);
    assert_eq!(p3.next_cursor, None);

    // A last page that is exactly full has no next cursor either.
    let p = store.list_products(&first(5)).await.unwrap();
    assert_eq!(names(&p), ["a", "b", "c", "d", "e"]);
    assert_eq!(p.next_cursor, None);
    let p = store.list_products(&first(4)).await.unwrap();
    let rest = store
        .list_products(&after(4, &p.next_cursor))
        .await
        .unwrap();
    assert_eq!(names(&rest), ["e"]);
    assert_eq!(rest.next_cursor, None);
}

/// Lists sort and page by bytes, as SQLite does, whatever the PostgreSQL server's locale (the
/// test cluster sorts text like en-US, where "a" < "B").
pub async fn lists_sort_byte_wise(store: &dyn Store) {
    let names = ["b", "B", "a_1", "a-2", "A", "é", "Z", "aa"];
    for name in names {
        store
            .create_product(&product(name, Scheme::Semver))
            .await
            .unwrap();
    }
    let mut expected: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    expected.sort(); // byte-wise: "A" "B" "Z" "a-2" "a_1" "aa" "b" "é"
    let all: Vec<String> = store
        .all_products()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(all, expected);
    let mut paged = Vec::new();
    let mut page = store.list_products(&first(3)).await.unwrap();
    loop {
        paged.extend(page.items.iter().map(|p| p.name.clone()));
        if page.next_cursor.is_none() {
            break;
        }
        page = store
            .list_products(&after(3, &page.next_cursor))
            .await
            .unwrap();
    }
    assert_eq!(paged, expected);

    let batch: Vec<DeviceSeen> = names
        .iter()
        .map(|id| seen("door-sensor", id, None, "stable", T0))
        .collect();
    store.record_seen(&batch, None).await.unwrap();
    let mut ids = Vec::new();
    let mut page = store
        .list_devices("door-sensor", &DeviceFilter::default(), &first(3))
        .await
        .unwrap();
    loop {
        ids.extend(page.items.iter().map(|d| d.id.clone()));
        if page.next_cursor.is_none() {
            break;
        }
        page = store
            .list_devices(
                "door-sensor",
                &DeviceFilter::default(),
                &after(3, &page.next_cursor),
            )
            .await
            .unwrap();
    }
    assert_eq!(ids, expected);
}

pub async fn artifacts_are_content_addressed(store: &dyn Store) {
    let original = artifact(7, "fw-1.0.0.bin");
    assert_eq!(store.get_artifact(&original.sha256).await.unwrap(), None);
    assert_eq!(store.put_artifact(&original).await.unwrap(), original);

    // The same bytes uploaded again under another name and time: the first record stands.
    let again = Artifact {
        filename: "renamed.bin".to_owned(),
        created_at: original.created_at + 1000,
        ..original.clone()
    };
    assert_eq!(store.put_artifact(&again).await.unwrap(), original);
    assert_eq!(
        store.get_artifact(&original.sha256).await.unwrap(),
        Some(original.clone())
    );

    let other = artifact(8, "other.bin");
    assert_eq!(store.put_artifact(&other).await.unwrap(), other);
    assert_eq!(
        store.get_artifact(&other.sha256).await.unwrap(),
        Some(other)
    );
    assert_eq!(
        store.get_artifact(&original.sha256).await.unwrap(),
        Some(original)
    );
}

/// Every product's catalogue version, sorted.
async fn sorted_versions(store: &dyn Store) -> Vec<(String, i64)> {
    sorted_changes(store, -1).await
}

/// The products changed after `tick`, sorted.
async fn sorted_changes(store: &dyn Store, tick: i64) -> Vec<(String, i64)> {
    let mut v = store.catalog_changes(tick).await.unwrap().changed;
    v.sort();
    v
}

pub async fn catalog_versions_count_bumps_per_product(store: &dyn Store) {
    assert!(sorted_versions(store).await.is_empty());
    // The counter starts at 1 and goes up by one per bump, separately for each product.
    assert_eq!(store.bump_catalog("door-sensor").await.unwrap(), 1);
    assert_eq!(
        sorted_versions(store).await,
        [("door-sensor".to_owned(), 1)]
    );
    assert_eq!(store.bump_catalog("door-sensor").await.unwrap(), 2);
    assert_eq!(store.bump_catalog("gate").await.unwrap(), 1);
    assert_eq!(store.bump_catalog("door-sensor").await.unwrap(), 3);
    // One product's version, read alone; 0 for one never bumped.
    assert_eq!(store.catalog_version("door-sensor").await.unwrap(), 3);
    assert_eq!(store.catalog_version("gate").await.unwrap(), 1);
    assert_eq!(store.catalog_version("never").await.unwrap(), 0);
    assert_eq!(
        sorted_versions(store).await,
        [("door-sensor".to_owned(), 3), ("gate".to_owned(), 1)]
    );
    // A product need not exist yet (the bump may come first), and names are exact.
    assert_eq!(store.bump_catalog("Door-Sensor").await.unwrap(), 1);
    assert_eq!(
        sorted_versions(store).await,
        [
            ("Door-Sensor".to_owned(), 1),
            ("door-sensor".to_owned(), 3),
            ("gate".to_owned(), 1)
        ]
    );
}

/// Bumps from many connections at once (several nodes publishing) each get their own number.
pub async fn concurrent_catalog_bumps_are_atomic(store: &dyn Store) {
    const BUMPS: i64 = 24;
    let bumps =
        (0..BUMPS).map(|i| store.bump_catalog(if i % 3 == 0 { "gate" } else { "door-sensor" }));
    let results = futures_util::future::join_all(bumps).await;
    let (mut door, mut gate) = (Vec::new(), Vec::new());
    for (i, result) in results.into_iter().enumerate() {
        let version = result.unwrap_or_else(|e| panic!("bump {i}: {e}"));
        if i % 3 == 0 {
            gate.push(version)
        } else {
            door.push(version)
        }
    }
    door.sort_unstable();
    gate.sort_unstable();
    assert_eq!(door, (1..=BUMPS * 2 / 3).collect::<Vec<_>>());
    assert_eq!(gate, (1..=BUMPS / 3).collect::<Vec<_>>());
    assert_eq!(
        sorted_versions(store).await,
        [
            ("door-sensor".to_owned(), BUMPS * 2 / 3),
            ("gate".to_owned(), BUMPS / 3)
        ]
    );
}

/// A poll asks only for what changed after the tick it last saw: an idle poll gets nothing, a
/// bump shows up once, whatever the number of products.
pub async fn catalog_changes_follow_the_clock(store: &dyn Store) {
    let start = store.catalog_changes(-1).await.unwrap();
    assert_eq!(start, CatalogChanges::default());
    for name in ["a", "b", "c"] {
        store.bump_catalog(name).await.unwrap();
    }
    let after_three = store.catalog_changes(start.tick).await.unwrap();
    assert_eq!(after_three.tick, 3);
    assert_eq!(after_three.changed.len(), 3);

    let idle = store.catalog_changes(after_three.tick).await.unwrap();
    assert_eq!(
        idle,
        CatalogChanges {
            tick: 3,
            changed: vec![]
        }
    );

    store.bump_catalog("b").await.unwrap();
    store.bump_catalog("b").await.unwrap();
    let next = store.catalog_changes(idle.tick).await.unwrap();
    assert_eq!(next.tick, 5);
    assert_eq!(next.changed, [("b".to_owned(), 3)]);
    // Older ticks still see everything changed since them.
    assert_eq!(
        sorted_changes(store, 2).await,
        [("b".to_owned(), 3), ("c".to_owned(), 1)]
    );
}
