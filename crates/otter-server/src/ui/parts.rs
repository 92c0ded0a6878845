//! Small pieces the fleet pages (devices, rollouts, tokens, users, audit) share: times as
//! people read them, a use case's refusal as a page, paging links that keep the filters, and
//! the product chooser.

use axum::response::Response;
use otter_app::{App, AppError, AppResult};
use otter_core::model::Actor;
use otter_store::PageRequest;

use super::html::{Html, esc, url_part};
use super::layout;
use crate::error::ApiError;

/// Rows per page of every list.
pub const PAGE_SIZE: u32 = 50;

/// Most products a chooser offers (a product past them is reached by its URL).
const MAX_PRODUCTS: u32 = 200;

/// Page `cursor` of a list (`None`: the first).
pub fn page(cursor: Option<&str>) -> PageRequest {
    PageRequest {
        limit: PAGE_SIZE,
        cursor: cursor.filter(|c| !c.is_empty()).map(str::to_owned),
    }
}

/// A time as `2026-12-06 08:47 UTC`.
pub fn when(unix: i64) -> String {
    let rfc = otter_core::model::format_rfc3339(unix);
    // `2026-12-06T08:47:15Z` → date and minutes; the seconds only clutter a table.
    match (rfc.get(..10), rfc.get(11..16)) {
        (Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => rfc,
    }
}

/// An optional time, or `none`.
pub fn maybe_when(unix: Option<i64>) -> String {
    unix.map_or_else(|| "none".to_owned(), when)
}

/// What a use case refused, as a page with the status the API would answer.
pub fn refused(viewer: &Actor, e: AppError) -> Response {
    let e = ApiError::from(e);
    layout::refusal(viewer, e.status, &e.message)
}

/// A query string (`?a=1&b=2`, or empty) of the `pairs` whose value is not empty.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", url_part(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// The link to a list's next page: `path` with the list's filters `pairs` and the cursor.
pub fn pager(path: &str, pairs: &[(&str, &str)], next: Option<&str>) -> Html {
    let mut h = Html::new();
    if let Some(cursor) = next {
        let mut all = pairs.to_vec();
        all.push(("cursor", cursor));
        h.add(format_args!(
            "<nav class=\"pager\"><a href=\"{}{}\" rel=\"next\">Next page</a></nav>",
            esc(path),
            esc(&query(&all))
        ));
    }
    h
}

/// The names of the products (the first [`MAX_PRODUCTS`]), for choosers.
pub async fn product_names(app: &App) -> AppResult<Vec<String>> {
    let page = PageRequest {
        limit: MAX_PRODUCTS,
        cursor: None,
    };
    let products = otter_app::products::list(app, &page).await?;
    Ok(products.items.into_iter().map(|p| p.name).collect())
}

/// A `<select name="product">` of `products` with `chosen` selected.
pub fn product_select(products: &[String], chosen: &str) -> Html {
    let mut h = Html::new();
    h.raw("<label>Product<select name=\"product\">");
    for name in products {
        let selected = if name == chosen { " selected" } else { "" };
        h.add(format_args!(
            "<option{selected} value=\"{}\">{}</option>",
            esc(name),
            esc(name)
        ));
    }
    h.raw("</select></label>");
    h
}

/// A `<select>` named `name` of `(value, label)` options with `chosen` selected.
pub fn select(name: &str, label: &str, options: &[(&str, &str)], chosen: &str) -> Html {
    let mut h = Html::new();
    h.add(format_args!(
        "<label>{}<select name=\"{}\">",
        esc(label),
        esc(name)
    ));
    for (value, text) in options {
        let selected = if *value == chosen { " selected" } else { "" };
        h.add(format_args!(
            "<option{selected} value=\"{}\">{}</option>",
            esc(value),
            esc(text)
        ));
    }
    h.raw("</select></label>");
    h
}

/// A text `<input>` named `name` with `value`, in a label.
pub fn text_input(name: &str, label: &str, value: &str) -> Html {
    let mut h = Html::new();
    h.add(format_args!(
        "<label>{}<input name=\"{}\" value=\"{}\"></label>",
        esc(label),
        esc(name),
        esc(value)
    ));
    h
}

/// A button alone in a `data-api` form: `api` is `METHOD /path` (already encoded), `fields`
/// hidden inputs, `confirm` the question a destructive change asks first.
pub fn action(api: &str, fields: &[(&str, &str)], button: &str, confirm: Option<&str>) -> Html {
    let mut h = Html::new();
    h.add(format_args!(
        "<form class=\"inline\" data-api=\"{}\"",
        esc(api)
    ));
    if let Some(question) = confirm {
        h.add(format_args!(" data-confirm=\"{}\"", esc(question)));
    }
    h.raw(">");
    for (name, value) in fields {
        // `null` clears a field (a pin, an assigned channel), `true`/`false` set a flag: sent
        // as JSON, not as strings.
        let kind = if matches!(*value, "null" | "true" | "false") {
            " data-type=\"json\""
        } else {
            ""
        };
        h.add(format_args!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\"{kind}>",
            esc(name),
            esc(value)
        ));
    }
    let class = if confirm.is_some() { "danger" } else { "" };
    h.add(format_args!(
        "<button type=\"submit\" class=\"{class}\">{}</button></form>",
        esc(button)
    ));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_to_the_minute() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(maybe_when(None), "none");
    }

    #[test]
    fn queries_keep_set_filters_only_and_encode_them() {
        assert_eq!(query(&[("tag", "a b"), ("version", "")]), "?tag=a%20b");
        assert_eq!(query(&[("tag", "")]), "");
    }
}
