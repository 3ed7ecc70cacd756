//! One model of the network and the browsers, for the simulator and the
//! live executor alike: when a response or a mail is due, what a browser
//! does when a form submission leaves while an earlier one is in flight,
//! and what the mailboxes hold. An engine keeps the clock and the cookie
//! jar (a virtual one, or a real server's); everything else about the
//! network is decided here, once.
//!
//! **The due rule.** A response reaches its browser at the instant its
//! server answered, plus the request's `response_delay`; a mail reaches
//! its mailbox at the instant the mail server accepted it (the reply to
//! DATA), plus the sending request's `email_delay`. That is what a real
//! network does, and the simulator's clock gives those instants exactly
//! (a wait for a lock or for a recovering worker moves them).
//!
//! A live run reads them from the wall clock, which also counts the
//! server's own computing: a few milliseconds that vary from run to run.
//! Left alone, two responses the scenario makes simultaneous would arrive
//! in whichever order the server was faster, and no run would replay. So
//! [`Instant::observed`] snaps an observed instant to the modelled one
//! (the send, plus one SMTP latency for each mail the request had sent)
//! when it is within the target's `settle` time of it; only a wait longer
//! than that (a lock held for seconds, a recovering worker) moves a live
//! delivery, as it moves a simulated one. The simulator needs none of
//! this: its virtual clock reads the instants exactly.

use std::collections::{BTreeMap, BTreeSet};

use otpsim_core::{Email, Otp};

use crate::plan::typed_code;
use crate::scenario::RequestSpec;
use crate::trace::CodeSource;

/// When a response reaches its browser: `answered_ms` (see
/// [`Instant::observed`]), plus the request's `response_delay`.
pub fn response_due(answered_ms: u64, spec: &RequestSpec) -> u64 {
    answered_ms + spec.response_delay_ms
}

/// When a mail reaches its mailbox: `accepted_ms`, the instant the mail
/// server accepted it, plus the sending request's `email_delay` (`None`:
/// a mail no request sent, such as a worker's recovery's, which goes at
/// once).
pub fn mail_due(accepted_ms: u64, sender: Option<&RequestSpec>) -> u64 {
    accepted_ms + sender.map_or(0, |s| s.email_delay_ms)
}

/// The scenario instant of an answer or a mail's acceptance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instant {
    /// What the scenario alone makes it: the request's send, plus one SMTP
    /// latency per mail it had sent by then.
    pub modelled: u64,
    /// What the engine's clock read.
    pub observed: u64,
}

impl Instant {
    /// The modelled instant of a request sent at `sent_ms` that has had
    /// `mails` mails accepted, with `latency_ms` per SMTP send.
    pub fn modelled(sent_ms: u64, mails: u64, latency_ms: u64) -> u64 {
        sent_ms + mails * latency_ms
    }

    /// The instant the due rule uses: the modelled one if the clock read
    /// no later than `tolerance_ms` after it, else the clock's reading.
    pub fn observed(self, tolerance_ms: u64) -> u64 {
        if self.observed <= self.modelled + tolerance_ms {
            self.modelled
        } else {
            self.observed
        }
    }
}

/// The browsers' navigations: a form submission is a page load, so a
/// later one from the same browser abandons an earlier one still in
/// flight, whose response is then dropped (its Set-Cookie never applied).
/// A `fetch` navigates nowhere.
#[derive(Debug, Clone, Default)]
pub struct Navigations {
    /// Each browser's form submission in flight, if any.
    in_flight: BTreeMap<String, usize>,
    /// Form submissions a later one abandoned.
    abandoned: BTreeSet<usize>,
}

impl Navigations {
    /// `browser` submits a form as request `id`: the earlier submission it
    /// abandons, if one was in flight.
    pub fn submit(&mut self, browser: &str, id: usize) -> Option<usize> {
        let earlier = self.in_flight.insert(browser.to_string(), id)?;
        self.abandoned.insert(earlier);
        Some(earlier)
    }

    /// Request `id`'s response reaches `browser`: whether the browser
    /// takes it (`false`: it had left that page, and drops it).
    pub fn arrives(&mut self, browser: &str, id: usize) -> bool {
        if self.in_flight.get(browser) == Some(&id) {
            self.in_flight.remove(browser);
        }
        !self.abandoned.remove(&id)
    }

    /// Whether request `id` was abandoned and its response has not come.
    pub fn is_abandoned(&self, id: usize) -> bool {
        self.abandoned.contains(&id)
    }
}

/// Every mail accepted so far, and each address's mailbox.
#[derive(Debug, Clone, Default)]
pub struct Mailboxes {
    /// `(to, code)` of every mail, numbered from 1 in order of acceptance.
    mails: Vec<(Email, Otp)>,
    /// Mail numbers in each mailbox, in order of arrival.
    boxes: BTreeMap<Email, Vec<usize>>,
}

impl Mailboxes {
    /// A mail is handed to the mail system: its number. (The simulator
    /// numbers a mail when its send starts, so that a send the process's
    /// death cuts short still has one; live mode when it is accepted.)
    pub fn post(&mut self, to: Email, otp: Otp) -> usize {
        self.mails.push((to, otp));
        self.mails.len()
    }

    /// Mail `number` reaches `to`'s mailbox.
    pub fn arrives(&mut self, number: usize, to: Email) {
        self.boxes.entry(to).or_default().push(number);
    }

    /// The code `spec` types and where it came from (see [`typed_code`]):
    /// from its address's mailbox only if its browser reads that mailbox
    /// (`owner`).
    pub fn typed(&self, spec: &RequestSpec, owner: bool) -> (Option<Otp>, Option<CodeSource>) {
        let readable: &[usize] = match (owner, self.boxes.get(&spec.email)) {
            (true, Some(mailbox)) => mailbox,
            _ => &[],
        };
        typed_code(spec, readable, &self.mails)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_form_submission_abandons_the_earlier_and_only_its_response_is_dropped() {
        let mut n = Navigations::default();
        assert_eq!(n.submit("ana", 1), None);
        assert_eq!(n.submit("ana", 2), Some(1));
        assert_eq!(n.submit("eve", 3), None, "another browser's page is its own");
        assert!(!n.arrives("ana", 1), "the abandoned page's answer is dropped");
        assert!(!n.is_abandoned(1), "dropped once, then forgotten");
        assert!(n.arrives("ana", 2));
        assert_eq!(n.submit("ana", 4), None, "the page in flight came back");
    }

    #[test]
    fn an_instant_within_the_tolerance_is_the_modelled_one_and_a_longer_wait_moves_it() {
        let modelled = Instant::modelled(1_000, 1, 2_000);
        assert_eq!(modelled, 3_000);
        let at = |observed| Instant { modelled, observed };
        assert_eq!(at(3_004).observed(1_000), 3_000, "the server's computing is absorbed");
        assert_eq!(at(4_000).observed(1_000), 3_000);
        assert_eq!(at(4_001).observed(1_000), 4_001, "a wait longer than settle moves it");
        assert_eq!(at(3_004).observed(0), 3_004, "with no tolerance, the reading stands");
    }
}
