//! The rollouts pages: every product's latest rollouts, one product's rollouts with the create
//! form (a stage editor and the policy, composed into the API's JSON by `otter.js`), and one
//! rollout's page: its state, the reason it paused, a live per-stage chart (a fragment the page
//! refreshes every 2 s) and the operator's moves as `data-api` forms.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use otter_app::{App, rollouts};
use otter_core::model::{DEFAULT_CHANNEL, Role};
use otter_core::rollout::{Rollout, RolloutState, Stage};
use otter_store::PageRequest;
use serde::Deserialize;

use super::Viewer;
use super::html::{Html, esc, url_part};
use super::layout::{self, Section};
use super::parts::{self, action, maybe_when, when};
use super::svg::{self, Series};

/// Rollouts per product on `/ui/rollouts`.
const LATEST: u32 = 5;

/// The chart's series, in the order of [`otter_core::rollout::StageCounts`]'s fields.
const SERIES: [Series<'static>; 5] = [
    Series {
        name: "offered",
        colour: "#8fb3ef",
    },
    Series {
        name: "downloading",
        colour: "#1f6feb",
    },
    Series {
        name: "installed",
        colour: "#1a7f37",
    },
    Series {
        name: "failed",
        colour: "#cf222e",
    },
    Series {
        name: "penalty",
        colour: "#9a6700",
    },
];

fn rollouts_url(product: &str) -> String {
    format!("/ui/products/{}/rollouts", url_part(product))
}

fn rollout_url(product: &str, id: i64) -> String {
    format!("{}/{id}", rollouts_url(product))
}

fn state_badge(state: RolloutState) -> Html {
    let class = match state {
        RolloutState::Running => "ok",
        RolloutState::Paused => "warn",
        RolloutState::Aborted => "bad",
        RolloutState::Scheduled | RolloutState::Completed => "",
    };
    let mut h = Html::new();
    h.add(format_args!(
        "<span class=\"badge {class}\" data-state=\"{0}\">{0}</span>",
        state.as_str()
    ));
    h
}

fn stage_text(stage: &Stage) -> String {
    let mut parts = Vec::new();
    if !stage.tags.is_empty() {
        parts.push(format!("tags {}", stage.tags.join(", ")));
    }
    if let Some(percent) = stage.percent {
        parts.push(format!("{percent} %"));
    }
    parts.join(", ")
}

/// "2 of 3", or "done" past the last stage.
fn stage_position(rollout: &Rollout) -> String {
    if rollout.state == RolloutState::Completed {
        return "done".to_owned();
    }
    format!("{} of {}", rollout.current_stage + 1, rollout.stages.len())
}

/// A table of rollouts; `product` a column when the table mixes products.
fn table(rollouts: &[Rollout], with_product: bool) -> Html {
    let mut h = Html::new();
    h.raw("<div class=\"scroll\"><table><thead><tr>");
    if with_product {
        h.raw("<th>Product</th>");
    }
    h.raw(
        "<th>Rollout</th><th>Version</th><th>Channel</th><th>State</th><th>Stage</th>\
         <th>Created</th><th>Reason</th></tr></thead><tbody>",
    );
    for r in rollouts {
        h.raw("<tr>");
        if with_product {
            h.add(format_args!(
                "<td><a href=\"{}\">{}</a></td>",
                esc(&rollouts_url(&r.product)),
                esc(&r.product)
            ));
        }
        h.add(format_args!(
            "<td><a href=\"{}\">#{}</a></td><td>{}</td><td>{}</td><td>",
            esc(&rollout_url(&r.product, r.id)),
            r.id,
            esc(&r.version),
            esc(&r.channel)
        ));
        h.push(&state_badge(r.state));
        h.add(format_args!(
            "</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&stage_position(r)),
            esc(&when(r.created_at)),
            esc(r.reason.as_deref().unwrap_or(""))
        ));
    }
    h.raw("</tbody></table></div>");
    h
}

