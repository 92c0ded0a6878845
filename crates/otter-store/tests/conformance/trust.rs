//! Roots of trust and release signatures ([`otter_store::TrustStore`]).

use super::*;

pub async fn roots_and_release_signatures(store: &dyn Store) {
    store
        .add_root("door", 2, "{\"v\":2}", T0 + 20, T0)
        .await
        .unwrap();
    store
        .add_root("door", 1, "{\"v\":1}", T0 + 10, T0)
        .await
        .unwrap();
    assert!(matches!(
        store.add_root("door", 1, "{}", T0, T0).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.roots("door").await.unwrap(),
        [(1, "{\"v\":1}".to_owned()), (2, "{\"v\":2}".to_owned())],
        "oldest first, verbatim"
    );
    assert!(store.roots("other").await.unwrap().is_empty());

    store
        .set_binary_signature("door", "1.0.0", "MEUC")
        .await
        .unwrap();
    store
        .set_release_manifest("door", "1.0.0", "env-1", 3, T0 + 100)
        .await
        .unwrap();
    store
        .set_release_manifest("door", "1.1.0", "env-2", 4, T0 + 200)
        .await
        .unwrap();
    // Re-signing replaces the manifest and keeps the binary signature.
    store
        .set_release_manifest("door", "1.0.0", "env-1b", 3, T0 + 300)
        .await
        .unwrap();
    let all = store.release_signatures("door").await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].version, "1.0.0");
    assert_eq!(all[0].manifest.as_deref(), Some("env-1b"));
    assert_eq!(all[0].expires_at, Some(T0 + 300));
    assert_eq!(all[0].binary_signature.as_deref(), Some("MEUC"));
    assert_eq!(
        (all[1].security_counter, all[1].binary_signature.as_deref()),
        (Some(4), None)
    );
}
