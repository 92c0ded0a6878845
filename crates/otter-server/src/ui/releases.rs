//! A release's page: its artifact's hashes and size, download URL, channels, flags, signature
//! status and the delta patches built to it, and for publishers the flag changes (deprecate, undeprecate, yank with confirmation)
//! through `PATCH /api/v1/products/{p}/releases/{v}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use otter_app::deltas::{self, DeltaStatus};
use otter_app::index::download_path;
use otter_app::{App, trust};
use otter_core::model::{Release, Role};

use super::Viewer;
use super::html::{Html, esc, url_part};
use super::layout::{self, Section};
use super::parts::{action, refused, when};
use super::products::flags;

/// `GET /ui/products/{product}/releases/{version}`
pub async fn show(
    Viewer(viewer): Viewer,
    State(app): State<App>,
    Path((product, version)): Path<(String, String)>,
) -> Response {
    let index = match app.product(&product).await {
        Ok(index) => index,
        Err(e) => return refused(&viewer, e),
    };
    let (Some(indexed), Some(signatures)) = (
        index.release(&version),
        trust::signature_status(&index, &version),
    ) else {
        let message = format!("{product} has no release {version}.");
        return layout::refusal(&viewer, StatusCode::NOT_FOUND, &message);
    };
    let release = &indexed.release;
    let artifact = &release.artifact;
    let p = url_part(&product);
    let mut body = Html::new();
    body.add(format_args!(
        "<div class=\"crumbs\"><a href=\"/ui/products\">Products</a> / \
         <a href=\"/ui/products/{p}\">{}</a></div><h1>{} {}</h1><p id=\"flags\">{}</p>",
        esc(&product),
        esc(&product),
        esc(&release.version),
        flags(release),
    ));
    if let Some(title) = &release.title {
        body.add(format_args!("<p><strong>{}</strong></p>", esc(title)));
    }
    if let Some(summary) = &release.summary {
        body.add(format_args!("<p>{}</p>", esc(summary)));
    }
    let download = download_path(&product, &release.version, &artifact.filename);
    body.add(format_args!(
        "<dl class=\"facts\">\
         <dt>Channels</dt><dd>{}</dd>\
         <dt>Published</dt><dd>{}</dd>\
         <dt>Release date</dt><dd>{}</dd>\
         <dt>File</dt><dd>{}</dd>\
         <dt>Size</dt><dd>{} bytes</dd>\
         <dt>SHA-256</dt><dd class=\"mono\" id=\"sha256\">{}</dd>\
         <dt>SHA-1</dt><dd class=\"mono\">{}</dd>\
         <dt>MD5</dt><dd class=\"mono\">{}</dd>\
         <dt>Download</dt><dd><a class=\"mono\" href=\"{}\">{}</a></dd>",
        esc(&release.channels.join(", ")),
        when(release.created_at),
        esc(&release.release_date),
        esc(&artifact.filename),
        artifact.size,
        esc(&artifact.sha256),
        esc(&artifact.sha1),
        esc(&artifact.md5),
        esc(&download),
        esc(&download),
    ));
    if let Some(min) = &release.min_source_version {
        body.add(format_args!(
            "<dt>Updates from</dt><dd>{} or newer</dd>",
            esc(min)
        ));
    }
    if let Some(url) = &release.release_notes_url {
        body.add(format_args!(
            "<dt>Release notes</dt><dd><a href=\"{}\" rel=\"noreferrer\">{}</a></dd>",
            esc(url),
            esc(url)
        ));
    }
    body.raw("</dl><h2>Signature</h2><dl class=\"facts\" id=\"signature\"><dt>Manifest</dt><dd>");
    if signatures.manifest_keys.is_empty() {
        body.raw("unsigned");
    } else {
        for (key, root) in &signatures.manifest_keys {
            body.add(format_args!(
                "<div>signed by release key <code>{}</code> {}</div>",
                esc(&key[..key.len().min(16)]),
                match root {
                    Some(v) => format!("of root version {v}"),
                    None => "(not in the current root)".to_owned(),
                }
            ));
        }
    }
    body.raw("</dd>");
    if let Some(expires) = signatures.expires_at {
        body.add(format_args!(
            "<dt>Manifest expires</dt><dd>{}</dd>",
            when(expires)
        ));
    }
    if let Some(counter) = signatures.security_counter {
        body.add(format_args!("<dt>Security counter</dt><dd>{counter}</dd>"));
    }
    body.add(format_args!(
        "<dt>Image signature</dt><dd>{}</dd><dt>Image format</dt><dd>{}</dd></dl>",
        if signatures.binary_signed {
            "ECDSA P-256 (binarySignature)"
        } else {
            "none"
        },
        signatures
            .image_format
            .unwrap_or("plain image (none declared)"),
    ));
    match deltas::status(&app, &product, &version).await {
        Ok(status) => body.push(&patches(&status, artifact.size)),
        Err(e) => return refused(&viewer, e),
    };
    if viewer.role >= Role::Publisher {
        body.push(&flag_forms(&p, &url_part(&release.version), release));
    }
    let title = format!("{product} {}", release.version);
    layout::page(&viewer, Section::Products, "release", &title, body)
}

/// The delta patches to this release (from which base, format, state, size as a share of the
/// full image, why one was skipped or failed); nothing for a product without a policy or patches.
fn patches(status: &DeltaStatus, image_size: u64) -> Html {
    let mut html = Html::new();
    if status.policy.is_none() && status.deltas.is_empty() {
        return html;
    }
    html.add(format_args!(
        "<h2>Delta patches</h2><p>{} of {} built.</p>",
        status.done, status.total
    ));
    if status.deltas.is_empty() {
        return html;
    }
    html.raw(
        "<div class=\"scroll\"><table id=\"deltas\"><thead><tr><th>From</th><th>Format</th>\
         <th>State</th><th>Size</th><th>Note</th></tr></thead><tbody>",
    );
    for delta in &status.deltas {
        let size = delta.size.map_or_else(String::new, |size| {
            format!(
                "{size} bytes ({:.1} %)",
                size as f64 * 100.0 / image_size.max(1) as f64
            )
        });
        html.add(format_args!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&delta.from),
            esc(&delta.format),
            delta.state.as_str(),
            size,
            esc(delta.message.as_deref().unwrap_or_default()),
        ));
    }
    html.raw("</tbody></table></div>");
    html
}

/// The buttons that change a release's flags, each a form on the PATCH route; yanking asks
/// first. `p` and `v` are URL parts.
fn flag_forms(p: &str, v: &str, release: &Release) -> Html {
    let api = format!("PATCH /api/v1/products/{p}/releases/{v}");
    let mut h = Html::new();
    h.raw("<h2>Change</h2><div class=\"actions\">");
    h.push(&if release.deprecated {
        action(&api, &[("deprecated", "false")], "Undeprecate", None)
    } else {
        action(&api, &[("deprecated", "true")], "Deprecate", None)
    });
    if !release.yanked {
        let question = format!(
            "Yank {}? Devices will no longer be offered it, and its rollouts stop.",
            release.version
        );
        h.push(&action(
            &api,
            &[("yanked", "true")],
            "Yank release",
            Some(&question),
        ));
    }
    h.raw("</div>");
    h
}
