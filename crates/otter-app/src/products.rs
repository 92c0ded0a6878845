//! Products: create, list, get; and products opened by a key of their own (ota-backend's
//! firmwares).

use otter_core::Scheme;
use otter_core::access::{ALL, Admission};
use otter_core::model::{Page, Product, validate_name};
use otter_store::{PageRequest, StoreError, now};

use crate::tokens::{matches_hash, token_hash};
use crate::{App, AppError, AppResult};

/// Creates a product.
pub async fn create(app: &App, name: String, scheme: Scheme) -> AppResult<Product> {
    validate_name("name", &name)?;
    let product = Product {
        name,
        scheme,
        created_at: now(),
    };
    app.store
        .create_product(&product)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => AppError::conflict(
                "product_exists",
                format!("a product named {:?} already exists", product.name),
            ),
            other => other.into(),
        })?;
    app.reindex(&product.name).await?;
    tracing::info!(product = %product.name, scheme = %product.scheme, "product created");
    Ok(product)
}

/// Products, by name.
pub async fn list(app: &App, page: &PageRequest) -> AppResult<Page<Product>> {
    Ok(app.store.list_products(page).await?)
}

/// Creates an `opaque` product that `key` opens (only its hash is stored).
pub async fn create_keyed(app: &App, name: &str, key: &str) -> AppResult<()> {
    let at = now();
    // The key and the admission first: a crash in between leaves a key for no product, never a
    // product no key opens or one open to any device (ota-backend firmwares let in only the
    // devices their firewall allows).
    app.store
        .set_product_key(name, &token_hash(key), at)
        .await?;
    app.store
        .set_device_access(name, ALL, Some(Admission::Allowlist.rule()), at)
        .await?;
    app.store
        .create_product(&Product {
            name: name.to_owned(),
            scheme: Scheme::Opaque,
            created_at: at,
        })
        .await?;
    app.reindex(name).await?;
    Ok(())
}

/// Whether `key` opens the keyed product `name` (compared in constant time).
pub async fn key_opens(app: &App, name: &str, key: &str) -> AppResult<bool> {
    Ok(app
        .store
        .product_key(name)
        .await?
        .is_some_and(|stored| matches_hash(key, &stored)))
}