/// `GET /ui/rollouts`: the latest rollouts of every product, each product linking to its own
/// list (where rollouts are created).
pub async fn all(Viewer(viewer): Viewer, State(app): State<App>) -> Response {
    let products = match parts::product_names(&app).await {
        Ok(products) => products,
        Err(e) => return parts::refused(&viewer, e),
    };
    let mut body = Html::new();
    body.raw("<h1>Rollouts</h1>");
    if products.is_empty() {
        body.raw("<p class=\"muted\">No products yet.</p>");
    } else {
        body.raw("<p class=\"actions\">");
        for product in &products {
            body.add(format_args!(
                "<a class=\"button\" href=\"{}\">{}</a>",
                esc(&rollouts_url(product)),
                esc(product)
            ));
        }
        body.raw("</p>");
    }
    let latest = PageRequest {
        limit: LATEST,
        cursor: None,
    };
    let mut shown = Vec::new();
    for product in &products {
        match rollouts::list(&app, product, &latest).await {
            Ok(page) => shown.extend(page.items),
            Err(e) => return parts::refused(&viewer, e),
        }
    }
    shown.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    if !shown.is_empty() {
        body.raw("<h2>Latest</h2>");
        body.push(&table(&shown, true));
    }
    layout::page(&viewer, Section::Rollouts, "rollouts", "Rollouts", body)
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
}

/// `GET /ui/products/{product}/rollouts`: the product's rollouts, newest first, and the create
/// form for publishers.
pub async fn list(
    Viewer(viewer): Viewer,
    State(app): State<App>,
    Path(product): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    let page = parts::page(query.cursor.as_deref());
    let listed = match rollouts::list(&app, &product, &page).await {
        Ok(listed) => listed,
        Err(e) => return parts::refused(&viewer, e),
    };
    let mut body = Html::new();
    body.add(format_args!(
        "<div class=\"crumbs\"><a href=\"/ui/rollouts\">Rollouts</a></div>\
         <h1>Rollouts of {}</h1>",
        esc(&product)
    ));
    if listed.items.is_empty() {
        body.raw("<p class=\"muted\">No rollouts yet.</p>");
    } else {
        body.push(&table(&listed.items, false));
    }
    body.push(&parts::pager(
        &rollouts_url(&product),
        &[],
        listed.next_cursor.as_deref(),
    ));
    if viewer.role >= Role::Publisher {
        body.push(&create_form(&product));
    }
    layout::page(&viewer, Section::Rollouts, "rollouts", "Rollouts", body)
}

/// The create form. Stage rows and policy fields carry no `name`: `otter.js` composes them
/// into the `stages` and `policy` JSON fields the API takes (docs/rollouts.md).
fn create_form(product: &str) -> Html {
    let mut h = Html::new();
    h.add(format_args!(
        "<h2>Start a rollout</h2><form class=\"panel\" data-rollout \
         data-api=\"POST /api/v1/products/{}/rollouts\" data-then=\"{}/{{id}}\">",
        esc(&url_part(product)),
        esc(&rollouts_url(product)),
    ));
    h.add(format_args!(
        "<label>Version<input name=\"version\" required placeholder=\"1.2.0\"></label>\
         <label>Channel<input name=\"channel\" value=\"{}\" required></label>\
         <fieldset class=\"stages\"><legend>Stages, in order</legend><div data-stage-rows>\
         <div class=\"stage-row\"><label>Tags<input data-stage=\"tags\" \
         placeholder=\"canary, lab\"></label><label>Percent<input data-stage=\"percent\" \
         type=\"number\" step=\"0.01\" min=\"0.01\" max=\"100\" value=\"10\"></label>\
         <button type=\"button\" data-remove-stage>Remove</button></div></div>\
         <button type=\"button\" data-add-stage>Add stage</button>\
         <input type=\"hidden\" name=\"stages\" data-type=\"json\" data-keep value=\"[]\">\
         </fieldset><fieldset class=\"policy\"><legend>Policy (empty: the default shown)\
         </legend>",
        esc(DEFAULT_CHANNEL)
    ));
    let fields: [(&str, &str, &str); 9] = [
        (
            "pauseOn.failures",
            "Pause after this many failures",
            "never",
        ),
        ("pauseOn.failurePercent", "…or this failure %", "never"),
        ("pauseOn.minAttempts", "…once this many attempts ended", "0"),
        (
            "autoAdvance.soakSeconds",
            "Advance by itself after soaking (s)",
            "by hand",
        ),
        (
            "autoAdvance.minInstalled",
            "…with at least this many installed",
            "0",
        ),
        (
            "maxConcurrent",
            "Most devices updating at once",
            "0 (no cap)",
        ),
        ("penaltyFailures", "Penalty box after failures", "3"),
        ("penaltySeconds", "Penalty box for (s)", "86400"),
        (
            "deviceTimeoutSeconds",
            "A silent device fails after (s)",
            "3600",
        ),
    ];
    for (path, label, default) in fields {
        h.add(format_args!(
            "<label>{}<input data-policy=\"{}\" type=\"number\" min=\"0\" step=\"any\" \
             placeholder=\"{}\"></label>",
            esc(label),
            esc(path),
            esc(default)
        ));
    }
    h.raw(
        "<input type=\"hidden\" name=\"policy\" data-type=\"json\" data-keep value=\"{}\">\
         </fieldset><button class=\"primary\" type=\"submit\">Start rollout</button></form>",
    );
    h
}

