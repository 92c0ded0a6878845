//! Products: the list with the create form (admins), and a product's page with its releases, the
//! upload area and the publish form (publishers). The release page is [`super::releases`].

use axum::extract::{Path, Query, State};
use axum::response::Response;
use otter_app::{App, releases, trust};
use otter_core::Scheme;
use otter_core::model::{MAX_SUMMARY_LEN, MAX_TITLE_LEN, Release, Role};
use otter_core::version::MAX_VERSION_LEN;
use serde::Deserialize;

use super::Viewer;
use super::html::{Html, esc, url_part};
use super::layout::{self, Section};
use super::parts::{self, pager, refused, when};

/// `?cursor=…`: which page of a list.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub cursor: Option<String>,
}

/// `GET /ui/products`
pub async fn list(
    Viewer(viewer): Viewer,
    State(app): State<App>,
    Query(query): Query<ListQuery>,
) -> Response {
    let page = match otter_app::products::list(&app, &parts::page(query.cursor.as_deref())).await {
        Ok(page) => page,
        Err(e) => return refused(&viewer, e),
    };
    let mut body = Html::new();
    body.raw("<h1>Products</h1>");
    if page.items.is_empty() {
        body.raw("<p class=\"muted\">No products yet.</p>");
    } else {
        body.raw(
            "<div class=\"scroll\"><table><thead><tr><th>Name</th><th>Version scheme</th>\
             <th>Created</th></tr></thead><tbody>",
        );
        for product in &page.items {
            body.add(format_args!(
                "<tr><td><a href=\"/ui/products/{}\">{}</a></td><td>{}</td><td>{}</td></tr>",
                url_part(&product.name),
                esc(&product.name),
                product.scheme,
                when(product.created_at),
            ));
        }
        body.raw("</tbody></table></div>");
    }
    body.push(&pager("/ui/products", &[], page.next_cursor.as_deref()));
    if viewer.role >= Role::Admin {
        body.raw(
            "<h2>Create a product</h2>\
             <form class=\"panel\" name=\"create-product\" data-api=\"POST /api/v1/products\" \
             data-then=\"/ui/products/{name}\">\
             <label>Name<input name=\"name\" required maxlength=\"128\" \
             pattern=\"[A-Za-z0-9_\\-][A-Za-z0-9._\\-]*\" \
             title=\"A-Z a-z 0-9 . _ - (not starting with a dot)\"></label>\
             <label>Version scheme<select name=\"scheme\">\
             <option value=\"semver\">semver (1.4.2)</option>\
             <option value=\"lexical\">lexical (compared as text)</option>\
             <option value=\"opaque\">opaque (no order)</option></select></label>\
             <div class=\"actions\"><button class=\"primary\" type=\"submit\">Create product\
             </button></div></form>",
        );
    }
    layout::page(&viewer, Section::Products, "products", "Products", body)
}

/// A regular expression (HTML `pattern`, compiled with the `v` flag) for versions of `scheme`,
/// as [`otter_core::Version::parse`] takes them, so the browser refuses most bad versions
/// before sending; the API still has the last word.
fn version_pattern(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Semver => {
            "(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\
             (-[0-9A-Za-z\\-]+(\\.[0-9A-Za-z\\-]+)*)?(\\+[0-9A-Za-z\\-]+(\\.[0-9A-Za-z\\-]+)*)?"
        }
        Scheme::Lexical | Scheme::Opaque => "[A-Za-z0-9._+~\\-]+",
    }
}

/// The flags of a release as badges.
pub fn flags(release: &Release) -> Html {
    let mut h = Html::new();
    if release.yanked {
        h.raw("<span class=\"badge bad\">yanked</span> ");
    }
    if release.deprecated {
        h.raw("<span class=\"badge warn\">deprecated</span> ");
    }
    if release.mandatory {
        h.raw("<span class=\"badge\">mandatory</span> ");
    }
    h
}

