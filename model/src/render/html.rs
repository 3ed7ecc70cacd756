//! Self-contained HTML: one run (diagram, explanation, trace), or a report
//! of a whole `check` or `explore` with each counterexample's diagram. No
//! script, no network: the pages open offline.

use std::fmt::Write as _;

use super::svg::xml;

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:100%}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\
.ok{color:#1e7b34}.bad{color:#c0392b;font-weight:bold}pre{background:#f6f8fa;padding:1em;overflow:auto}\
.diagram{overflow:auto;border:1px solid #ddd}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head><meta charset=\"utf-8\"/><title>{}</title><style>{STYLE}</style></head>\n<body>\n{body}</body>\n</html>\n",
        xml(title)
    )
}

/// One run: its diagram (inline SVG), the explanation and the trace.
pub fn html_page(title: &str, svg: &str, explanation: &str, trace_text: &str) -> String {
    let mut body = format!("<h1>{}</h1>\n", xml(title));
    if !explanation.is_empty() {
        let _ = writeln!(body, "<p class=\"bad\">{}</p>", xml(explanation));
    }
    let _ = writeln!(
        body,
        "<div class=\"diagram\">{svg}</div>\n<h2>Trace</h2>\n<pre>{}</pre>",
        xml(trace_text)
    );
    page(title, &body)
}

/// One row of a report: a scenario and variant, what was expected and
/// found, and the counterexample, if any.
#[derive(Debug, Clone)]
pub struct ReportRow {
    /// The scenario file.
    pub scenario: String,
    /// The variant.
    pub variant: String,
    /// What the file expected (empty for explore).
    pub expected: String,
    /// What was found.
    pub found: String,
    /// Whether the row is as expected.
    pub ok: bool,
    /// The explanation of the counterexample.
    pub explanation: String,
    /// Its diagram (SVG), if there is one.
    pub svg: Option<String>,
    /// How to replay it.
    pub replay: String,
}

/// A report of many rows: a table, then each counterexample.
pub fn html_report(title: &str, rows: &[ReportRow]) -> String {
    let mut body = format!(
        "<h1>{}</h1>\n<table>\n<tr><th>scenario</th><th>variant</th><th>expected</th><th>found</th><th></th></tr>\n",
        xml(title)
    );
    for (i, r) in rows.iter().enumerate() {
        let (class, verdict) = if r.ok { ("ok", "ok") } else { ("bad", "UNEXPECTED") };
        let link = if r.svg.is_some() {
            format!("<a href=\"#run{i}\">{}</a>", xml(&r.found))
        } else {
            xml(&r.found)
        };
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{link}</td><td class=\"{class}\">{verdict}</td></tr>",
            xml(&r.scenario),
            xml(&r.variant),
            xml(&r.expected)
        );
    }
    body.push_str("</table>\n");
    for (i, r) in rows.iter().enumerate() {
        if let Some(svg) = &r.svg {
            let _ = writeln!(
                body,
                "<h2 id=\"run{i}\">{} — {}</h2>\n<p>{}</p>\n<p><code>{}</code></p>\n<div class=\"diagram\">{svg}</div>",
                xml(&r.scenario),
                xml(&r.variant),
                xml(&r.explanation),
                xml(&r.replay)
            );
        }
    }
    page(title, &body)
}