/// The rollout `id` of the path, or the 404 page a wrong one gets.
async fn find(
    viewer: &otter_core::model::Actor,
    app: &App,
    product: &str,
    id: &str,
) -> Result<rollouts::RolloutView, Response> {
    let Ok(id) = id.parse::<i64>() else {
        return Err(layout::refusal(
            viewer,
            StatusCode::NOT_FOUND,
            &format!("product {product:?} has no rollout {id:?}"),
        ));
    };
    rollouts::show(app, product, id)
        .await
        .map_err(|e| parts::refused(viewer, e))
}

/// `GET /ui/products/{product}/rollouts/{id}`.
pub async fn show(
    Viewer(viewer): Viewer,
    State(app): State<App>,
    Path((product, id)): Path<(String, String)>,
) -> Response {
    let view = match find(&viewer, &app, &product, &id).await {
        Ok(view) => view,
        Err(refused) => return refused,
    };
    let r = &view.rollout;
    let url = rollout_url(&product, r.id);
    let mut body = Html::new();
    body.add(format_args!(
        "<div class=\"crumbs\"><a href=\"{}\">Rollouts of {}</a></div>\
         <h1>Rollout #{} of {} to {}</h1>",
        esc(&rollouts_url(&product)),
        esc(&product),
        r.id,
        esc(&r.version),
        esc(&r.channel)
    ));
    if viewer.role >= Role::Publisher {
        body.push(&moves(&product, r));
    }
    body.add(format_args!(
        "<div id=\"live\" data-refresh=\"{}/chart\" data-every=\"2\">",
        esc(&url)
    ));
    body.push(&live(&view));
    body.raw("</div><div class=\"cards\"><div class=\"card\"><h2>Stages</h2><ol>");
    for stage in &r.stages {
        body.add(format_args!("<li>{}</li>", esc(&stage_text(stage))));
    }
    body.raw("</ol></div><div class=\"card\"><h2>Policy</h2><dl class=\"facts\">");
    let p = &r.policy;
    let mut facts = vec![
        (
            "Pauses",
            p.pause_on.as_ref().map_or("by hand only".to_owned(), |on| {
                let mut when = Vec::new();
                if let Some(n) = on.failures {
                    when.push(format!("at {n} failures"));
                }
                if let Some(pct) = on.failure_percent {
                    when.push(format!(
                        "at {pct} % failed after {} attempts",
                        on.min_attempts
                    ));
                }
                when.join(", or ")
            }),
        ),
        (
            "Advances",
            p.auto_advance.as_ref().map_or("by hand".to_owned(), |a| {
                format!(
                    "after {} s with {} installed",
                    a.soak_seconds, a.min_installed
                )
            }),
        ),
        (
            "Most updating at once",
            match p.max_concurrent {
                0 => "no cap".to_owned(),
                n => n.to_string(),
            },
        ),
        (
            "Penalty box",
            format!(
                "after {} failures, for {} s",
                p.penalty_failures, p.penalty_seconds
            ),
        ),
        (
            "Silent device fails after",
            format!("{} s", p.device_timeout_seconds),
        ),
        ("Created", when(r.created_at)),
    ];
    if r.start_at.is_some() {
        facts.push(("Starts", maybe_when(r.start_at)));
    }
    for (name, value) in &facts {
        body.add(format_args!(
            "<dt>{}</dt><dd>{}</dd>",
            esc(name),
            esc(value)
        ));
    }
    body.raw("</dl></div></div>");
    let title = format!("Rollout #{}", r.id);
    layout::page(&viewer, Section::Rollouts, "rollout", &title, body)
}

