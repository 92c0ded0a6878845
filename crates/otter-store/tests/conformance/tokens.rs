//! Admin tokens and one-time download tokens ([`otter_store::TokenStore`],
//! [`otter_store::OttStore`]).

use super::*;

pub async fn tokens_are_idempotent(store: &dyn Store) {
    assert!(store.token_hashes().await.unwrap().is_empty());
    let (h1, h2) = ("11".repeat(32), "22".repeat(32));
    store.add_token(&h2, "ci", T0).await.unwrap();
    store.add_token(&h1, "laptop", T0 + 1).await.unwrap();
    // Adding one that exists, even under another label, is fine and adds nothing.
    store.add_token(&h2, "ci again", T0 + 2).await.unwrap();
    assert_eq!(sorted(store.token_hashes().await.unwrap()), [h1, h2]);
}

pub async fn a_replaced_token_is_the_only_one_under_its_label(store: &dyn Store) {
    let (old, new, other) = ("aa".repeat(32), "bb".repeat(32), "cc".repeat(32));
    store.add_token(&old, "configured", T0).await.unwrap();
    store.add_token(&other, "generated", T0).await.unwrap();
    store
        .replace_token(&new, "configured", T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        sorted(store.token_hashes().await.unwrap()),
        [new.clone(), other.clone()],
        "the old configured token is gone, tokens under other labels stay"
    );
    // Replacing with the same token again keeps it.
    store
        .replace_token(&new, "configured", T0 + 2)
        .await
        .unwrap();
    assert_eq!(sorted(store.token_hashes().await.unwrap()), [new, other]);
}

pub async fn one_time_tokens_are_used_once_and_spent_once(store: &dyn Store) {
    let token = OneTimeToken::issue("c3".repeat(32), "door-sensor", "d1", &"ab".repeat(32), T0);
    store.create_ott(&token).await.unwrap();
    assert_eq!(
        store.get_ott(&token.token_sha256).await.unwrap(),
        Some(token.clone())
    );
    assert_eq!(store.get_ott(&"dd".repeat(32)).await.unwrap(), None);
    store
        .first_use_ott(&token.token_sha256, T0 + 60, T0 + 3660)
        .await
        .unwrap();
    // Only the first use counts.
    store
        .first_use_ott(&token.token_sha256, T0 + 120, T0 + 3720)
        .await
        .unwrap();
    let used = store.get_ott(&token.token_sha256).await.unwrap().unwrap();
    assert_eq!(
        (used.first_used_at, used.expires_at),
        (Some(T0 + 60), T0 + 3660)
    );
    assert!(store.spend_ott(&token.token_sha256, T0 + 90).await.unwrap());
    assert!(!store.spend_ott(&token.token_sha256, T0 + 95).await.unwrap());
    assert_eq!(
        store
            .get_ott(&token.token_sha256)
            .await
            .unwrap()
            .unwrap()
            .spent_at,
        Some(T0 + 90)
    );
    assert_eq!(store.purge_otts(T0 + 3660).await.unwrap(), 0);
    assert_eq!(store.purge_otts(T0 + 3661).await.unwrap(), 1);
    assert_eq!(store.get_ott(&token.token_sha256).await.unwrap(), None);
}
