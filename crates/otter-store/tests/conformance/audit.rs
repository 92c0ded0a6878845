//! The audit log ([`otter_store::AuditStore`]): appended, listed newest first with filters.

use super::*;

fn entry(actor: &str, role: Role, action: &str, target: &str, at: i64) -> NewAuditEntry {
    NewAuditEntry {
        at,
        actor: Actor {
            kind: ActorKind::Token,
            name: actor.to_owned(),
            role,
        },
        remote: Some("192.0.2.7:51234".to_owned()),
        request_id: Some(format!("req-{at}")),
        action: action.to_owned(),
        target: target.to_owned(),
        summary: None,
    }
}

/// The actions of a listing, in its order.
async fn actions(store: &dyn Store, filter: AuditFilter) -> Vec<String> {
    store
        .list_audit(&filter, &first(100))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.action)
        .collect()
}

pub async fn audit_entries_round_trip_newest_first(store: &dyn Store) {
    let mut publish = entry(
        "ci",
        Role::Publisher,
        "release.publish",
        "door-sensor/1.1.0",
        T0,
    );
    publish.summary = Some("published 1.1.0 on stable".to_owned());
    let stored = store.append_audit(&publish).await.unwrap();
    assert_eq!(
        (stored.actor.as_str(), stored.actor_kind, stored.role),
        ("ci", ActorKind::Token, Role::Publisher)
    );
    assert_eq!(stored.summary.as_deref(), Some("published 1.1.0 on stable"));
    assert_eq!(stored.request_id.as_deref(), Some("req-1700000000"));
    assert_eq!(stored.remote.as_deref(), Some("192.0.2.7:51234"));
    let mut anonymous = entry("root", Role::Admin, "token.create", "ci", T0 + 1);
    anonymous.remote = None;
    anonymous.request_id = None;
    store.append_audit(&anonymous).await.unwrap();
    let listed = store
        .list_audit(&AuditFilter::default(), &first(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    assert_eq!(listed.items[1], stored);
    assert_eq!(
        (
            listed.items[0].remote.as_deref(),
            listed.items[0].id > stored.id
        ),
        (None, true)
    );
}

pub async fn audit_filters_combine_and_paginate(store: &dyn Store) {
    for (i, (actor, action, target)) in [
        ("ci", "release.publish", "door-sensor/1.0.0"),
        ("ci", "release.publish", "door_sensor/1.0.0"),
        ("root", "release.patch", "door-sensor/1.0.0"),
        ("root", "token.create", "ci"),
        ("ci", "release.publish", "door-sensor-2/1.0.0"),
        ("ci", "release.publish", "door-sensor/1.1.0"),
    ]
    .into_iter()
    .enumerate()
    {
        let at = T0 + 10 * i as i64;
        store
            .append_audit(&entry(actor, Role::Admin, action, target, at))
            .await
            .unwrap();
    }
    let filter = |actor: Option<&str>, action: Option<&str>, target: Option<&str>| AuditFilter {
        actor: actor.map(str::to_owned),
        action: action.map(str::to_owned),
        target: target.map(str::to_owned),
        since: None,
        until: None,
    };
    assert_eq!(
        actions(store, filter(Some("root"), None, None)).await,
        ["token.create", "release.patch"]
    );
    // A target matches itself and what is under it, never a name that only starts the same
    // (nor one where `_` would be a LIKE wildcard).
    let under = store
        .list_audit(
            &filter(Some("ci"), Some("release.publish"), Some("door-sensor")),
            &first(10),
        )
        .await
        .unwrap();
    let targets: Vec<&str> = under.items.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(targets, ["door-sensor/1.1.0", "door-sensor/1.0.0"]);
    assert_eq!(
        actions(store, filter(None, None, Some("ci"))).await,
        ["token.create"]
    );
    let window = AuditFilter {
        since: Some(T0 + 10),
        until: Some(T0 + 30),
        ..AuditFilter::default()
    };
    assert_eq!(
        actions(store, window).await,
        ["release.patch", "release.publish"]
    );
    // Pages of two, newest first, under a filter.
    let publishes = filter(None, Some("release.publish"), None);
    let page = store.list_audit(&publishes, &first(2)).await.unwrap();
    let rest = store
        .list_audit(&publishes, &after(2, &page.next_cursor))
        .await
        .unwrap();
    assert_eq!((page.items.len(), rest.items.len()), (2, 2));
    assert_eq!(rest.next_cursor, None);
    assert!(page.items[1].id > rest.items[0].id);
    assert!(matches!(
        store
            .list_audit(
                &AuditFilter::default(),
                &PageRequest {
                    limit: 2,
                    cursor: Some("x".to_owned()),
                }
            )
            .await,
        Err(StoreError::InvalidCursor)
    ));
}
