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

/// One series of a [`stacked`] chart: its name in the legend and its CSS colour.
pub struct Series<'a> {
    pub name: &'a str,
    pub colour: &'a str,
}

/// A horizontal stacked bar chart: one row per `(label, values)`, one segment per series (in
/// `series` order), a legend on top, each row's total at its end; `title` is the accessible
/// name. Rows scale to the largest total, so rows compare at a glance.
pub fn stacked(title: &str, series: &[Series<'_>], rows: &[(String, Vec<u64>)]) -> Html {
    const ROW: u32 = 30;
    const LEGEND: u32 = 28;
    const LABEL: u32 = 70;
    const WIDTH: u32 = 480;
    let room = WIDTH - LABEL - 40;
    let height = LEGEND + ROW * rows.len().max(1) as u32 + 4;
    let max = rows
        .iter()
        .map(|(_, values)| values.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut h = Html::new();
    h.add(format_args!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{}\">\
         <title>{}</title>",
        esc(title),
        esc(title)
    ));
    let step = WIDTH / series.len().max(1) as u32;
    for (i, s) in series.iter().enumerate() {
        let x = step * i as u32;
        h.add(format_args!(
            "<rect x=\"{x}\" y=\"6\" width=\"12\" height=\"12\" rx=\"2\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"16\">{}</text>",
            esc(s.colour),
            x + 16,
            esc(s.name)
        ));
    }
    for (i, (label, values)) in rows.iter().enumerate() {
        let y = LEGEND + ROW * i as u32;
        h.add(format_args!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            LABEL - 8,
            y + 17,
            esc(label)
        ));
        let mut x = LABEL;
        for (value, s) in values.iter().zip(series) {
            let length = (*value as f64 / max as f64 * f64::from(room)).round() as u32;
            if length > 0 {
                h.add(format_args!(
                    "<rect x=\"{x}\" y=\"{}\" width=\"{length}\" height=\"{}\" fill=\"{}\">\
                     <title>{}: {value}</title></rect>",
                    y + 4,
                    ROW - 10,
                    esc(s.colour),
                    esc(s.name)
                ));
            }
            x += length;
        }
        h.add(format_args!(
            "<text x=\"{}\" y=\"{}\">{}</text>",
            x + 6,
            y + 17,
            values.iter().sum::<u64>()
        ));
    }
    if rows.is_empty() {
        h.add(format_args!(
            "<text x=\"8\" y=\"{}\">No data yet</text>",
            LEGEND + 18
        ));
    }
    h.raw("</svg>");
    h
}
