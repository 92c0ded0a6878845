//! Device answers serialised once per release, when the catalogue changes, instead of once per
//! request: the native check's offer, the firmware manifest contract's manifest, and the `delta`
//! either carries for a device on the base of a ready patch. Download
//! URLs inside them start with [`URL_BASE`], which [`crate::index::UrlTemplate`] replaces per
//! request.

use otter_core::deltas::Delta;
use otter_core::model::Release;
use serde_json::{Value, json};

use crate::index::URL_BASE;

/// The native check answer offering `release` (downloaded from `path`), as a direct offer or
/// as a stepping stone towards a newer one.
pub fn offer(release: &Release, path: &str, stepping_stone: bool) -> Value {
    json!({
        "hasUpdate": true,
        "manifest": {
            "version": release.version,
            "releaseDate": release.release_date,
            "size": release.artifact.size,
            "sha256": release.artifact.sha256,
            "sha1": release.artifact.sha1,
            "md5": release.artifact.md5,
            "url": format!("{URL_BASE}{path}"),
            "mandatory": release.mandatory,
            "deprecated": release.deprecated,
            "title": release.title,
            "summary": release.summary,
            "releaseNotesUrl": release.release_notes_url,
            "minSourceVersion": release.min_source_version,
            "steppingStone": stepping_stone,
        }
    })
}

/// A release in the contract's shape, with `binaryUrl` under [`URL_BASE`] (see
/// [`crate::index::UrlTemplate`]). Fields the contract types as strings are never `null`: an
/// unset title falls back to the version, unset summary and notes URL to `""`.
/// `binarySignature` (the contract's future field: ECDSA P-256 over the image, base64 DER) is
/// there only for releases published with one.
pub fn contract_manifest(release: &Release, binary_signature: Option<&str>) -> Value {
    let mut manifest = json!({
        "version": release.version,
        "releaseDate": release.release_date,
        "binaryUrl": format!(
            "{URL_BASE}/firmware/{}-{}.bin",
            release.product, release.version
        ),
        "binarySize": release.artifact.size,
        "binarySha256": release.artifact.sha256,
        "minSourceVersion": release.min_source_version,
        "mandatory": release.mandatory,
        "title": release.title.as_deref().unwrap_or(&release.version),
        "summary": release.summary.as_deref().unwrap_or_default(),
        "releaseNotesUrl": release.release_notes_url.as_deref().unwrap_or_default(),
        "deprecated": release.deprecated,
    });
    if let Some(signature) = binary_signature {
        manifest["binarySignature"] = json!(signature);
    }
    manifest
}

/// A ready patch as an offer's `delta` carries it, downloaded from `/dl/{sha256}` under
/// [`URL_BASE`]; `None` for a record without its size and digest.
pub fn delta(delta: &Delta) -> Option<Value> {
    let sha256 = delta.sha256.as_deref()?;
    Some(json!({
        "from": delta.from,
        "format": delta.format,
        "size": delta.size?,
        "sha256": sha256,
        "url": format!("{URL_BASE}/dl/{sha256}"),
    }))
}

/// Adds `"delta": delta` as the last member of the object that closes `depth` braces before the
/// end of `body` (a compact JSON object, as every pre-serialised answer is): 1 for a manifest
/// itself, 2 for a native offer (`{"hasUpdate":true,"manifest":{…}}`).
pub fn insert_delta(body: &mut String, depth: usize, delta: &str) {
    let at = body.len().saturating_sub(depth);
    body.insert_str(at, &format!(",\"delta\":{delta}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_goes_last_in_the_manifest_and_the_answer_stays_json() {
        let mut offer = r#"{"hasUpdate":true,"manifest":{"version":"1.1.0"}}"#.to_owned();
        insert_delta(&mut offer, 2, r#"{"from":"1.0.0"}"#);
        let parsed: Value = serde_json::from_str(&offer).unwrap();
        assert_eq!(parsed["manifest"]["delta"]["from"], "1.0.0");
        assert_eq!(parsed["manifest"]["version"], "1.1.0");
        let mut manifest = r#"{"version":"1.1.0"}"#.to_owned();
        insert_delta(&mut manifest, 1, r#"{"from":"1.0.0"}"#);
        let parsed: Value = serde_json::from_str(&manifest).unwrap();
        assert_eq!(parsed["delta"]["from"], "1.0.0");
    }
}
