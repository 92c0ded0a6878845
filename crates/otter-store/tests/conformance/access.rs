//! Product keys, device access rules, API keys and signing keys
//! ([`otter_store::AccessStore`]).

use super::*;

pub async fn product_keys_round_trip(store: &dyn Store) {
    assert_eq!(store.product_key("fw").await.unwrap(), None);
    store
        .set_product_key("fw", &"a".repeat(64), T0)
        .await
        .unwrap();
    assert_eq!(store.product_key("fw").await.unwrap(), Some("a".repeat(64)));
    store
        .set_product_key("fw", &"b".repeat(64), T0)
        .await
        .unwrap();
    assert_eq!(
        store.product_key("fw").await.unwrap(),
        Some("b".repeat(64)),
        "a new key replaces the old one"
    );
    assert_eq!(store.product_key("other").await.unwrap(), None);
}

pub async fn device_access_rules_set_replace_and_delete(store: &dyn Store) {
    assert!(store.device_access("fw").await.unwrap().is_empty());
    store
        .set_device_access("fw", "dev-2", Some(Access::Allow), T0)
        .await
        .unwrap();
    store
        .set_device_access("fw", "all", Some(Access::Allow), T0)
        .await
        .unwrap();
    store
        .set_device_access("fw", "dev-1", Some(Access::Allow), T0)
        .await
        .unwrap();
    store
        .set_device_access("other", "dev-1", Some(Access::Deny), T0)
        .await
        .unwrap();
    // Replacing a rule, and deleting one (twice: deleting nothing is fine).
    store
        .set_device_access("fw", "dev-1", Some(Access::Deny), T0 + 1)
        .await
        .unwrap();
    store
        .set_device_access("fw", "all", None, T0 + 1)
        .await
        .unwrap();
    store
        .set_device_access("fw", "all", None, T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        store.device_access("fw").await.unwrap(),
        [
            ("dev-1".to_owned(), Access::Deny),
            ("dev-2".to_owned(), Access::Allow)
        ]
    );
    assert_eq!(
        store.device_access("other").await.unwrap(),
        [("dev-1".to_owned(), Access::Deny)]
    );
}

pub async fn api_keys_add_list_delete(store: &dyn Store) {
    let key = |label: &str, at: i64| ApiKey {
        id: String::new(),
        product: "door-sensor".into(),
        label: label.into(),
        created_at: at,
    };
    store
        .add_api_key(&key("factory", T0), &"a1".repeat(32))
        .await
        .unwrap();
    store
        .add_api_key(&key("field", T0 + 1), &"b2".repeat(32))
        .await
        .unwrap();
    let listed = store.api_keys("door-sensor").await.unwrap();
    let ids: Vec<(&str, &str)> = listed
        .iter()
        .map(|k| (k.id.as_str(), k.label.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            ("a1a1a1a1a1a1a1a1", "factory"),
            ("b2b2b2b2b2b2b2b2", "field")
        ]
    );
    assert_eq!(
        sorted(store.api_key_hashes("door-sensor").await.unwrap()),
        ["a1".repeat(32), "b2".repeat(32)]
    );
    assert!(store.api_keys("other").await.unwrap().is_empty());
    // A key names its product (the check index finds products it has not loaded yet by key).
    assert_eq!(
        store
            .api_key_product(&"b2".repeat(32))
            .await
            .unwrap()
            .as_deref(),
        Some("door-sensor")
    );
    assert_eq!(store.api_key_product(&"c3".repeat(32)).await.unwrap(), None);
    assert!(
        store
            .delete_api_key("door-sensor", "a1a1a1a1a1a1a1a1")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_api_key("door-sensor", "a1a1a1a1a1a1a1a1")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_api_key("other", "b2b2b2b2b2b2b2b2")
            .await
            .unwrap()
    );
    assert_eq!(
        store.api_key_hashes("door-sensor").await.unwrap(),
        ["b2".repeat(32)]
    );
    assert_eq!(store.api_key_product(&"a1".repeat(32)).await.unwrap(), None);
}

pub async fn signing_keys_are_set_per_kind(store: &dyn Store) {
    assert!(store.signing_keys("meter").await.unwrap().is_empty());
    store
        .set_signing_key("meter", "iotawatt-ed25519", &"ab".repeat(32), T0)
        .await
        .unwrap();
    store
        .set_signing_key("meter", "iotawatt-ed25519", &"cd".repeat(32), T0 + 1)
        .await
        .unwrap();
    store
        .set_signing_key("other", "iotawatt-ed25519", &"ef".repeat(32), T0)
        .await
        .unwrap();
    assert_eq!(
        store.signing_keys("meter").await.unwrap(),
        [("iotawatt-ed25519".to_owned(), "cd".repeat(32))],
        "a new key replaces the old one"
    );
}
