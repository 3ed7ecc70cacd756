//! A deployment with no simulated world around it: the flows run directly
//! on a platform's threads against one store, a clock that moves only when
//! told, an outbox instead of SMTP, and each worker's memory.
//!
//! The core's own tests use it on std, loom and shuttle alike; the loom
//! models and the stress runner build on it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::{Email, Otp, Request, Session};
use crate::flows::{Flow, FlowConfig, Handled, Variant};
use crate::platform::{Lock, Platform};
use crate::ports::{Mail, Ports, RequestRng, Sent, WorkerCrashed, WorkerMemory};
use crate::store::{Db, DbError, Store, YieldingHook};

/// The clock the flows see at simulated time 0: the first temp_id of the
/// seed report, `temp_1753562929_84249ea7`, was made then.
pub const EPOCH_UNIX_MS: u64 = 1_753_562_929_000;

/// One deployment: a variant, its workers' memories and one database.
pub struct Local<P: Platform> {
    /// The variant every worker runs.
    pub variant: Variant,
    /// Its settings.
    pub config: FlowConfig,
    store: Store<P>,
    now_ms: AtomicU64,
    seed: u64,
    next_request: AtomicU64,
    outbox: P::Mutex<Vec<Mail>>,
    memories: Vec<P::Mutex<WorkerMemory>>,
}

impl<P: Platform> Local<P> {
    /// A fresh in-memory deployment of `variant` with `workers` processes.
    pub fn new(variant: Variant, workers: usize, seed: u64) -> Result<Self, DbError> {
        Self::with_store(variant, workers, seed, Store::open_in_memory(variant.schema())?)
    }

    /// A deployment over an existing store (a file database, say).
    pub fn with_store(variant: Variant, workers: usize, seed: u64, store: Store<P>) -> Result<Self, DbError> {
        Ok(Local {
            variant,
            config: FlowConfig::default(),
            store,
            now_ms: AtomicU64::new(EPOCH_UNIX_MS),
            seed,
            next_request: AtomicU64::new(1),
            outbox: P::Mutex::new(Vec::new()),
            memories: (0..workers.max(1))
                .map(|_| P::Mutex::new(WorkerMemory::default()))
                .collect(),
        })
    }

    /// The database.
    pub fn store(&self) -> &Store<P> {
        &self.store
    }

    /// Moves the clock forward.
    pub fn advance_ms(&self, ms: u64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Handles `request` on `worker` with the session the browser sent.
    pub fn handle(&self, worker: usize, session: &mut Session, request: &Request) -> Handled {
        let id = self.next_request.fetch_add(1, Ordering::SeqCst);
        let ports = LocalPorts {
            local: self,
            arrived_ms: self.now_ms.load(Ordering::SeqCst),
            worker: worker % self.memories.len(),
            hook: YieldingHook::new(id),
            rng: RequestRng::new(self.seed, id),
        };
        self.variant.handle(&ports, &self.config, session, request)
    }

    /// Every email sent so far, in sending order.
    pub fn outbox(&self) -> Vec<Mail> {
        self.outbox.with(|o| o.clone())
    }

    /// The code in the newest email to `email`.
    pub fn latest_code(&self, email: &str) -> Option<Otp> {
        let email = Email::parse(email).ok()?;
        self.outbox
            .with(|o| o.iter().rev().find(|m| m.to == email).map(|m| m.otp.clone()))
    }

    /// How many pending registrations exist for `email`.
    pub fn pending_count(&self, email: &str) -> i64 {
        self.count("SELECT count(*) FROM temp_registrations WHERE email = ?1", email)
    }

    /// How many accounts exist for `email`.
    pub fn account_count(&self, email: &str) -> i64 {
        self.count("SELECT count(*) FROM users WHERE email = ?1", email)
    }

    fn count(&self, sql: &str, email: &str) -> i64 {
        self.store
            .inspect(|p| p.connection().query_row(sql, [email], |r| r.get(0)))
            .expect("the variant's own schema has these tables")
    }
}

struct LocalPorts<'a, P: Platform> {
    local: &'a Local<P>,
    arrived_ms: u64,
    worker: usize,
    hook: YieldingHook<P>,
    rng: RequestRng,
}

impl<P: Platform> Ports for LocalPorts<'_, P> {
    type Platform = P;
    fn db(&self) -> Db<'_, P> {
        self.local.store.db(&self.hook)
    }
    fn now_ms(&self) -> u64 {
        self.local.now_ms.load(Ordering::SeqCst)
    }
    fn arrived_ms(&self) -> u64 {
        self.arrived_ms
    }
    fn random_u64(&self) -> u64 {
        self.rng.next_u64()
    }
    fn send_mail(&self, mail: Mail) -> Result<Sent, WorkerCrashed> {
        self.local.outbox.with(|o| o.push(mail));
        Ok(Sent::Accepted)
    }
    fn with_memory<R>(&self, f: impl FnOnce(&mut WorkerMemory) -> R) -> Result<R, WorkerCrashed> {
        Ok(self.local.memories[self.worker].with(f))
    }
}
