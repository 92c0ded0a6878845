//! User accounts and their login sessions ([`otter_store::UserStore`]).

use super::*;

fn stored_user(name: &str, role: Role) -> StoredUser {
    StoredUser {
        user: User {
            name: name.to_owned(),
            role,
            disabled: false,
            created_at: T0,
            password_changed_at: T0,
            last_login_at: None,
        },
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt-of-{name}$hash"),
    }
}

fn login(id: &str, user: &str, at: i64) -> StoredSession {
    StoredSession {
        id: id.to_owned(),
        user_name: user.to_owned(),
        created_at: at,
        expires_at: at + 3600,
        last_seen_at: at,
        revoked_at: None,
        remote: Some("192.0.2.7".to_owned()),
    }
}

pub async fn users_are_unique_listed_by_name_and_changed(store: &dyn Store) {
    let bob = stored_user("bob", Role::Viewer);
    let alice = stored_user("alice", Role::Admin);
    store.add_user(&bob).await.unwrap();
    store.add_user(&alice).await.unwrap();
    match store.add_user(&stored_user("bob", Role::Admin)).await {
        Err(StoreError::Conflict("user")) => {}
        other => panic!("a taken name must conflict, got {other:?}"),
    }
    assert_eq!(store.get_user("bob").await.unwrap(), Some(bob.clone()));
    assert_eq!(store.get_user("carol").await.unwrap(), None);
    let page = store.list_users(&first(1)).await.unwrap();
    assert_eq!(page.items, std::slice::from_ref(&alice.user));
    let rest = store
        .list_users(&PageRequest {
            limit: 10,
            cursor: page.next_cursor,
        })
        .await
        .unwrap();
    assert_eq!(
        (rest.items, rest.next_cursor),
        (vec![bob.user.clone()], None)
    );
    assert_eq!(store.all_users().await.unwrap(), [alice, bob.clone()]);

    // A role change keeps the password and its time; a new password moves the time.
    let promoted = UserChange {
        role: Some(Role::Publisher),
        ..UserChange::default()
    };
    let changed = store.update_user("bob", &promoted, T0 + 10).await.unwrap();
    assert_eq!(
        (changed.role, changed.password_changed_at),
        (Role::Publisher, T0)
    );
    let new_password = UserChange {
        password_hash: Some("$argon2id$new".to_owned()),
        disabled: Some(true),
        ..UserChange::default()
    };
    let changed = store
        .update_user("bob", &new_password, T0 + 20)
        .await
        .unwrap();
    assert_eq!(
        (changed.role, changed.disabled, changed.password_changed_at),
        (Role::Publisher, true, T0 + 20)
    );
    let stored = store.get_user("bob").await.unwrap().unwrap();
    assert_eq!(stored.password_hash, "$argon2id$new");
    match store.update_user("carol", &promoted, T0).await {
        Err(StoreError::NotFound) => {}
        other => panic!("no such user: {other:?}"),
    }
}

pub async fn sessions_are_recorded_touched_and_revoked(store: &dyn Store) {
    store
        .add_user(&stored_user("alice", Role::Admin))
        .await
        .unwrap();
    store
        .add_user(&stored_user("bob", Role::Viewer))
        .await
        .unwrap();
    let s1 = login(&"11".repeat(32), "alice", T0 + 100);
    let s2 = login(&"22".repeat(32), "alice", T0 + 200);
    let s3 = login(&"33".repeat(32), "bob", T0 + 300);
    for s in [&s1, &s2, &s3] {
        store.add_session(s).await.unwrap();
    }
    let (session, user) = store.get_session(&s2.id).await.unwrap().unwrap();
    assert_eq!(session, s2);
    assert_eq!(
        user.user.last_login_at,
        Some(T0 + 200),
        "a login is recorded"
    );
    assert_eq!(store.get_session(&"44".repeat(32)).await.unwrap(), None);

    store.touch_session(&s1.id, T0 + 150).await.unwrap();
    store.touch_session(&s1.id, T0 + 120).await.unwrap();
    let (session, _) = store.get_session(&s1.id).await.unwrap().unwrap();
    assert_eq!(session.last_seen_at, T0 + 150, "never moves backwards");

    store.revoke_session(&s1.id, T0 + 400).await.unwrap();
    store.revoke_session(&s1.id, T0 + 500).await.unwrap();
    let (session, _) = store.get_session(&s1.id).await.unwrap().unwrap();
    assert_eq!(
        session.revoked_at,
        Some(T0 + 400),
        "keeps its first revocation"
    );

    // Revoking a user's sessions ends the live ones only, and only theirs.
    assert_eq!(store.revoke_sessions("alice", T0 + 600).await.unwrap(), 1);
    let (session, _) = store.get_session(&s2.id).await.unwrap().unwrap();
    assert_eq!(session.revoked_at, Some(T0 + 600));
    let (session, _) = store.get_session(&s3.id).await.unwrap().unwrap();
    assert_eq!(session.revoked_at, None);

    // Disabling a user, or a new password, ends their sessions in the same change; a role
    // change does not.
    let demote = UserChange {
        role: Some(Role::Viewer),
        ..UserChange::default()
    };
    store.update_user("bob", &demote, T0 + 700).await.unwrap();
    assert_eq!(
        store
            .get_session(&s3.id)
            .await
            .unwrap()
            .unwrap()
            .0
            .revoked_at,
        None
    );
    let disable = UserChange {
        disabled: Some(true),
        ..UserChange::default()
    };
    store.update_user("bob", &disable, T0 + 800).await.unwrap();
    assert_eq!(
        store
            .get_session(&s3.id)
            .await
            .unwrap()
            .unwrap()
            .0
            .revoked_at,
        Some(T0 + 800)
    );
}
