//! The violation told in two or three sentences, naming the events of the
//! trace that caused it.

use std::fmt::Write as _;

use super::cookie_temp;
use crate::invariant::Violation;
use crate::trace::secs;
use crate::trace::{Trace, What};

fn kind_of(trace: &Trace, request: usize) -> &'static str {
    trace
        .events
        .iter()
        .find_map(|e| match &e.what {
            What::Sent { kind, .. } if e.request == Some(request) => Some(kind.as_str()),
            _ => None,
        })
        .unwrap_or("request")
}

/// The explanation of the first violation (empty when there is none).
pub fn explain(trace: &Trace, violations: &[Violation]) -> String {
    let Some(v) = violations.first() else {
        return String::new();
    };
    let mut out = String::new();
    let mut why = v.why.clone();
    if let Some(first) = why.get(..1).map(str::to_uppercase) {
        why.replace_range(..1, &first);
    }
    let _ = write!(out, "{why} ({}).", v.invariant);
    // The cookie and the registration explain a refused verify; other
    // breaks are told by their sentence alone.
    let Some(r) = v.request.filter(|r| kind_of(trace, *r) == "verify") else {
        return out;
    };
    let Some((sent_at, sent)) = trace
        .events
        .iter()
        .enumerate()
        .find(|(_, e)| e.request == Some(r) && matches!(e.what, What::Sent { .. }))
    else {
        return out;
    };
    let What::Sent { email, cookie, .. } = &sent.what else {
        return out;
    };
    let browser = sent.browser.clone().unwrap_or_default();
    let temp = cookie_temp(cookie);
    // Which response set the cookie the request carried, and which one it
    // overwrote.
    let arrivals: Vec<(usize, u64, String)> = trace.events[..sent_at]
        .iter()
        .filter(|e| e.browser.as_deref() == Some(browser.as_str()))
        .filter_map(|e| match &e.what {
            What::Delivered { cookie_now } => Some((e.request.unwrap_or(0), e.at_ms, cookie_temp(cookie_now))),
            _ => None,
        })
        .collect();
    if temp.starts_with("temp_") {
        if let Some(pos) = arrivals.iter().rposition(|(_, _, c)| *c == temp) {
            let (setter, at, _) = &arrivals[pos];
            let earlier = arrivals[..pos]
                .iter()
                .rev()
                .find(|(_, _, c)| *c != temp && c.starts_with("temp_"));
            match earlier {
                Some((other, other_at, _)) => {
                    let _ = write!(
                        out,
                        " The browser's cookie held {temp} because the response of {} #{setter} arrived at {}, after that of {} #{other} at {}.",
                        kind_of(trace, *setter),
                        secs(*at),
                        kind_of(trace, *other),
                        secs(*other_at)
                    );
                }
                None => {
                    let _ = write!(
                        out,
                        " The browser's cookie held {temp}, set by the response of {} #{setter} at {}.",
                        kind_of(trace, *setter),
                        secs(*at)
                    );
                }
            }
        }
    }
    let state = trace.events[..sent_at].iter().rev().find_map(|e| match &e.what {
        What::Quiescent(db) => Some(db),
        _ => None,
    });
    if let Some(db) = state {
        let pending: Vec<&str> = db
            .pending
            .iter()
            .filter(|(e, _)| e == email.as_str())
            .map(|(_, t)| t.as_str())
            .collect();
        let gone = temp.starts_with("temp_") && !pending.contains(&temp.as_str());
        let rows = if pending.is_empty() {
            "none".to_string()
        } else {
            pending.join(" and ")
        };
        let _ = write!(
            out,
            " When {} #{r} was sent, the pending registration for {email} was {rows}",
            kind_of(trace, r)
        );
        if gone {
            let _ = write!(out, "; {temp} no longer existed");
        }
        out.push('.');
    }
    out
}
