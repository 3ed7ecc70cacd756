//! The one way every engine writes a trace.

use otpsim_core::{Code, Email, Otp};

use crate::scenario::RequestSpec;
use crate::trace::{CodeSource, Cookie, DbState, Event, Http, Trace, What};

/// What a browser sends: a copy of `spec`, by a browser that reads the
/// address's mailbox (`owner`) or not, typing `otp` from `source`, with
/// `cookie` in its jar, to a live target's `route` (as its file writes it).
#[derive(Debug, Clone)]
pub struct Sending<'a> {
    /// The request.
    pub spec: &'a RequestSpec,
    /// Whether the browser reads the address's mailbox.
    pub owner: bool,
    /// The typed code (verify).
    pub otp: Option<Otp>,
    /// Where the code came from.
    pub source: Option<CodeSource>,
    /// What the browser's jar held.
    pub cookie: Cookie,
    /// A live target's route template; `None` in the simulator.
    pub route: Option<String>,
}

/// Builds a run's trace as it happens: the one way every engine (the
/// simulator, the live executor, `stress`) writes events, so that a trace
/// means the same whoever made it. The network's events have typed
/// methods; what happens inside a handler (SQL, sessions, faults) is
/// recorded as it is.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    events: Vec<Event>,
}

impl Recorder {
    /// Room for `events` before the trace grows: each growth copies every
    /// event so far.
    pub fn with_capacity(events: usize) -> Recorder {
        Recorder {
            events: Vec::with_capacity(events),
        }
    }

    /// Records `what` at `at_ms`, for `request` (0: a worker's own
    /// start-up work), `browser` and `worker` where they apply.
    pub fn record(
        &mut self,
        at_ms: u64,
        request: Option<usize>,
        browser: Option<&str>,
        worker: Option<usize>,
        what: What,
    ) {
        self.events.push(Event {
            at_ms,
            request,
            browser: browser.map(str::to_string),
            worker,
            what,
        });
    }

    /// A browser sent request `id` (a copy of `sending.spec`) to `worker`.
    pub fn sent(&mut self, at_ms: u64, (id, worker): (usize, Option<usize>), sending: Sending) {
        let Sending {
            spec,
            owner,
            otp,
            source,
            cookie,
            route,
        } = sending;
        let what = What::Sent {
            kind: spec.kind,
            email: spec.email.clone(),
            owner,
            otp,
            source,
            password: spec.password.clone(),
            cookie,
            route,
        };
        self.record(at_ms, Some(id), Some(&spec.browser), worker, what);
    }

    /// Request `id`'s server answered `code`; a live server with its real
    /// answer (`http`: the redirects followed and the final status).
    pub fn answered(
        &mut self,
        at_ms: u64,
        (id, worker): (usize, Option<usize>),
        (code, http): (Code, Option<Http>),
        message: String,
        set_cookie: Option<Cookie>,
    ) {
        let what = What::Answered {
            code,
            http,
            message,
            set_cookie,
        };
        self.record(at_ms, Some(id), None, worker, what);
    }

    /// The mail server accepted mail `number` (see [`Recorder::mails`]) to
    /// `to`, carrying registration `temp_id`'s `otp`, sent by request `id`
    /// on `worker` (0: by none, or, live, by one of `senders`); `lost` if a
    /// fault keeps it from its mailbox.
    pub fn mail_accepted(
        &mut self,
        at_ms: u64,
        (id, worker): (usize, Option<usize>),
        number: usize,
        (to, otp, temp_id): (Email, Otp, String),
        (lost, senders): (bool, Vec<usize>),
    ) {
        let what = What::MailSent {
            mail: number,
            to,
            otp,
            temp_id,
            lost,
            senders,
        };
        self.record(at_ms, Some(id), None, worker, what);
    }

    /// Mail `number` reached `to`'s mailbox.
    pub fn mail_arrived(&mut self, at_ms: u64, number: usize, to: Email) {
        self.record(at_ms, None, None, None, What::MailDelivered { mail: number, to });
    }

    /// Request `id`'s response reached `browser`, which took it (its jar
    /// now holds `Some(cookie)`) or had left the page and dropped it
    /// (`None`).
    pub fn response_arrived(&mut self, at_ms: u64, id: usize, browser: &str, taken: Option<Cookie>) {
        let what = match taken {
            Some(cookie_now) => What::Delivered { cookie_now },
            None => What::Abandoned,
        };
        self.record(at_ms, Some(id), Some(browser), None, what);
    }

    /// No request was in flight, and the database stood as `db`.
    pub fn quiescent(&mut self, at_ms: u64, db: DbState) {
        self.record(at_ms, None, None, None, What::Quiescent(db));
    }

    /// Mails accepted so far: the next one's number, less one.
    pub fn mails(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e.what, What::MailSent { .. }))
            .count()
    }

    /// The events so far, newest last.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The trace.
    pub fn finish(self) -> Trace {
        Trace { events: self.events }
    }
}
