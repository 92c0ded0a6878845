//! Admin tokens with names, roles, revocation and the token clock, and one-time download tokens
//! ([`otter_store::TokenStore`], [`otter_store::OttStore`]).

use super::*;

fn api_token(name: &str, role: Role, created_at: i64) -> ApiToken {
    ApiToken {
        name: name.to_owned(),
        role,
        created_at,
        last_used_at: None,
        expires_at: None,
        revoked_at: None,
    }
}

/// Every token's name, role and hash, by name.
async fn token_rows(store: &dyn Store) -> Vec<(String, Role, String)> {
    store
        .all_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.token.name, t.token.role, t.sha256))
        .collect()
}

pub async fn tokens_have_unique_names_and_hashes(store: &dyn Store) {
    assert!(store.all_tokens().await.unwrap().is_empty());
    let v0 = store.token_version().await.unwrap();
    let (h1, h2, h3) = ("11".repeat(32), "22".repeat(32), "33".repeat(32));
    let ci = ApiToken {
        expires_at: Some(T0 + 90 * 86_400),
        ..api_token("ci", Role::Publisher, T0)
    };
    store.add_token(&h2, &ci).await.unwrap();
    store
        .add_token(&h1, &api_token("laptop", Role::Viewer, T0 + 1))
        .await
        .unwrap();
    assert!(store.token_version().await.unwrap() >= v0 + 2);
    for (hash, name) in [(&h3, "ci"), (&h1, "other")] {
        match store
            .add_token(hash, &api_token(name, Role::Admin, T0 + 2))
            .await
        {
            Err(StoreError::Conflict("token")) => {}
            other => panic!("a taken name or hash must conflict, got {other:?}"),
        }
    }
    assert_eq!(
        token_rows(store).await,
        [
            ("ci".to_owned(), Role::Publisher, h2),
            ("laptop".to_owned(), Role::Viewer, h1),
        ]
    );
    let page = store.list_tokens(&first(1)).await.unwrap();
    assert_eq!(page.items, [ci]);
    let rest = store
        .list_tokens(&after(1, &page.next_cursor))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].name, "laptop");
    assert_eq!(rest.next_cursor, None);
}

pub async fn a_replaced_token_is_the_only_one_under_its_name(store: &dyn Store) {
    let (old, new, other) = ("aa".repeat(32), "bb".repeat(32), "cc".repeat(32));
    store.replace_token(&old, "configured", T0).await.unwrap();
    store
        .add_token(&other, &api_token("generated", Role::Admin, T0))
        .await
        .unwrap();
    store
        .replace_token(&new, "configured", T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        token_rows(store).await,
        [
            ("configured".to_owned(), Role::Admin, new.clone()),
            ("generated".to_owned(), Role::Admin, other.clone()),
        ],
        "the old configured token is gone, tokens under other names stay"
    );
    // Configuring a revoked token again restores it.
    store.revoke_token("configured", T0 + 2).await.unwrap();
    store
        .replace_token(&new, "configured", T0 + 3)
        .await
        .unwrap();
    let configured = &store.all_tokens().await.unwrap()[0].token;
    assert_eq!(
        (configured.revoked_at, configured.created_at),
        (None, T0 + 1)
    );
}

pub async fn revoked_tokens_stay_listed_and_last_use_only_moves_on(store: &dyn Store) {
    store
        .add_token(&"dd".repeat(32), &api_token("ci", Role::Publisher, T0))
        .await
        .unwrap();
    let v = store.token_version().await.unwrap();
    store
        .touch_tokens(&[("ci".to_owned(), T0 + 50), ("gone".to_owned(), T0)])
        .await
        .unwrap();
    store
        .touch_tokens(&[("ci".to_owned(), T0 + 40)])
        .await
        .unwrap();
    assert_eq!(
        store.token_version().await.unwrap(),
        v,
        "last use is not a change nodes reload for"
    );
    let revoked = store.revoke_token("ci", T0 + 60).await.unwrap();
    assert_eq!(
        (revoked.last_used_at, revoked.revoked_at),
        (Some(T0 + 50), Some(T0 + 60))
    );
    assert!(store.token_version().await.unwrap() > v);
    // Revoking again keeps the first time.
    let again = store.revoke_token("ci", T0 + 70).await.unwrap();
    assert_eq!(again.revoked_at, Some(T0 + 60));
    assert!(matches!(
        store.revoke_token("nobody", T0).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.list_tokens(&first(10)).await.unwrap().items, [again]);
}

/// Tokens from before names and roles become admin tokens named by their label.
pub async fn existing_tokens_become_admin_tokens(fresh: Fresh) {
    let migrator = sqlx::migrate::Migrator::new(migrations_dir(fresh.backend))
        .await
        .unwrap();
    let pool = raw_pool(&fresh.url).await;
    migrator.run_to(7, &pool).await.unwrap();
    for (hash, label) in [
        ("aa", "generated"),
        ("bb", "configured"),
        ("cc", "ci"),
        ("dd", "ci"),
    ] {
        sqlx::query(
            "INSERT INTO admin_tokens (token_sha256, label, created_at) VALUES ($1, $2, $3)",
        )
        .bind(hash.repeat(32))
        .bind(label)
        .bind(T0)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    SqlStore::migrate(&fresh.url).await.unwrap();
    let store = SqlStore::connect(&fresh.url).await.unwrap();
    let names: Vec<(String, Role)> = token_rows(&store)
        .await
        .into_iter()
        .map(|(name, role, _)| (name, role))
        .collect();
    assert_eq!(
        names,
        [
            ("ci".to_owned(), Role::Admin),
            (format!("ci-{}", "dd".repeat(4)), Role::Admin),
            ("configured".to_owned(), Role::Admin),
            ("generated".to_owned(), Role::Admin),
        ]
    );
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
