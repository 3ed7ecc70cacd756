//! The double-click model shared by the per-platform test binaries (each
//! platform in its own binary: shuttle installs a process-wide panic hook).

use std::sync::Arc;

use otpsim_core::local::Local;
use otpsim_core::{Platform, Request, Session, Variant};

pub const ANA: &str = "ana@example.com";

/// What two concurrent signups for one email left behind.
#[derive(Debug, PartialEq, Eq)]
pub struct DoubleClick {
    /// Pending registrations for the email.
    pub pending: i64,
    /// The temp_id each request put in its session.
    pub sessions: [Option<String>; 2],
    /// The codes mailed, in sending order.
    pub codes: Vec<String>,
}

impl DoubleClick {
    /// Whatever order the responses arrive in, the browser ends up with a
    /// registration that exists and whose code is in every email.
    pub fn is_consistent(&self) -> bool {
        self.pending == 1 && self.sessions[0] == self.sessions[1] && self.codes.windows(2).all(|w| w[0] == w[1])
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
                local
                    .handle(i % workers, &mut session, &request)
                    .expect("no crash without a fault plan");
                session.temp_user_id().map(str::to_string)
            })
        })
        .collect();
    let mut sessions = handles.into_iter().map(P::join);
    let sessions = [sessions.next().unwrap(), sessions.next().unwrap()];
    DoubleClick {
        pending: local.pending_count(ANA),
        sessions,
        codes: local.outbox().iter().map(|m| m.otp.digits().to_string()).collect(),
    }
}
