//! Behaviours of the store as a whole: data survives a reconnect, and a broken uniqueness
//! rule is reported the same way by every inserting method.

use super::*;

pub async fn data_survives_reconnect(db: &mut TestDb) {
    let door = product("door-sensor", Scheme::Semver);
    let (release1, session, report1, hash) = {
        let store = db.store();
        store.create_product(&door).await.unwrap();
        let release1 = publish(store, "door-sensor", &["1.0.0"]).await.remove(0);
        store
            .record_seen(
                &[seen("door-sensor", "dev-1", Some("1.0.0"), "stable", T0)],
                None,
            )
            .await
            .unwrap();
        let report1 = store
            .insert_report(&report("dev-1", "1.0.0", ReportState::Installed, T0))
            .await
            .unwrap();
        let session = upload("up-1", 100);
        store.create_upload(&session).await.unwrap();
        store.set_upload_offset("up-1", 10, 150).await.unwrap();
        let hash = "ab".repeat(32);
        let ci = ApiToken {
            name: "ci".to_owned(),
            role: Role::Publisher,
            created_at: T0,
            last_used_at: None,
            expires_at: None,
            revoked_at: None,
        };
        store.add_token(&hash, &ci).await.unwrap();
        store.bump_catalog("door-sensor").await.unwrap();
        store.bump_catalog("door-sensor").await.unwrap();
        (release1, session, report1, hash)
    };

    db.reconnect().await;
    let store = db.store();

    assert_eq!(store.all_products().await.unwrap(), vec![door]);
    assert_eq!(
        store.get_artifact(&release1.artifact.sha256).await.unwrap(),
        Some(release1.artifact.clone())
    );
    assert_eq!(
        store.get_release("door-sensor", "1.0.0").await.unwrap(),
        Some(release1.clone())
    );
    let devices = store
        .list_devices("door-sensor", &DeviceFilter::default(), &first(10))
        .await
        .unwrap()
        .items;
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].current_version.as_deref(), Some("1.0.0"));
    assert_eq!(
        store
            .list_reports("door-sensor", None, &first(10))
            .await
            .unwrap()
            .items,
        vec![report1.clone()]
    );
    assert_eq!(
        store.get_upload("up-1").await.unwrap(),
        Some(UploadSession {
            offset: 10,
            updated_at: 150,
            ..session
        })
    );
    let tokens = store.all_tokens().await.unwrap();
    assert_eq!(
        (
            tokens.len(),
            tokens[0].sha256.as_str(),
            tokens[0].token.role
        ),
        (1, hash.as_str(), Role::Publisher)
    );
    assert_eq!(
        store.catalog_changes(-1).await.unwrap().changed,
        [("door-sensor".to_owned(), 2)]
    );
    assert_eq!(store.bump_catalog("door-sensor").await.unwrap(), 3);

    // Counters carry on after a restart: new rows sort after the old ones.
    let a2 = store.put_artifact(&artifact(9, "b.bin")).await.unwrap();
    let release2 = store
        .create_release(&release("door-sensor", "1.1.0", &a2))
        .await
        .unwrap();
    assert!(release2.seq > release1.seq);
    let report2 = store
        .insert_report(&report("dev-1", "1.1.0", ReportState::Downloading, T0 + 1))
        .await
        .unwrap();
    assert!(report2.id > report1.id);
    // And a duplicate is still a conflict.
    assert!(matches!(
        store
            .create_product(&product("door-sensor", Scheme::Opaque))
            .await,
        Err(StoreError::Conflict(_))
    ));
}

/// Every insert that can break a uniqueness rule reports the kind of thing that exists, in
/// words of otter's own: the database's message (table, constraint and key names, which differ
/// between backends) never reaches the error, whose text the server may send to a client.
pub async fn conflicts_name_what_exists_not_the_database(store: &dyn Store) {
    let door = product("door-sensor", Scheme::Semver);
    store.create_product(&door).await.unwrap();
    let a1 = store.put_artifact(&artifact(1, "a.bin")).await.unwrap();
    let v1 = release("door-sensor", "1.0.0", &a1);
    store.create_release(&v1).await.unwrap();
    let session = upload("aaa", T0);
    store.create_upload(&session).await.unwrap();
    let key = ApiKey {
        id: String::new(),
        product: "door-sensor".into(),
        label: "factory".into(),
        created_at: T0,
    };
    store.add_api_key(&key, &"a1".repeat(32)).await.unwrap();
    let token = OneTimeToken::issue("c3".repeat(32), "door-sensor", "d1", &a1.sha256, T0);
    store.create_ott(&token).await.unwrap();
    store
        .add_root("door-sensor", 1, "{}", T0, T0)
        .await
        .unwrap();

    let again = [
        ("product", store.create_product(&door).await.map(drop)),
        ("release", store.create_release(&v1).await.map(drop)),
        ("upload session", store.create_upload(&session).await),
        ("API key", store.add_api_key(&key, &"a1".repeat(32)).await),
        ("one-time token", store.create_ott(&token).await),
        ("root", store.add_root("door-sensor", 1, "{}", T0, T0).await),
    ];
    for (what, result) in again {
        let err = result.expect_err(what);
        assert!(
            matches!(err, StoreError::Conflict(named) if named == what),
            "{what} again: expected Conflict, got {err:?}"
        );
        assert_eq!(err.to_string(), format!("{what} already exists"));
    }
}
