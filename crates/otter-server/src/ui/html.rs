//! HTML built as a string, with everything that comes from data escaped: [`Html`] is a
//! buffer that only takes markup the code wrote ([`Html::raw`], always a literal or other
//! `Html`) or text it escapes ([`Html::text`], [`esc`] inside `format!`).
//!
//! No template engine: the pages are small, and a builder costs no build step nor compile time.

use std::fmt::{self, Display, Write as _};

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A piece of HTML.
#[derive(Debug, Default, Clone)]
pub struct Html(String);

impl Html {
    pub fn new() -> Self {
        Html(String::new())
    }

    /// Markup as written in the code. Never pass data here: use [`Html::text`] or [`esc`].
    pub fn raw(&mut self, markup: &str) -> &mut Self {
        self.0.push_str(markup);
        self
    }

    /// Text, escaped.
    pub fn text(&mut self, text: &str) -> &mut Self {
        write!(self.0, "{}", esc(text)).expect("writing to a String");
        self
    }

    /// Formatted markup: `h.add(format_args!("<td>{}</td>", esc(name)))`, with every value
    /// that comes from data wrapped in [`esc`].
    pub fn add(&mut self, markup: fmt::Arguments<'_>) -> &mut Self {
        self.0.write_fmt(markup).expect("writing to a String");
        self
    }

    /// Another piece.
    pub fn push(&mut self, other: &Html) -> &mut Self {
        self.0.push_str(&other.0);
        self
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This piece as a whole response (a fragment or a page), never cached: it shows live data
    /// and who is signed in.
    pub fn respond(self, status: StatusCode) -> Response {
        (
            status,
            [
                (
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            self.0,
        )
            .into_response()
    }
}

impl Display for Html {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Text to be escaped where it is formatted: safe in element content and in quoted attribute
/// values.
pub struct Esc<'a>(&'a str);

/// `format!("<td>{}</td>", esc(&device.name))`.
pub fn esc(text: &str) -> Esc<'_> {
    Esc(text)
}

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// A path segment or query value for a link: percent-encodes everything but unreserved
/// characters, so a device named `a/b?c` stays one segment. Escape the whole URL with [`esc`]
/// as well when it goes into an attribute.
pub fn url_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            write!(out, "%{byte:02X}").expect("writing to a String");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_markup_is_not() {
        let mut h = Html::new();
        h.raw("<p title=\"")
            .text("\"><script>alert('x')</script>&")
            .raw("\">");
        assert_eq!(
            h.as_str(),
            "<p title=\"&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;\">"
        );
        assert_eq!(format!("{}", esc("plain")), "plain");
    }

    #[test]
    fn url_parts_stay_one_segment() {
        assert_eq!(url_part("door-sensor_1.0~x"), "door-sensor_1.0~x");
        assert_eq!(url_part("a/b?c d"), "a%2Fb%3Fc%20d");
        assert_eq!(url_part("é"), "%C3%A9");
    }
}