/// `GET /ui/products/{product}`
pub async fn show(
    Viewer(viewer): Viewer,
    State(app): State<App>,
    Path(name): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    let index = match app.product(&name).await {
        Ok(index) => index,
        Err(e) => return refused(&viewer, e),
    };
    let page = match releases::list(&app, &name, &parts::page(query.cursor.as_deref())).await {
        Ok(page) => page,
        Err(e) => return refused(&viewer, e),
    };
    let product = url_part(&name);
    let mut body = Html::new();
    body.add(format_args!(
        "<div class=\"crumbs\"><a href=\"/ui/products\">Products</a></div><h1>{}</h1>\
         <p class=\"muted\">Versions: {}. <a href=\"/ui/devices?product={product}\">Devices</a> · \
         <a href=\"/ui/products/{product}/rollouts\">Rollouts</a></p><h2>Releases</h2>",
        esc(&name),
        index.product.scheme,
    ));
    if page.items.is_empty() {
        body.raw("<p class=\"muted\">No releases yet.</p>");
    } else {
        body.raw(
            "<div class=\"scroll\"><table id=\"releases\"><thead><tr><th>Version</th>\
             <th>Channels</th><th>Flags</th><th>Signature</th><th>Published</th></tr></thead>\
             <tbody>",
        );
        for release in &page.items {
            let signed =
                trust::signature_status(&index, &release.version).is_some_and(|s| s.is_signed());
            body.add(format_args!(
                "<tr data-version=\"{}\"><td><a href=\"/ui/products/{product}/releases/{}\">{}\
                 </a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&release.version),
                url_part(&release.version),
                esc(&release.version),
                esc(&release.channels.join(", ")),
                flags(release),
                if signed {
                    "<span class=\"badge ok\">signed</span>"
                } else {
                    "<span class=\"muted\">unsigned</span>"
                },
                when(release.created_at),
            ));
        }
        body.raw("</tbody></table></div>");
    }
    body.push(&pager(
        &format!("/ui/products/{product}"),
        &[],
        page.next_cursor.as_deref(),
    ));
    if viewer.role >= Role::Publisher {
        body.push(&publish_area(&product, index.product.scheme));
    }
    layout::page(&viewer, Section::Products, "product", &name, body)
}

/// The upload widget (`assets/otter.js`: drop zone or file input, resumable chunks, progress)
/// and the publish form it reveals, filled with the uploaded artifact's SHA-256. `product` is
/// already a URL part.
fn publish_area(product: &str, scheme: Scheme) -> Html {
    let mut h = Html::new();
    h.raw(
        "<h2>Publish a release</h2>\
         <div class=\"upload\" data-upload>\
         <label class=\"dropzone\">Drop a firmware image here, or choose a file\
         <input type=\"file\" name=\"image\"></label>\
         <progress value=\"0\" max=\"1\" hidden></progress>\
         <p class=\"upload-status muted\" role=\"status\"></p></div>",
    );
    h.add(format_args!(
        "<form class=\"panel\" name=\"publish\" hidden data-api=\"POST /api/v1/products/{product}/releases\" \
         data-then=\"/ui/products/{product}/releases/{{version}}\">\
         <label>Artifact (SHA-256)<input name=\"artifact\" required readonly class=\"mono\"></label>\
         <label>Version<input name=\"version\" required maxlength=\"{MAX_VERSION_LEN}\" \
         pattern=\"{}\" title=\"A {scheme} version\" autocomplete=\"off\"></label>\
         <label>Channels (comma-separated; none: stable)<input name=\"channels\" data-type=\"list\" \
         placeholder=\"stable\"></label>\
         <label>Title<input name=\"title\" data-max=\"{MAX_TITLE_LEN}\"></label>\
         <label>Summary<textarea name=\"summary\" data-max=\"{MAX_SUMMARY_LEN}\"></textarea></label>\
         <label>Release notes URL<input name=\"releaseNotesUrl\" type=\"url\"></label>\
         <label>Oldest version it updates from (optional)<input name=\"minSourceVersion\"></label>\
         <label><span><input name=\"mandatory\" type=\"checkbox\"> Mandatory</span></label>\
         <label>Signed manifest (DSSE envelope, for products with a root of trust)\
         <textarea name=\"signature\" data-type=\"json\"></textarea></label>\
         <div class=\"actions\"><button class=\"primary\" type=\"submit\">Publish release</button>\
         </div></form>",
        esc(version_pattern(scheme)),
    ));
    h
}
