//! The dashboard, `/ui/`: a card per product with its fleet seen lately, a chart of the versions
//! it runs, its rollouts under way and its recent failures (`otter_app::overview`).

use axum::extract::{Query, State};
use axum::response::Response;
use otter_app::App;
use otter_app::overview::{self, FAILURE_DAYS, Overview};
use otter_store::PageRequest;

use super::Viewer;
use super::html::{Html, esc, url_part};
use super::layout::{self, Section};
use super::parts::{pager, refused, when};
use super::products::ListQuery;
use super::svg::{Bar, bars};

/// Product cards per page: each costs a few queries.
const CARDS: u32 = 20;

/// Bar colours of the version chart, the largest version first; "other" is grey.
const COLOURS: [&str; 6] = [
    "#1f6feb", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7b83",
];

/// `GET /ui/`
pub async fn show(
    Viewer(viewer): Viewer,
    State(app): State<App>,
    Query(query): Query<ListQuery>,
) -> Response {
    let cards = PageRequest {
        limit: CARDS,
        cursor: query.cursor,
    };
    let page = match otter_app::products::list(&app, &cards).await {
        Ok(page) => page,
        Err(e) => return refused(&viewer, e),
    };
    let now = otter_store::now();
    let mut body = Html::new();
    body.raw("<h1>Dashboard</h1>");
    if page.items.is_empty() {
        body.raw("<p class=\"muted\">No products yet: create one under <a href=\"/ui/products\">Products</a>.</p>");
    }
    body.raw("<div class=\"cards\">");
    for product in &page.items {
        match overview::product(&app, product, now).await {
            Ok(overview) => body.push(&card(&overview)),
            Err(e) => return refused(&viewer, e),
        };
    }
    body.raw("</div>");
    body.push(&pager("/ui/", &[], page.next_cursor.as_deref()));
    layout::page(&viewer, Section::Dashboard, "dashboard", "Dashboard", body)
}

/// One product's card.
fn card(o: &Overview) -> Html {
    let p = url_part(&o.product.name);
    let mut h = Html::new();
    h.add(format_args!(
        "<section class=\"card\" data-product=\"{}\"><h2><a href=\"/ui/products/{p}\">{}</a></h2>\
         <div class=\"stats\"><div><div class=\"stat\">{}</div>seen today</div>\
         <div><div class=\"stat\">{}</div>this week</div>\
         <div><div class=\"stat\">{}</div>devices</div></div>",
        esc(&o.product.name),
        esc(&o.product.name),
        o.seen_day,
        o.seen_week,
        o.devices,
    ));
    let chart: Vec<Bar<'_>> = o
        .versions
        .iter()
        .enumerate()
        .map(|(i, (version, n))| Bar {
            label: version,
            value: *n,
            colour: if version == "other" {
                "#8c959f"
            } else {
                COLOURS[i % COLOURS.len()]
            },
        })
        .collect();
    h.raw("<h3>Versions</h3>");
    h.push(&bars(
        &format!("Devices of {} by version", o.product.name),
        &chart,
    ));
    h.raw("<h3>Rollouts</h3>");
    if o.rollouts.is_empty() {
        h.raw("<p class=\"muted\">None under way.</p>");
    } else {
        h.raw("<ul class=\"rollouts\">");
        for r in &o.rollouts {
            h.add(format_args!(
                "<li><a href=\"/ui/products/{p}/rollouts/{}\">{} on {}</a>: stage {} of {} \
                 <span class=\"badge{}\">{}</span></li>",
                r.id,
                esc(&r.version),
                esc(&r.channel),
                r.current_stage + 1,
                r.stages.len(),
                if r.state.as_str() == "paused" {
                    " warn"
                } else {
                    " ok"
                },
                r.state.as_str(),
            ));
        }
        h.raw("</ul>");
    }
    h.add(format_args!("<h3>Failures, last {FAILURE_DAYS} days</h3>"));
    if o.failures.is_empty() {
        h.raw("<p class=\"muted\">None.</p>");
    } else {
        h.raw("<ul class=\"failures\">");
        for f in &o.failures {
            h.add(format_args!(
                "<li><span class=\"badge bad\">{}</span> <a href=\"/ui/products/{p}/devices/{}\">{}</a> \
                 {} <span class=\"muted\">{}</span></li>",
                f.state,
                url_part(&f.device),
                esc(&f.device),
                esc(&f.version),
                when(f.created_at),
            ));
        }
        h.raw("</ul>");
    }
    h.raw("</section>");
    h
}
