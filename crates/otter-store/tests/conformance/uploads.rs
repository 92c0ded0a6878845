//! Resumable upload sessions ([`otter_store::UploadStore`]).

use super::*;

pub async fn upload_sessions_lifecycle(store: &dyn Store) {
    assert!(store.all_uploads().await.unwrap().is_empty());
    assert!(store.idle_uploads(i64::MAX).await.unwrap().is_empty());

    let (a, b, c) = (upload("aaa", 100), upload("bbb", 200), upload("ccc", 300));
    for s in [&a, &b, &c] {
        store.create_upload(s).await.unwrap();
    }
    assert_eq!(store.get_upload("bbb").await.unwrap(), Some(b.clone()));
    assert_eq!(store.get_upload("zzz").await.unwrap(), None);
    assert_eq!(
        sorted(store.all_uploads().await.unwrap()),
        ["aaa", "bbb", "ccc"]
    );

    // "Before" is strict: a session touched exactly at the cutoff is not idle.
    assert_eq!(store.idle_uploads(100).await.unwrap(), Vec::<String>::new());
    assert_eq!(store.idle_uploads(200).await.unwrap(), ["aaa"]);
    assert_eq!(
        sorted(store.idle_uploads(301).await.unwrap()),
        ["aaa", "bbb", "ccc"]
    );

    // Progress on the oldest session makes it recent again.
    store.set_upload_offset("aaa", 2048, 400).await.unwrap();
    assert_eq!(
        store.get_upload("aaa").await.unwrap(),
        Some(UploadSession {
            offset: 2048,
            updated_at: 400,
            ..a.clone()
        })
    );
    assert_eq!(
        sorted(store.idle_uploads(350).await.unwrap()),
        ["bbb", "ccc"]
    );

    store.delete_upload("bbb").await.unwrap();
    assert_eq!(store.get_upload("bbb").await.unwrap(), None);
    assert_eq!(sorted(store.all_uploads().await.unwrap()), ["aaa", "ccc"]);
    assert_eq!(store.idle_uploads(350).await.unwrap(), ["ccc"]);
    // The others are untouched.
    assert_eq!(store.get_upload("ccc").await.unwrap(), Some(c));
}
