//! Small models of the flows for the exhaustive checkers (loom, shuttle
//! DFS): the very flow code of `otpsim-core`, on SQLite, through the
//! platform facade, with a model of cookie delivery in which the last
//! response to arrive wins. Shared by the loom and shuttle test binaries,
//! which must stay separate (shuttle's panic hook is process-wide).

#![allow(dead_code)]

use std::sync::Arc;

use otpsim_core::local::Local;
use otpsim_core::platform::Lock;
use otpsim_core::{Code, Platform, Request, Session, Variant};
use otpsim_sim::Invariant;

pub const ANA: &str = "ana@example.com";

/// The models, each a few requests on one or two workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Two concurrent signups, then a verify with the newest code.
    DoubleClickSignup,
    /// A signup, then two concurrent verifies with its code.
    DoubleVerify,
    /// A signup, then a second signup racing a verify of the first code.
    SignupRacesVerify,
}

fn signup() -> Request {
    Request::Signup {
        email: ANA.into(),
        password: "pw".into(),
    }
}

fn verify(local: &Local<impl Platform>) -> Request {
    let otp = local
        .latest_code(ANA)
        .map(|o| o.digits().to_string())
        .unwrap_or_default();
    Request::Verify {
        email: ANA.into(),
        otp,
        password: "s3cret!".into(),
    }
}

/// The browser's cookie jar: each response that changed the session
/// replaces it, in the order the responses complete.
struct Jar<P: Platform>(P::Mutex<Session>);

impl<P: Platform> Jar<P> {
    fn cookie(&self) -> Session {
        self.0.with(|s| Session::loaded(s.data().clone()))
    }
    fn receive(&self, sent: Session) {
        if sent.is_modified() {
            self.0.with(|jar| *jar = Session::loaded(sent.data().clone()));
        }
    }
}

/// Sends `requests` concurrently, the i-th to worker i mod `workers`, each
/// with the cookie the jar holds now; returns the codes they answered.
fn concurrently<P: Platform>(
    local: &Arc<Local<P>>,
    jar: &Arc<Jar<P>>,
    workers: usize,
    requests: Vec<Request>,
) -> Vec<Code> {
    let handles: Vec<_> = requests
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            let (local, jar) = (Arc::clone(local), Arc::clone(jar));
            let mut session = jar.cookie();
            P::spawn(move || {
                let answer = local
                    .handle(i % workers, &mut session, &request)
                    .expect("no crash in these models");
                jar.receive(session);
                answer.code
            })
        })
        .collect();
    handles.into_iter().map(P::join).collect()
}

/// Runs `model` once on the platform `P` and names the invariant it broke.
pub fn run<P: Platform>(model: Model, variant: Variant, workers: usize) -> Option<Invariant> {
    let local = Arc::new(Local::<P>::new(variant, workers, 3).expect("an in-memory database opens"));
    let jar = Arc::new(Jar::<P>(P::Mutex::new(Session::default())));
    let answers = match model {
        Model::DoubleClickSignup => {
            concurrently(&local, &jar, workers, vec![signup(), signup()]);
            concurrently(&local, &jar, workers, vec![verify(&local)])
        }
        Model::DoubleVerify => {
            concurrently(&local, &jar, workers, vec![signup()]);
            concurrently(&local, &jar, workers, vec![verify(&local), verify(&local)])
        }
        Model::SignupRacesVerify => {
            concurrently(&local, &jar, workers, vec![signup()]);
            let first_code = verify(&local);
            local.advance_ms(3000);
            concurrently(&local, &jar, workers, vec![signup(), first_code])
                .into_iter()
                .skip(1)
                .collect()
        }
    };
    if answers.iter().any(|c| c.status() == 500) {
        return Some(Invariant::ClearErrors);
    }
    if local.pending_count(ANA) > 1 {
        return Some(Invariant::SinglePending);
    }
    // Every verify typed a code from an email the user really got.
    if answers.iter().any(|c| !c.is_success()) || local.account_count(ANA) != 1 {
        return Some(Invariant::VerifySucceeds);
    }
    None
}
