//! The ports a flow runs against: database, clock, randomness, mail and the
//! worker process's own memory. Each call is one step at which a scheduler
//! may run another request; nothing else in a flow can observe the world.

use std::collections::BTreeMap;

use crate::domain::{Email, Otp, TempId};
use crate::platform::Platform;
use crate::store::Db;

/// An email carrying a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The recipient.
    pub to: Email,
    /// The code in the body.
    pub otp: Otp,
    /// The registration the code belongs to (for traces; never shown to
    /// the user by the flows).
    pub temp_id: TempId,
}

/// The seed fix's per-email entry in `_request_locks`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestLock {
    /// A signup for the email is running on this worker.
    pub held: bool,
    /// When the last signup for the email started on this worker (unix ms).
    pub last_started_ms: Option<u64>,
}

/// What one worker process keeps in memory; lost when it crashes. Ordered
/// maps only, so that nothing depends on hash order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerMemory {
    /// The seed fix's `_request_locks`.
    pub request_locks: BTreeMap<Email, RequestLock>,
}

/// The handler's worker process died: the request gets no answer. Every
/// port call can report it, because a crash kills every request in flight
/// on the process, not only the one whose step it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerCrashed;

// Here, not in the store: the store knows nothing of ports.
impl From<WorkerCrashed> for crate::store::DbError {
    fn from(_: WorkerCrashed) -> crate::store::DbError {
        crate::store::DbError::Crashed
    }
}

/// What became of a mail handed to the mail server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The server accepted it (the reply to DATA): it counts as sent.
    Accepted,
    /// The server could not be reached or refused it: nothing went out.
    Refused,
}

/// Everything a handler may touch.
pub trait Ports {
    /// The concurrency backend the ports are built on.
    type Platform: Platform;
    /// The shared database, through this request's hook.
    fn db(&self) -> Db<'_, Self::Platform>;
    /// Now, in unix milliseconds.
    fn now_ms(&self) -> u64;
    /// When this request reached the server, in unix milliseconds: before
    /// any wait for a lock or for the worker process to be ready. A real
    /// deployment reads it from the accept time, or from a header that its
    /// own front proxy sets (`X-Request-Start`) and overwrites whatever the
    /// client sent, since a client that sets it would choose its own expiry.
    fn arrived_ms(&self) -> u64;
    /// 64 random bits from the run's seeded generator.
    fn random_u64(&self) -> u64;
    /// Hands an email to the mail server; blocks for the SMTP latency. If
    /// the process dies during the send, the mail does not go out. A
    /// server that cannot be reached, or refuses the mail, is `Refused`:
    /// nothing went out, and a flow must not tell its user it did.
    fn send_mail(&self, mail: Mail) -> Result<Sent, WorkerCrashed>;
    /// Runs `f` on this worker's memory (one step).
    fn with_memory<R>(&self, f: impl FnOnce(&mut WorkerMemory) -> R) -> Result<R, WorkerCrashed>;
}

/// One request's own seeded generator, drawn from through `&self` (ports
/// are shared references): what in-process ports (`local`, `stress`) hand
/// out as `random_u64`.
#[derive(Debug)]
pub struct RequestRng(std::cell::Cell<SplitMix64>);

impl RequestRng {
    /// The generator of request `id` in a run seeded with `seed`.
    pub fn new(seed: u64, id: u64) -> Self {
        RequestRng(std::cell::Cell::new(SplitMix64::new(
            seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        )))
    }
    /// The next 64 bits.
    pub fn next_u64(&self) -> u64 {
        let mut rng = self.0.get();
        let n = rng.next_u64();
        self.0.set(rng);
        n
    }
}

/// SplitMix64: a small, fast, seedable generator, so a run's randomness is
/// a function of its seed alone.
#[derive(Debug, Clone, Copy)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
