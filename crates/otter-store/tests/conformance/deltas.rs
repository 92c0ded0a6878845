//! Delta policies and patches ([`otter_store::DeltaStore`]).

use otter_core::deltas::{Delta, DeltaPolicy, DeltaState};

use super::*;

pub async fn delta_policies_are_set_replaced_and_removed(store: &dyn Store) {
    assert_eq!(store.delta_policy("door").await.unwrap(), None);
    let last = DeltaPolicy {
        format: "bsdiff".to_owned(),
        from_last: Some(3),
        from_version: None,
        max_share_percent: 50,
    };
    store
        .set_delta_policy("door", Some(&last), T0)
        .await
        .unwrap();
    assert_eq!(store.delta_policy("door").await.unwrap(), Some(last));
    let from = DeltaPolicy {
        format: "zstd".to_owned(),
        from_last: None,
        from_version: Some("1.0.0".to_owned()),
        max_share_percent: 20,
    };
    store
        .set_delta_policy("door", Some(&from), T0 + 1)
        .await
        .unwrap();
    store
        .set_delta_policy("bell", Some(&from), T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        store.delta_policy("door").await.unwrap(),
        Some(from.clone())
    );
    assert_eq!(
        store.all_delta_policies().await.unwrap(),
        [("bell".to_owned(), from.clone()), ("door".to_owned(), from)]
    );
    store.set_delta_policy("door", None, T0 + 2).await.unwrap();
    assert_eq!(store.delta_policy("door").await.unwrap(), None);
    assert_eq!(store.all_delta_policies().await.unwrap().len(), 1);
}

pub async fn deltas_are_recorded_per_pair_and_format_and_replaced(store: &dyn Store) {
    let delta = |from: &str, to: &str, state| Delta {
        product: "door".to_owned(),
        from: from.to_owned(),
        to: to.to_owned(),
        format: "bsdiff".to_owned(),
        state,
        size: None,
        sha256: None,
        message: None,
        updated_at: T0,
    };
    store
        .put_delta(&delta("1.0.0", "1.2.0", DeltaState::Pending))
        .await
        .unwrap();
    store
        .put_delta(&delta("1.1.0", "1.2.0", DeltaState::Pending))
        .await
        .unwrap();
    store
        .put_delta(&delta("1.0.0", "1.1.0", DeltaState::Failed))
        .await
        .unwrap();
    let ready = Delta {
        size: Some(1234),
        sha256: Some("ab".repeat(32)),
        message: Some("4.1 % of the image".to_owned()),
        updated_at: T0 + 5,
        ..delta("1.1.0", "1.2.0", DeltaState::Ready)
    };
    store.put_delta(&ready).await.unwrap();
    let zstd = Delta {
        format: "zstd".to_owned(),
        ..delta("1.1.0", "1.2.0", DeltaState::Skipped)
    };
    store.put_delta(&zstd).await.unwrap();
    assert_eq!(
        store.deltas("door", Some("1.2.0")).await.unwrap(),
        [delta("1.0.0", "1.2.0", DeltaState::Pending), ready, zstd],
        "by base then format, the later record of a patch replacing the earlier"
    );
    assert_eq!(store.deltas("door", None).await.unwrap().len(), 4);
    assert_eq!(
        store.deltas("door", Some("1.1.0")).await.unwrap()[0].state,
        DeltaState::Failed
    );
    assert!(store.deltas("other", None).await.unwrap().is_empty());
}
