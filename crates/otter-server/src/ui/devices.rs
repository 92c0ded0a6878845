//! The devices pages: a product's devices with the registry's filters (tag, version, channel,
//! last seen, rollout status) as a GET form, and one device's page (facts, attributes, tags,
//! rollout attempts, report history) with the operator's changes as `data-api` forms to the
//! admin API (tag, pin, channel for publishers; allow/deny for admins).

use axum::extract::{Path, Query, State};
use axum::response::Response;
use otter_app::{App, devices, registry};
use otter_core::model::{Device, Role};
use otter_store::{DeviceFilter, now};
use serde::Deserialize;

use super::Viewer;
use super::html::{Html, esc, url_part};
use super::layout::{self, Section};
use super::parts::{self, action, maybe_when, when};

const DAY: i64 = 86_400;

/// The "last seen" choices: the value in the query, its label, and the filter it means
/// (seen after, or not seen since, that many seconds ago).
const SEEN: [(&str, &str, i64, bool); 6] = [
    ("day", "in the last day", DAY, true),
    ("week", "in the last week", 7 * DAY, true),
    ("month", "in the last 30 days", 30 * DAY, true),
    ("not-day", "not for a day", DAY, false),
    ("not-week", "not for a week", 7 * DAY, false),
    ("not-month", "not for 30 days", 30 * DAY, false),
];

const STATUSES: [(&str, &str); 6] = [
    ("", "any"),
    ("offered", "offered"),
    ("downloading", "downloading"),
    ("installed", "installed"),
    ("failed", "failed"),
    ("penalty", "in the penalty box"),
];

/// `/ui/devices?product=&device=&tag=&version=&channel=&status=&seen=&cursor=`: every field is
/// text, so no query is refused; one that means nothing (an unknown status) is said on the page.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    product: String,
    #[serde(default)]
    device: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    seen: String,
    cursor: Option<String>,
}

impl ListQuery {
    fn pairs(&self) -> [(&'static str, &str); 7] {
        [
            ("product", &self.product),
            ("device", &self.device),
            ("tag", &self.tag),
            ("version", &self.version),
            ("channel", &self.channel),
            ("status", &self.status),
            ("seen", &self.seen),
        ]
    }

    fn filter(&self) -> Result<DeviceFilter, String> {
        let set = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        let mut filter = DeviceFilter {
            device: set(&self.device),
            tag: set(&self.tag),
            version: set(&self.version),
            channel: set(&self.channel),
            ..DeviceFilter::default()
        };
        let at = now();
        if !self.status.is_empty() {
            filter.status = Some((self.status.parse()?, at));
        }
        if !self.seen.is_empty() {
            let (_, _, ago, within) = SEEN
                .iter()
                .find(|(value, ..)| *value == self.seen)
                .ok_or_else(|| format!("unknown last-seen choice {:?}", self.seen))?;
            if *within {
                filter.seen_after = Some(at - ago);
            } else {
                filter.seen_before = Some(at - ago);
            }
        }
        Ok(filter)
    }
}

/// `GET /ui/devices`: one product's devices (the chosen one, else the first).
pub async fn list(
    Viewer(viewer): Viewer,
    State(app): State<App>,
    Query(query): Query<ListQuery>,
) -> Response {
    let products = match parts::product_names(&app).await {
        Ok(products) => products,
        Err(e) => return parts::refused(&viewer, e),
    };
    let mut body = Html::new();
    body.raw("<h1>Devices</h1>");
    let product = if query.product.is_empty() {
        match products.first() {
            Some(first) => first.clone(),
            None => {
                body.raw("<p class=\"muted\">No products yet: devices appear here once a product has some.</p>");
                return layout::page(&viewer, Section::Devices, "devices", "Devices", body);
            }
        }
    } else {
        query.product.clone()
    };
    body.raw("<form class=\"filters\" method=\"get\" action=\"/ui/devices\">");
    body.push(&parts::product_select(&products, &product));
    body.push(&parts::text_input("device", "Device id", &query.device));
    body.push(&parts::text_input("tag", "Tag", &query.tag));
    body.push(&parts::text_input("version", "Version", &query.version));
    body.push(&parts::text_input("channel", "Channel", &query.channel));
    body.push(&parts::select(
        "status",
        "Rollout status",
        &STATUSES,
        &query.status,
    ));
    let mut seen: Vec<(&str, &str)> = vec![("", "any time")];
    seen.extend(SEEN.iter().map(|(value, label, ..)| (*value, *label)));
    body.push(&parts::select("seen", "Last seen", &seen, &query.seen));
    body.raw("<button class=\"primary\" type=\"submit\">Filter</button></form>");

    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(why) => {
            body.add(format_args!("<p class=\"form-error\">{}</p>", esc(&why)));
            return layout::page(&viewer, Section::Devices, "devices", "Devices", body);
        }
    };
    let page = parts::page(query.cursor.as_deref());
    let devices = match registry::list(&app, &product, &filter, &page).await {
        Ok(devices) => devices,
        Err(e) => return parts::refused(&viewer, e),
    };
    if devices.items.is_empty() {
        body.raw("<p class=\"muted\">No device matches.</p>");
    } else {
        body.raw(
            "<div class=\"scroll\"><table><thead><tr><th>Device</th><th>Version</th>\
             <th>Channel</th><th>Tags</th><th>Last seen</th><th>Protocol</th></tr></thead><tbody>",
        );
        for device in &devices.items {
            body.push(&row(&product, device));
        }
        body.raw("</tbody></table></div>");
    }
    let mut pairs = query.pairs();
    pairs[0].1 = &product;
    body.push(&parts::pager(
        "/ui/devices",
        &pairs,
        devices.next_cursor.as_deref(),
    ));
    layout::page(&viewer, Section::Devices, "devices", "Devices", body)
}

