//! The double-click model shared by the flows' test binaries (shuttle's in
//! a binary of its own: it installs a process-wide panic hook).

use std::sync::Arc;

use otpsim_core::local::Local;
use otpsim_core::{Code, Platform, Request, Session, Variant};

pub const ANA: &str = "ana@example.com";

/// What two concurrent signups for one email left behind.
#[derive(Debug, PartialEq, Eq)]
pub struct DoubleClick {
    /// Pending registrations for the email.
    pub pending: i64,
    /// The temp_id each request put in its session.
    pub sessions: [Option<String>; 2],
    /// What each request answered.
    pub answers: [Code; 2],
    /// The codes mailed, in sending order.
    pub codes: Vec<String>,
}

impl DoubleClick {
    /// Whatever order the responses arrive in, the browser ends up with a
    /// registration that exists and whose code is in every email. A request
    /// that gave up on a busy database (503 `retry`, on real threads under
    /// load) changed nothing and set no cookie: it has no session to agree.
    pub fn is_consistent(&self) -> bool {
        let retried = |i: usize| self.answers[i] == Code::Retry && self.sessions[i].is_none();
        let set: Vec<&String> = self.sessions.iter().flatten().collect();
        self.pending == 1
            && (0..2).all(|i| self.sessions[i].is_some() || retried(i))
            && !set.is_empty()
            && set.windows(2).all(|w| w[0] == w[1])
            && self.codes.windows(2).all(|w| w[0] == w[1])
    }
}

/// Two signups for one email on `workers` workers, run concurrently on the
/// platform `P`, through the very flow code production runs.
pub fn double_click<P: Platform>(variant: Variant, workers: usize) -> DoubleClick {
    let local = Arc::new(Local::<P>::new(variant, workers, 11).expect("an in-memory database opens"));
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let local = Arc::clone(&local);
            P::spawn(move || {
                let mut session = Session::default();
                let request = Request::Signup {
                    email: ANA.into(),
                    password: "pw".into(),
                };
                let answer = local
                    .handle(i % workers, &mut session, &request)
                    .expect("no crash without a fault plan");
                (session.temp_user_id().map(str::to_string), answer.code)
            })
        })
        .collect();
    let mut done = handles.into_iter().map(P::join);
    let (first, second) = (done.next().unwrap(), done.next().unwrap());
    DoubleClick {
        pending: local.pending_count(ANA),
        sessions: [first.0, second.0],
        answers: [first.1, second.1],
        codes: local.outbox().iter().map(|m| m.otp.digits().to_string()).collect(),
    }
}
