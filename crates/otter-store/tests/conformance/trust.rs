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

pub async fn expiring_signatures_across_products(store: &dyn Store) {
    for name in ["door", "gate"] {
        store
            .create_product(&product(name, Scheme::Semver))
            .await
            .unwrap();
    }
    let a = store.put_artifact(&artifact(1, "fw.bin")).await.unwrap();
    for (name, version) in [("door", "1.0.0"), ("door", "1.1.0"), ("gate", "2.0.0")] {
        store
            .create_release(&release(name, version, &a))
            .await
            .unwrap();
        store
            .set_release_manifest(name, version, "env", 1, T0 + 100)
            .await
            .unwrap();
    }
    // A binary signature alone never expires.
    store
        .set_binary_signature("gate", "2.1.0", "MEUC")
        .await
        .unwrap();
    store
        .patch_release(
            "door",
            "1.1.0",
            &ReleasePatch {
                yanked: Some(true),
                ..ReleasePatch::default()
            },
        )
        .await
        .unwrap();
    // Only the newest root counts: door's root 2 is renewed for long.
    store.add_root("door", 1, "r1", T0 + 50, T0).await.unwrap();
    store
        .add_root("door", 2, "r2", T0 + 9999, T0)
        .await
        .unwrap();
    store.add_root("gate", 1, "r1", T0 + 50, T0).await.unwrap();

    let soon = store.expiring_signatures(T0 + 101).await.unwrap();
    let found: Vec<(&str, Option<&str>, &str, i64)> = soon
        .iter()
        .map(|s| {
            (
                s.product.as_str(),
                s.release.as_deref(),
                s.version.as_str(),
                s.expires_at,
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("door", Some("1.0.0"), "1.0.0", T0 + 100),
            ("gate", None, "1", T0 + 50),
            ("gate", Some("2.0.0"), "2.0.0", T0 + 100),
        ],
        "yanked releases and replaced roots are left out"
    );
    assert!(store.expiring_signatures(T0 + 50).await.unwrap().is_empty());
}
