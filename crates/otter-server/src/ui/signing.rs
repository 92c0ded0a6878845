//! Signing, `/ui/signing`: each product's roots of trust with their versions and keys, the
//! signatures that expire within 30 days (`otter_app::trust`), and for admins a form that adds a
//! root (an envelope signed offline with `otter keys`).

use axum::extract::{Query, State};
use axum::response::Response;
use otter_app::{App, trust};
use otter_core::model::Role;
use otter_core::signing::documents::Root;

use super::Viewer;
use super::html::{Html, esc, url_part};
use super::layout::{self, Section};
use super::parts::{self, pager, refused};
use super::products::ListQuery;

/// `GET /ui/signing`
pub async fn show(
    Viewer(viewer): Viewer,
    State(app): State<App>,
    Query(query): Query<ListQuery>,
) -> Response {
    let expiring = match trust::expiring(&app, otter_store::now()).await {
        Ok(expiring) => expiring,
        Err(e) => return refused(&viewer, e),
    };
    let page = match otter_app::products::list(&app, &parts::page(query.cursor.as_deref())).await {
        Ok(page) => page,
        Err(e) => return refused(&viewer, e),
    };
    let mut body = Html::new();
    body.raw("<h1>Signing</h1><h2>Expiring within 30 days</h2>");
    if expiring.is_empty() {
        body.raw("<p class=\"muted\" id=\"expiring\">Nothing expires within 30 days.</p>");
    } else {
        body.raw(
            "<div class=\"scroll\"><table id=\"expiring\"><thead><tr><th>Product</th><th>What</th>\
             <th>Version</th><th>Expires</th></tr></thead><tbody>",
        );
        for item in &expiring {
            let field = |name: &str| item[name].as_str().unwrap_or_default().to_owned();
            body.add(format_args!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><span class=\"badge warn\">{}</span>\
                 </td></tr>",
                esc(&field("product")),
                esc(&field("what")),
                esc(&field("version")),
                esc(&field("expires")),
            ));
        }
        body.raw("</tbody></table></div>");
    }
    for product in &page.items {
        let roots = match trust::roots(&app, &product.name).await {
            Ok(roots) => roots,
            Err(e) => return refused(&viewer, e),
        };
        body.push(&product_roots(
            &product.name,
            &roots,
            viewer.role >= Role::Admin,
        ));
    }
    body.push(&pager("/ui/signing", &[], page.next_cursor.as_deref()));
    layout::page(&viewer, Section::Signing, "signing", "Signing", body)
}

/// One product's roots, newest first, and the form adding the next one (for admins).
fn product_roots(product: &str, roots: &[Root], admin: bool) -> Html {
    let p = url_part(product);
    let mut h = Html::new();
    h.add(format_args!(
        "<section data-product=\"{}\"><h2><a href=\"/ui/products/{p}\">{}</a></h2>",
        esc(product),
        esc(product)
    ));
    if roots.is_empty() {
        h.raw("<p class=\"muted\">No root of trust: releases need no signed manifest.</p>");
    } else {
        h.raw(
            "<div class=\"scroll\"><table><thead><tr><th>Root version</th><th>Issued</th>\
             <th>Expires</th><th>Root keys</th><th>Release keys</th></tr></thead><tbody>",
        );
        for root in roots.iter().rev() {
            h.add(format_args!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} of {}</td><td>{} of {}</td></tr>",
                root.version,
                esc(&root.issued),
                esc(&root.expires),
                root.roles.root.threshold,
                root.roles.root.keyids.len(),
                root.roles.release.threshold,
                root.roles.release.keyids.len(),
            ));
        }
        h.raw("</tbody></table></div>");
    }
    if admin {
        let next = roots.last().map_or(1, |r| r.version + 1);
        h.add(format_args!(
            "<details><summary>Add root version {next}</summary>\
             <form class=\"panel\" name=\"add-root\" data-api=\"POST /api/v1/products/{}/roots\" \
             data-body=\"envelope\"><label>Root envelope (JSON, signed with <code>otter envelope sign</code>)\
             <textarea name=\"envelope\" data-type=\"json\" required></textarea></label>\
             <div class=\"actions\"><button class=\"primary\" type=\"submit\">Add root</button>\
             </div></form></details>",
            esc(&p)
        ));
    }
    h.raw("</section>");
    h
}