fn row(product: &str, device: &Device) -> Html {
    let mut h = Html::new();
    h.add(format_args!(
        "<tr data-device=\"{}\"><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>",
        esc(&device.id),
        esc(&device_url(product, &device.id)),
        esc(&device.id),
        esc(device.current_version.as_deref().unwrap_or("unknown")),
        esc(device
            .assigned_channel
            .as_deref()
            .unwrap_or(&device.channel)),
    ));
    for tag in &device.tags {
        h.add(format_args!("<span class=\"badge\">{}</span> ", esc(tag)));
    }
    h.add(format_args!(
        "</td><td>{}</td><td>{}</td></tr>",
        esc(&when(device.last_seen)),
        esc(device.protocol.as_deref().unwrap_or("")),
    ));
    h
}

/// `/ui/products/{product}/devices/{device}`.
fn device_url(product: &str, device: &str) -> String {
    format!(
        "/ui/products/{}/devices/{}",
        url_part(product),
        url_part(device)
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct ReportsQuery {
    cursor: Option<String>,
}

/// `GET /ui/products/{product}/devices/{device}`.
pub async fn show(
    Viewer(viewer): Viewer,
    State(app): State<App>,
    Path((product, id)): Path<(String, String)>,
    Query(query): Query<ReportsQuery>,
) -> Response {
    let detail = match registry::get(&app, &product, &id).await {
        Ok(detail) => detail,
        Err(e) => return parts::refused(&viewer, e),
    };
    let page = parts::page(query.cursor.as_deref());
    let reports = match devices::reports(&app, &product, Some(&id), &page).await {
        Ok(reports) => reports,
        Err(e) => return parts::refused(&viewer, e),
    };
    let device = &detail.device;
    let publisher = viewer.role >= Role::Publisher;
    let base = format!("/api/v1/products/{}", url_part(&product));
    let device_api = format!("{base}/devices/{}", url_part(&id));

    let mut body = Html::new();
    body.add(format_args!(
        "<div class=\"crumbs\"><a href=\"/ui/devices{}\">Devices of {}</a></div><h1>{}</h1>",
        esc(&parts::query(&[("product", &product)])),
        esc(&product),
        esc(&id)
    ));
    body.raw("<div class=\"cards\"><div class=\"card\"><h2>Facts</h2><dl class=\"facts\">");
    let facts: [(&str, String); 10] = [
        ("First seen", when(device.first_seen)),
        ("Last seen", when(device.last_seen)),
        (
            "Version",
            device
                .current_version
                .clone()
                .unwrap_or_else(|| "unknown".into()),
        ),
        (
            "Hash",
            device
                .current_hash
                .clone()
                .unwrap_or_else(|| "unknown".into()),
        ),
        (
            "Protocol",
            device.protocol.clone().unwrap_or_else(|| "unknown".into()),
        ),
        (
            "Address",
            device
                .remote_address
                .clone()
                .unwrap_or_else(|| "unknown".into()),
        ),
        ("Channel asked for", device.channel.clone()),
        (
            "Assigned channel",
            device
                .assigned_channel
                .clone()
                .unwrap_or_else(|| "none".into()),
        ),
        (
            "Pinned to",
            device
                .pinned_version
                .clone()
                .unwrap_or_else(|| "none".into()),
        ),
        (
            "Auto-update",
            if device.auto_update { "on" } else { "off" }.into(),
        ),
    ];
    for (name, value) in &facts {
        // Only the hash is code; times and names wrap as text.
        let class = if *name == "Hash" {
            " class=\"mono\""
        } else {
            ""
        };
        body.add(format_args!(
            "<dt>{}</dt><dd{class}>{}</dd>",
            esc(name),
            esc(value)
        ));
    }
    body.raw("</dl></div>");

    // Tags, with the publisher's tag and untag forms.
    body.raw("<div class=\"card\" id=\"tags\"><h2>Tags</h2><p>");
    if device.tags.is_empty() {
        body.raw("<span class=\"muted\">No tags.</span>");
    }
    for tag in &device.tags {
        body.add(format_args!("<span class=\"badge\">{}</span> ", esc(tag)));
    }
    body.raw("</p>");
    if publisher {
        let only_this = parts::query(&[("device", &id)]);
        body.add(format_args!(
            "<form class=\"inline\" data-api=\"POST {}/tags/{{tag}}{}\"><input name=\"tag\" \
             placeholder=\"tag\" required aria-label=\"Tag\"><button type=\"submit\">Add tag\
             </button></form><div class=\"actions\">",
            esc(&base),
            esc(&only_this)
        ));
        for tag in &device.tags {
            let api = format!("DELETE {base}/tags/{}{only_this}", url_part(tag));
            body.push(&action(&api, &[], &format!("Remove tag {tag}"), None));
        }
        body.raw("</div>");
    }
    body.raw("</div>");

    // What the device says about itself.
    body.raw("<div class=\"card\"><h2>Attributes</h2>");
    match device.attributes.as_object().filter(|a| !a.is_empty()) {
        None => {
            body.raw("<p class=\"muted\">None reported.</p>");
        }
        Some(attributes) => {
            body.raw("<dl class=\"facts\">");
            for (name, value) in attributes {
                let shown = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                body.add(format_args!(
                    "<dt>{}</dt><dd class=\"mono\">{}</dd>",
                    esc(name),
                    esc(&shown)
                ));
            }
            body.raw("</dl>");
        }
    }
    body.raw("</div>");

    if publisher {
        body.push(&controls(&device_api, device));
    }
    if viewer.role >= Role::Admin {
        match registry::admission(&app, &product).await {
            Ok(rules) => body.push(&admission(&base, &id, &rules)),
            Err(e) => return parts::refused(&viewer, e),
        };
    }
    body.raw("</div>");

    body.raw("<h2>Rollout attempts</h2>");
    if detail.rollouts.is_empty() {
        body.raw("<p class=\"muted\">No rollout has taken this device in.</p>");
    } else {
        body.raw(
            "<div class=\"scroll\"><table><thead><tr><th>Rollout</th><th>Version</th>\
             <th>Channel</th><th>Rollout state</th><th>Stage</th><th>Device state</th>\
             <th>Failures</th><th>Penalty until</th></tr></thead><tbody>",
        );
        for attempt in &detail.rollouts {
            body.add(format_args!(
                "<tr><td><a href=\"/ui/products/{}/rollouts/{}\">#{}</a></td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                url_part(&product),
                attempt.rollout,
                attempt.rollout,
                esc(&attempt.version),
                esc(&attempt.channel),
                attempt.rollout_state.as_str(),
                attempt.stage + 1,
                attempt.state.as_str(),
                attempt.failures,
                esc(&maybe_when(attempt.penalty_until)),
            ));
        }
        body.raw("</tbody></table></div>");
    }

    body.raw("<h2>Report history</h2>");
    if reports.items.is_empty() {
        body.raw("<p class=\"muted\">No reports from this device.</p>");
    } else {
        body.raw(
            "<div class=\"scroll\"><table id=\"reports\"><thead><tr><th>When</th>\
             <th>Version</th><th>State</th><th>Message</th></tr></thead><tbody>",
        );
        for report in &reports.items {
            body.add(format_args!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&when(report.created_at)),
                esc(&report.version),
                report.state.as_str(),
                esc(report.message.as_deref().unwrap_or("")),
            ));
        }
        body.raw("</tbody></table></div>");
    }
    body.push(&parts::pager(
        &device_url(&product, &id),
        &[],
        reports.next_cursor.as_deref(),
    ));
    layout::page(&viewer, Section::Devices, "device", &id, body)
}

