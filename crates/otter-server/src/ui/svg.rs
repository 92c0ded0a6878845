//! Charts as server-rendered SVG: no chart library, nothing to download, readable without
//! JavaScript, and scaled by the browser to any width (`viewBox`, `width: 100%`).

use super::html::{Html, esc};

/// One bar: a label, a value, and a CSS colour.
pub struct Bar<'a> {
    pub label: &'a str,
    pub value: u64,
    pub colour: &'a str,
}

/// A horizontal bar chart, one row per bar, each labelled with its value; `title` is the
/// chart's accessible name.
pub fn bars(title: &str, bars: &[Bar<'_>]) -> Html {
    // About a dashboard card's width, so the text stays legible from a phone to a desktop.
    const ROW: u32 = 26;
    const LABEL: u32 = 100;
    const WIDTH: u32 = 360;
    let height = ROW * bars.len().max(1) as u32 + 4;
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(1);
    let mut h = Html::new();
    h.add(format_args!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{}\">\
         <title>{}</title>",
        esc(title),
        esc(title)
    ));
    for (i, bar) in bars.iter().enumerate() {
        let y = ROW * i as u32 + 2;
        let room = WIDTH - LABEL - 50;
        let length = (bar.value as f64 / max as f64 * f64::from(room)).round() as u32;
        h.add(format_args!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{y}\" width=\"{}\" height=\"{}\" rx=\"3\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            LABEL - 8,
            y + 16,
            esc(bar.label),
            length.max(1),
            ROW - 8,
            esc(bar.colour),
            LABEL + length + 6,
            y + 16,
            bar.value,
        ));
    }
    if bars.is_empty() {
        h.raw("<text x=\"8\" y=\"18\">No data yet</text>");
    }
    h.raw("</svg>");
    h
}
