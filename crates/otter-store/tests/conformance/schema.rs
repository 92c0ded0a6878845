//! Migrations: connecting to an empty, partly migrated or foreign schema, and `migrate`.

use super::*;

/// `(version, description)` of a backend's migrations, as `pending_migrations` names them.
fn all_migrations(backend: Backend) -> Vec<(i64, String)> {
    let mut files: Vec<String> = std::fs::read_dir(migrations_dir(backend))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|name| {
            let (version, rest) = name.trim_end_matches(".sql").split_once('_').unwrap();
            (version.parse().unwrap(), rest.replace('_', " "))
        })
        .collect()
}

/// The same database URL with a password in it (the test cluster trusts loopback, so any
/// password works), to show that messages never repeat it.
fn with_password(url: &str) -> String {
    url.replacen("://postgres@", "://postgres:hunter2@", 1)
}

/// SQLite migrates itself on connect; PostgreSQL refuses an unmigrated database and says to run
/// `otter migrate`.
pub async fn connect_on_an_empty_database(fresh: Fresh) {
    let everything = all_migrations(fresh.backend);
    match fresh.backend {
        Backend::Sqlite => {
            let store = SqlStore::connect(&fresh.url).await.unwrap();
            store
                .create_product(&product("door-sensor", Scheme::Semver))
                .await
                .unwrap();
            assert!(
                SqlStore::pending_migrations(&fresh.url)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        Backend::Postgres => {
            let url = with_password(&fresh.url);
            let err = match SqlStore::connect(&url).await {
                Err(err) => err,
                Ok(_) => panic!("connect accepted an unmigrated PostgreSQL database"),
            };
            assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
            let message = err.to_string();
            assert!(message.contains("run `otter migrate`"), "{message}");
            assert!(message.contains("postgres:***@127.0.0.1"), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
            assert!(message.contains("0001 init"), "{message}");
            // Connecting wrote nothing: everything is still pending.
            assert_eq!(
                SqlStore::pending_migrations(&url).await.unwrap(),
                everything
            );
            assert_eq!(SqlStore::migrate(&url).await.unwrap(), everything.len());
            let store = SqlStore::connect(&url).await.unwrap();
            store
                .create_product(&product("door-sensor", Scheme::Semver))
                .await
                .unwrap();
        }
    }
}

pub async fn migrate_applies_each_migration_once(fresh: Fresh) {
    let everything = all_migrations(fresh.backend);
    assert!(everything.len() >= 2, "{everything:?}");
    assert_eq!(
        SqlStore::pending_migrations(&fresh.url).await.unwrap(),
        everything
    );
    assert_eq!(
        SqlStore::migrate(&fresh.url).await.unwrap(),
        everything.len()
    );
    assert!(
        SqlStore::pending_migrations(&fresh.url)
            .await
            .unwrap()
            .is_empty()
    );
    // Again: nothing to do, and the data stays.
    let store = SqlStore::connect(&fresh.url).await.unwrap();
    store
        .create_product(&product("door-sensor", Scheme::Semver))
        .await
        .unwrap();
    store.close().await;
    assert_eq!(SqlStore::migrate(&fresh.url).await.unwrap(), 0);
    assert_eq!(SqlStore::migrate(&fresh.url).await.unwrap(), 0);
    let store = SqlStore::connect(&fresh.url).await.unwrap();
    assert_eq!(
        store.all_products().await.unwrap(),
        [product("door-sensor", Scheme::Semver)]
    );
}

/// A database an older otter migrated: `connect` (PostgreSQL) names what is missing, and
/// `migrate` applies just that.
pub async fn migrate_finishes_a_partly_migrated_database(fresh: Fresh) {
    let everything = all_migrations(fresh.backend);
    let migrator = sqlx::migrate::Migrator::new(migrations_dir(fresh.backend))
        .await
        .unwrap();
    let pool = raw_pool(&fresh.url).await;
    migrator.run_to(1, &pool).await.unwrap();
    pool.close().await;
    assert_eq!(
        SqlStore::pending_migrations(&fresh.url).await.unwrap(),
        everything[1..]
    );

    match fresh.backend {
        Backend::Sqlite => {
            // Connecting migrates the rest.
            SqlStore::connect(&fresh.url).await.unwrap().close().await;
            assert_eq!(SqlStore::migrate(&fresh.url).await.unwrap(), 0);
        }
        Backend::Postgres => {
            let message = match SqlStore::connect(&fresh.url).await {
                Err(StoreError::Schema(message)) => message,
                Err(other) => panic!("expected a schema error, got {other:?}"),
                Ok(_) => panic!("connect accepted a partly migrated database"),
            };
            let (version, description) = &everything[1];
            assert!(
                message.contains(&format!("{version:04} {description}")),
                "{message}"
            );
            let pending = format!(
                "{} of {} migrations pending",
                everything.len() - 1,
                everything.len()
            );
            assert!(message.contains(&pending), "{message}");
            assert!(message.contains("otter migrate"), "{message}");
            assert_eq!(
                SqlStore::migrate(&fresh.url).await.unwrap(),
                everything.len() - 1
            );
        }
    }
    let store = SqlStore::connect(&fresh.url).await.unwrap();
    assert_eq!(store.bump_catalog("door-sensor").await.unwrap(), 1);
}

/// Two `otter migrate`s at once (two operators, two deploy jobs): one applies everything, the
/// other waits its turn and finds nothing to do.
pub async fn concurrent_migrations_take_turns(fresh: Fresh) {
    if fresh.backend == Backend::Sqlite {
        // One machine, one file: SQLite has no cross-process migration lock to test.
        return;
    }
    let everything = all_migrations(fresh.backend);
    let (a, b, c) = tokio::join!(
        SqlStore::migrate(&fresh.url),
        SqlStore::migrate(&fresh.url),
        SqlStore::migrate(&fresh.url)
    );
    let mut counts = [a.unwrap(), b.unwrap(), c.unwrap()];
    counts.sort_unstable();
    assert_eq!(counts, [0, 0, everything.len()]);
    SqlStore::connect(&fresh.url).await.unwrap();
}

/// A schema this otter did not write: a migration it does not know (a newer otter migrated the
/// database) or one whose text differs (another build). `migrate` refuses both with an
/// explanation; `connect` refuses a changed migration, and refuses a newer schema on SQLite but
/// only warns on PostgreSQL, so not-yet-upgraded nodes can restart during a rolling upgrade.
pub async fn schema_from_another_otter_is_refused(fresh: Fresh) {
    let everything = all_migrations(fresh.backend);
    assert_eq!(
        SqlStore::migrate(&fresh.url).await.unwrap(),
        everything.len()
    );
    let pool = raw_pool(&fresh.url).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(9999_i64)
    .bind("from the future")
    .bind(true)
    .bind(vec![0u8; 48])
    .bind(0_i64)
    .execute(&pool)
    .await
    .unwrap();

    let err = SqlStore::migrate(&fresh.url).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
    assert!(
        message.contains("9999") && message.contains("newer otter"),
        "{message}"
    );
    match fresh.backend {
        Backend::Sqlite => {
            let err = SqlStore::connect(&fresh.url).await.err().expect("refused");
            assert!(err.to_string().contains("newer otter"), "{err}");
        }
        Backend::Postgres => {
            SqlStore::connect(&fresh.url).await.unwrap();
        }
    }

    // A changed migration instead.
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 9999")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 1")
        .bind(vec![1u8; 48])
        .execute(&pool)
        .await
        .unwrap();
    let n: i64 = sqlx::query("SELECT count(*) AS n FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(n, i64::try_from(everything.len()).unwrap());
    pool.close().await;
    for err in [
        SqlStore::migrate(&fresh.url).await.unwrap_err(),
        SqlStore::connect(&fresh.url).await.err().expect("refused"),
    ] {
        assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
        assert!(err.to_string().contains("migration 1 "), "{err}");
    }
}