/// The publisher's controls: pin to a release, move to a channel, and undo either.
fn controls(device_api: &str, device: &Device) -> Html {
    let mut h = Html::new();
    h.add(format_args!(
        "<div class=\"card\" id=\"controls\"><h2>Pin and channel</h2>\
         <form class=\"inline\" data-api=\"PATCH {api}\"><input name=\"pinnedVersion\" \
         placeholder=\"version\" required aria-label=\"Version to pin\"><button type=\"submit\">\
         Pin to version</button></form>\
         <form class=\"inline\" data-api=\"PATCH {api}\"><input name=\"assignedChannel\" \
         placeholder=\"channel\" required aria-label=\"Channel\"><button type=\"submit\">\
         Move to channel</button></form><div class=\"actions\">",
        api = esc(device_api)
    ));
    let api = format!("PATCH {device_api}");
    if device.pinned_version.is_some() {
        h.push(&action(&api, &[("pinnedVersion", "null")], "Unpin", None));
    }
    if device.assigned_channel.is_some() {
        h.push(&action(
            &api,
            &[("assignedChannel", "null")],
            "Clear assigned channel",
            None,
        ));
    }
    h.raw("</div></div>");
    h
}

/// The admin's admission controls for one device: its rule, allow, deny, clear.
fn admission(base: &str, id: &str, rules: &registry::AdmissionRules) -> Html {
    let rule = if rules.denied.iter().any(|d| d == id) {
        "denied"
    } else if rules.allowed.iter().any(|d| d == id) {
        "allowed"
    } else {
        "no rule of its own"
    };
    let mut h = Html::new();
    h.add(format_args!(
        "<div class=\"card\" id=\"admission\"><h2>Admission</h2><p>This device: \
         <strong>{rule}</strong>; the product admits <strong>{}</strong>.</p>\
         <div class=\"actions\">",
        esc(&rules.mode)
    ));
    let api = format!("{base}/admission/{}", url_part(id));
    h.push(&action(
        &format!("PUT {api}"),
        &[("access", "allow")],
        "Allow",
        None,
    ));
    h.push(&action(
        &format!("PUT {api}"),
        &[("access", "deny")],
        "Deny",
        Some("Deny this device? Its checks are refused until the rule goes."),
    ));
    if rule != "no rule of its own" {
        h.push(&action(&format!("DELETE {api}"), &[], "Clear rule", None));
    }
    h.raw("</div></div>");
    h
}
