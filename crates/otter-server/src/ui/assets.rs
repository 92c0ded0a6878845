//! The UI's stylesheet and script, compiled into the binary and served at
//! `/ui/assets/{name}-{hash}.{ext}`: the content hash in the name lets browsers keep them for a
//! year, and a new build's pages name the new files.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
struct Asset {
    /// `otter.css`
    name: &'static str,
    /// `otter-1a2b3c4d5e6f.css`
    hashed: String,
    content_type: &'static str,
    body: &'static str,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    [
        (
            "otter.css",
            "text/css; charset=utf-8",
            include_str!("assets/otter.css"),
        ),
        (
            "otter.js",
            "text/javascript; charset=utf-8",
            include_str!("assets/otter.js"),
        ),
    ]
    .into_iter()
    .map(|(name, content_type, body)| {
        let digest = hex::encode(&Sha256::digest(body.as_bytes())[..6]);
        let (stem, ext) = name
            .rsplit_once('.')
            .expect("asset names have an extension");
        Asset {
            name,
            hashed: format!("{stem}-{digest}.{ext}"),
            content_type,
            body,
        }
    })
    .collect()
});

/// The URL of the asset `name` (`otter.css`) as pages link it.
pub fn url(name: &str) -> String {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == name)
        .expect("pages link only embedded assets");
    format!("/ui/assets/{}", asset.hashed)
}

/// `GET /ui/assets/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.hashed == file) {
        Some(asset) => (
            [
                (CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
                (
                    CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            asset.body,
        )
            .into_response(),
        None => crate::error::no_route().await.into_response(),
    }
}