/// The operator's moves the rollout's state allows.
fn moves(product: &str, r: &Rollout) -> Html {
    let api = format!(
        "POST /api/v1/products/{}/rollouts/{}",
        url_part(product),
        r.id
    );
    let mut h = Html::new();
    h.raw("<div class=\"actions\" id=\"moves\">");
    let movable = matches!(r.state, RolloutState::Running | RolloutState::Paused);
    if movable {
        h.push(&action(&format!("{api}/advance"), &[], "Advance", None));
    }
    // A scheduled rollout can be paused too: it then waits for a resume past its start time.
    if matches!(r.state, RolloutState::Running | RolloutState::Scheduled) {
        h.push(&action(&format!("{api}/pause"), &[], "Pause", None));
    }
    if r.state == RolloutState::Paused {
        h.push(&action(&format!("{api}/resume"), &[], "Resume", None));
    }
    if movable {
        h.push(&action(
            &format!("{api}/retry-failed"),
            &[],
            "Retry failed devices",
            None,
        ));
    }
    if r.state.is_active() {
        h.push(&action(
            &format!("{api}/abort"),
            &[],
            "Abort",
            Some("Abort this rollout? Nobody new gets the release; it cannot be undone."),
        ));
    }
    h.raw("</div>");
    h
}

/// What the page refreshes: the state, the stage, why it paused, and the per-stage chart with
/// its figures as a table too.
fn live(view: &rollouts::RolloutView) -> Html {
    let r = &view.rollout;
    let mut h = Html::new();
    h.raw("<p class=\"status\">");
    h.push(&state_badge(r.state));
    h.add(format_args!(
        " Stage <strong data-current-stage>{}</strong> · {} devices updating now</p>",
        esc(&stage_position(r)),
        r.in_flight
    ));
    if let Some(reason) = &r.reason {
        let why = match r.state {
            RolloutState::Aborted => "Aborted",
            RolloutState::Paused => "Paused",
            _ => "Stopped before",
        };
        h.add(format_args!(
            "<p class=\"reason\" id=\"reason\"><strong>{why}:</strong> {}</p>",
            esc(reason)
        ));
    }
    let rows: Vec<(String, Vec<u64>)> = view
        .counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                format!("Stage {}", i + 1),
                vec![c.offered, c.downloading, c.installed, c.failed, c.penalty],
            )
        })
        .collect();
    h.push(&svg::stacked("Devices per stage", &SERIES, &rows));
    h.raw("<div class=\"scroll\"><table id=\"counts\"><thead><tr><th>Stage</th>");
    for s in &SERIES {
        h.add(format_args!("<th>{}</th>", esc(s.name)));
    }
    h.raw("</tr></thead><tbody>");
    for (i, (label, values)) in rows.iter().enumerate() {
        h.add(format_args!("<tr><td>{}</td>", esc(label)));
        for (value, s) in values.iter().zip(&SERIES) {
            h.add(format_args!(
                "<td data-stage=\"{}\" data-count=\"{}\">{value}</td>",
                i + 1,
                s.name
            ));
        }
        h.raw("</tr>");
    }
    h.raw("</tbody></table></div>");
    h
}

/// `GET /ui/products/{product}/rollouts/{id}/chart`: the live part of the rollout's page, alone.
pub async fn chart(
    Viewer(viewer): Viewer,
    State(app): State<App>,
    Path((product, id)): Path<(String, String)>,
) -> Response {
    match find(&viewer, &app, &product, &id).await {
        Ok(view) => live(&view).respond(StatusCode::OK),
        Err(refused) => refused,
    }
}
