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
    /// (it `owns` the address). Where that gives no mailed code and the
    /// browser sees everything (`sightings`), what it saw
    /// ([`Sightings::typed`]).
    pub fn typed(
        &self,
        spec: &RequestSpec,
        owns: &[Email],
        sightings: Option<&mut Sightings>,
    ) -> (Option<Otp>, Option<CodeSource>) {
        let readable: &[usize] = match (owns.contains(&spec.email), self.boxes.get(&spec.email)) {
            (true, Some(mailbox)) => mailbox,
            _ => &[],
        };
        match (typed_code(spec, readable, &self.mails), sightings) {
            ((_, Some(CodeSource::Wrong)), Some(sightings)) => sightings.typed(spec, owns, self),
            (typed, _) => typed,
        }
    }
}

/// What the browsers that see everything (`sees = "everything"`) have
/// received, and the codes each has typed for each address: an attacker
/// uses every string his browser got, not only his mail.
#[derive(Debug, Clone, Default)]
pub struct Sightings {
    /// Each browser's sightings in order: where, and the text.
    seen: BTreeMap<String, Vec<(&'static str, String)>>,
    /// What each browser has typed for each address, so that a repeat
    /// tries the next candidate.
    tried: BTreeMap<(String, Email), Vec<String>>,
}

impl Sightings {
    /// `browser` received `text` in `place` ("a page", "a header", "a
    /// cookie").
    pub fn saw(&mut self, browser: &str, place: &'static str, text: String) {
        self.seen.entry(browser.to_string()).or_default().push((place, text));
    }

    /// The code an attacker's verify types where it has no mail of the
    /// address to type: the newest code-like string it has not typed for
    /// the address yet, from the mailboxes it reads (`owns`, any address)
    /// and then from what its browser received; then a malformed code of
    /// each shape in turn; then a code no mail carried. Code-like: a run of
    /// letters and digits shaped as the run's mailed codes are (their
    /// lengths, digits only if they are), else 4 to 8 digits.
    pub fn typed(
        &mut self,
        spec: &RequestSpec,
        owns: &[Email],
        mailboxes: &Mailboxes,
    ) -> (Option<Otp>, Option<CodeSource>) {
        let mails = &mailboxes.mails;
        let lengths: BTreeSet<usize> = match mails.is_empty() {
            true => (4..=8).collect(),
            false => mails.iter().map(|(_, o)| o.digits().len()).collect(),
        };
        let digits_only = mails
            .iter()
            .all(|(_, o)| o.digits().bytes().all(|b| b.is_ascii_digit()));
        let code_like = |token: &str| {
            lengths.contains(&token.len())
                && token.bytes().all(|b| b.is_ascii_alphanumeric())
                && (!digits_only || token.bytes().all(|b| b.is_ascii_digit()))
        };
        let mut candidates: Vec<(String, String)> = Vec::new();
        for email in owns {
            for &n in mailboxes.boxes.get(email).map_or(&[][..], |b| &b[..]) {
                candidates.push((format!("mail {n}"), mails[n - 1].1.digits().to_string()));
            }
        }
        for (place, text) in self.seen.get(&spec.browser).map_or(&[][..], |s| &s[..]) {
            for token in text.split(|c: char| !c.is_ascii_alphanumeric()) {
                if code_like(token) {
                    candidates.push((place.to_string(), token.to_string()));
                }
            }
        }
        let tried = self
            .tried
            .entry((spec.browser.clone(), spec.email.clone()))
            .or_default();
        let fresh = candidates.into_iter().rev().find(|(_, c)| !tried.contains(c));
        if let Some((place, code)) = fresh {
            if let Ok(otp) = Otp::parse_mailed(&code) {
                tried.push(code);
                return (Some(otp), Some(CodeSource::Seen(place)));
            }
        }
        // Shaped on the first mailed code (six digits before any mail).
        let len = lengths.iter().next().copied().unwrap_or(6).max(2);
        let malformed = [
            String::new(),
            "1".repeat(len - 1),
            "1".repeat(len + 1),
            format!("{}a", "1".repeat(len - 1)),
        ];
        if let Some(m) = malformed.into_iter().find(|m| !tried.contains(m)) {
            if let Ok(otp) = Otp::typed(&m) {
                tried.push(m);
                return (Some(otp), Some(CodeSource::Malformed));
            }
        }
        (Some(crate::plan::wrong_code(mails)), Some(CodeSource::Wrong))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attacker_types_what_he_saw_newest_first_then_malformed_codes_then_a_wrong_one() {
        let ana = Email::parse("ana@example.com").unwrap();
        let eve = Email::parse("eve@example.com").unwrap();
        let mut boxes = Mailboxes::default();
        let mine = boxes.post(eve.clone(), Otp::parse("111111").unwrap());
        boxes.arrives(mine, eve.clone());
        boxes.post(ana.clone(), Otp::parse("222222").unwrap());
        let mut seen = Sightings::default();
        seen.saw(
            "eve",
            "a cookie",
            r#"{"pending":{"code":"424242","sent":1700000000}}"#.into(),
        );
        seen.saw("ana", "a page", "333333".into());
        let spec = RequestSpec::fetch(0, "eve", otpsim_core::Kind::Verify, ana.clone(), "pw");
        let mut typed = |owns: &[Email]| {
            let (otp, source) = seen.typed(&spec, owns, &boxes);
            (otp.unwrap().digits().to_string(), source.unwrap())
        };
        let owns = [eve.clone()];
        // The cookie's code (newest), then his own mail's; never another
        // browser's page, nor a number of the wrong shape (a timestamp).
        assert_eq!(typed(&owns), ("424242".into(), CodeSource::Seen("a cookie".into())));
        assert_eq!(typed(&owns), ("111111".into(), CodeSource::Seen("mail 1".into())));
        let malformed: Vec<String> = (0..4).map(|_| typed(&owns).0).collect();
        assert_eq!(malformed, ["", "11111", "1111111", "11111a"]);
        assert_eq!(typed(&owns).1, CodeSource::Wrong);
    }

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
