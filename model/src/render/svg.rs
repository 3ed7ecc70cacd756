//! The diagram as a standalone SVG: lanes, arrows and notes, readable in
//! any browser or image viewer with nothing else installed.

use std::fmt::Write as _;

use super::{Diagram, Step};

const LANE: i64 = 230;
const MARGIN: i64 = 130;
const ROW: i64 = 26;
const TOP: i64 = 60;
const CHAR: f64 = 6.6;

/// Escapes text for XML.
pub(super) fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn x(lane: usize) -> i64 {
    MARGIN + lane as i64 * LANE
}

/// The SVG document.
pub fn svg(d: &Diagram) -> String {
    let widest_note = d
        .steps
        .iter()
        .map(|s| match s {
            Step::Note { from, text, .. } => x(*from) - 10 + (text.chars().count() as f64 * CHAR) as i64 + 20,
            Step::Message { from, to, text, .. } => {
                x((*from).min(*to)) + (text.chars().count() as f64 * CHAR) as i64 + 20
            }
        })
        .max()
        .unwrap_or(0);
    let width = (x(d.lanes.len() - 1) + MARGIN).max(widest_note);
    let height = TOP + (d.steps.len() as i64 + 1) * ROW + 20;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="monospace" font-size="11">"#
    );
    out.push_str(concat!(
        r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">"#,
        r##"<path d="M 0 0 L 10 5 L 0 10 z" fill="#333"/></marker></defs>"##,
        "\n"
    ));
    let _ = writeln!(out, r#"<rect width="{width}" height="{height}" fill="white"/>"#);
    for (i, title) in d.titles.iter().enumerate() {
        let cx = x(i);
        let _ = writeln!(
            out,
            r##"<rect x="{}" y="10" width="{}" height="28" rx="4" fill="#eef2f7" stroke="#4a5b70"/><text x="{cx}" y="28" text-anchor="middle" font-weight="bold">{}</text>"##,
            cx - 95,
            190,
            xml(title)
        );
        let _ = writeln!(
            out,
            r##"<line x1="{cx}" y1="38" x2="{cx}" y2="{}" stroke="#b8c2cc" stroke-dasharray="4 4"/>"##,
            height - 10
        );
    }
    for (row, step) in d.steps.iter().enumerate() {
        let y = TOP + row as i64 * ROW + ROW / 2;
        match step {
            Step::Message { from, to, text, reply } => {
                let (x1, x2) = (x(*from), x(*to));
                let dash = if *reply { r#" stroke-dasharray="5 3""# } else { "" };
                let _ = writeln!(
                    out,
                    r##"<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#333"{dash} marker-end="url(#arrow)"/>"##
                );
                let _ = writeln!(
                    out,
                    r#"<text x="{}" y="{}">{}</text>"#,
                    x1.min(x2) + 6,
                    y - 4,
                    xml(text)
                );
            }
            Step::Note { from, to, text, alarm } => {
                let (fill, stroke) = if *alarm {
                    ("#fde2e1", "#c0392b")
                } else {
                    ("#fff8dc", "#c9b458")
                };
                let left = x(*from) - 10;
                let w = ((text.chars().count() as f64 * CHAR) as i64 + 12).max(x(*to) - x(*from) + 20);
                let _ = writeln!(
                    out,
                    r#"<rect x="{left}" y="{}" width="{w}" height="{}" fill="{fill}" stroke="{stroke}"/><text x="{}" y="{}">{}</text>"#,
                    y - ROW / 2 + 3,
                    ROW - 6,
                    left + 6,
                    y + 4,
                    xml(text)
                );
            }
        }
    }
    out.push_str("</svg>\n");
    out
}
