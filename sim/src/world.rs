//! The simulated world of one run: browsers with a cookie jar, mailboxes
//! that belong to addresses, worker processes with their own memory, the
//! network, the mail system, one SQLite database, a virtual clock and the
//! fault plan. The flows of
//! `otpsim-core` run in it unchanged, one shuttle task per request.
//!
//! The clock moves only when every live handler waits on it (SMTP latency,
//! the busy handler); then the driver jumps to the next due event.
//! Events due at the same instant (two responses, two emails) are applied
//! by racing tasks, so the scheduler chooses their order.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use otpsim_core::local::EPOCH_UNIX_MS;
use otpsim_core::platform::{Lock, Platform, Shuttle};
use otpsim_core::ports::SplitMix64;
use otpsim_core::store::BUSY_TIMEOUT_MS;
use otpsim_core::{
    Db, DbError, Email, Flow, FlowConfig, Kind, Mail, Ports, Request, Sent, Session, SessionData, StatementHook, Store,
    WorkerCrashed, WorkerMemory,
};

use crate::recorder::{Recorder, Sending};
use crate::scenario::{DbFault, FaultKind, RequestSpec, Scenario, SessionMode, Via};
use crate::trace::{Cookie, DbState, SqlOutcome, Trace, What};
use otpsim_model::network::{mail_due, response_due, Mailboxes, Navigations, Sightings};
pub use otpsim_model::plan::{plan_requests, probe_logins, typed_code, Planned};

/// An explored case's trace holds about a hundred events: grown from
/// empty it was copied five times a schedule, 1.0% of its instructions
/// (BENCHMARKS.md, session 27).
const TRACE_CAPACITY: usize = 128;

/// SQLite's count of schema changes, read at every quiescent point and at
/// every reuse of a database. A static, not a const: one address, so
/// prepared once ([`otpsim_core::Prepared::with_statement`]).
static SCHEMA_VERSION: &str = "PRAGMA schema_version";

type P = Shuttle;

/// A fault as one run applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ActiveFault {
    /// What it does.
    pub kind: FaultKind,
    /// 0-based index of the request in the file (its first copy).
    pub request: usize,
    /// 1-based statement (db, crash).
    pub statement: u32,
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct RunPlan<F> {
    /// The scenario.
    pub scenario: Arc<Scenario>,
    /// The flow every worker runs.
    pub flow: F,
    /// The faults.
    pub faults: Vec<ActiveFault>,
    /// Seeds the run's randomness (temp_ids, codes).
    pub seed: u64,
}

/// What one run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The events.
    pub trace: Trace,
    /// Whether every fault of the plan fired.
    pub faults_fired: bool,
    /// Where each statement of a first copy started in the schedule.
    pub statements: Vec<StatementAt>,
}

impl RunOutcome {
    /// Where statement `statement` of request `request`'s first copy
    /// started in the schedule's choices, if it ran.
    pub fn choice_at(&self, request: usize, statement: u32) -> Option<usize> {
        self.statements
            .iter()
            .find(|s| s.request == request && s.statement == statement)
            .map(|s| s.choice)
    }
}

/// Where in a schedule's choices a statement started: a fault placed on
/// it strikes there, so a switch placed there runs another task right
/// after the fault (see [`crate::schedule::taken`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementAt {
    /// The request, by its index in the file (first copies only: faults
    /// strike first copies).
    pub request: usize,
    /// 1-based among its copy's statements, as `[[fault]] statement` counts.
    pub statement: u32,
    /// The index, in the schedule's choices, of the next scheduling point.
    pub choice: usize,
}

#[derive(Debug, Default)]
struct Browser {
    cookie: Cookie,
}

#[derive(Debug)]
enum Delivery {
    Response {
        request: usize,
        browser: String,
        set_cookie: Option<Cookie>,
    },
    Mail {
        mail: usize,
        to: Email,
    },
}

struct State {
    now_ms: u64,
    running: usize,
    /// Handlers waiting on the clock: (wake time, token).
    sleepers: Vec<(u64, u64)>,
    next_token: u64,
    browsers: BTreeMap<String, Browser>,
    navigations: Navigations,
    mailboxes: Mailboxes,
    /// What the browsers that see everything saw: here, their cookies (the
    /// flows' messages never carry a code, nor does a session).
    sightings: Sightings,
    server_sessions: BTreeMap<u64, SessionData>,
    next_sid: u64,
    deliveries: Vec<(u64, Delivery)>,
    memories: Vec<WorkerMemory>,
    /// Handlers waiting for their worker's recovery, off the clock's books.
    recovery_waiters: Vec<Vec<usize>>,
    /// Handlers finished, and how many had when the database was last
    /// read: a quiescent point is recorded only if one finished since.
    finished: usize,
    finished_at_snapshot: usize,
}

/// What the world records and draws that is not a step: the trace, the
/// clock's reading, the seeded generator. In an [`Unshared`] cell, which is
/// no scheduling point, so reading the clock or recording an event does
/// not add interleavings.
struct Log {
    now_ms: u64,
    /// The last snapshot read outside a transaction, and SQLite's count of
    /// changed rows and schema version when it was read.
    last_snapshot: Option<((u64, i64), DbState)>,
    recorder: Recorder,
    rng: SplitMix64,
    faults_fired: usize,
    statements: Vec<StatementAt>,
    /// Each worker's process generation: a crash starts a new one, and a
    /// request of an older generation is dead at its next step.
    generations: Vec<u64>,
    /// A worker's new process is running its recovery and takes no request.
    recovering: Vec<bool>,
    /// Requests in flight: id -> (worker, generation of the process that
    /// accepted it when it was sent).
    in_flight: BTreeMap<usize, (usize, u64)>,
}

/// A cell that tasks of one shuttle execution share without a lock. The
/// world asks its [`Log`] at every step, several times, and an atomic
/// lock and unlock each time was needless (with our shuttle mutex's value
/// in a `RefCell` too: 1.6% of an explored schedule's instructions,
/// BENCHMARKS.md, session 28).
struct Unshared<T>(RefCell<T>);

// Safety: a world lives inside one shuttle execution, whose tasks all run
// on the runner's OS thread, one at a time, switching only at scheduling
// points; no borrow of the cell spans one (`World::log`'s closures take
// none), so no two tasks ever hold it at once.
unsafe impl<T: Send> Sync for Unshared<T> {}

struct World<F> {
    log: Unshared<Log>,
    plan: RunPlan<F>,
    /// The addresses whose mailbox each browser reads.
    owners: BTreeMap<String, Vec<Email>>,
    /// The browsers that type what they saw (`sees = "everything"`).
    seers: BTreeSet<String>,
    config: FlowConfig,
    store: Store<P>,
    planned: Vec<Planned>,
    state: <P as Platform>::Mutex<State>,
    clock: <P as Platform>::Condvar,
}

impl<F: Flow> World<F> {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.state.with(f)
    }

    /// `f` must take no scheduling point (no `with`, sleep, notify, spawn
    /// or store call): the log's cell relies on it (see [`Unshared`]), and
    /// another task asking the log meanwhile would panic.
    fn log<R>(&self, f: impl FnOnce(&mut Log) -> R) -> R {
        f(&mut self.log.0.borrow_mut())
    }

    fn record(&self, request: Option<usize>, browser: Option<&str>, worker: Option<usize>, what: What) {
        self.log(|log| log.recorder.record(log.now_ms, request, browser, worker, what));
    }

    fn event(&self, request: Option<&Planned>, browser: Option<&str>, what: What) {
        self.record(request.map(|p| p.id), browser, request.map(|p| p.worker), what);
    }

    fn fault(&self, request: &Planned, statement: Option<u32>, kind: impl Fn(FaultKind) -> bool) -> Option<FaultKind> {
        if !request.first_copy {
            return None;
        }
        self.plan
            .faults
            .iter()
            .find(|f| f.request == request.spec && kind(f.kind) && statement.is_none_or(|n| n == f.statement))
            .map(|f| f.kind)
    }

    /// Blocks the calling handler for `ms` of simulated time.
    fn sleep(&self, ms: u64) {
        let token = self.with(|s| {
            s.running -= 1;
            s.next_token += 1;
            s.sleepers.push((s.now_ms + ms, s.next_token));
            s.next_token
        });
        P::notify_all(&self.clock);
        // The driver wakes a sleeper by removing it and counting it running
        // again, in one step with moving the clock.
        P::wait_while(&self.state, &self.clock, |s| {
            s.sleepers.iter().any(|(_, t)| *t == token)
        });
    }

    /// The rows the invariants read, read again only when they may have
    /// changed: SQLite counts every row a statement changes, and its
    /// schema version moves with every table made, altered or dropped, so
    /// a reading taken outside a transaction stands while neither moves (a
    /// rollback undoes only rows counted after the reading). Debug builds,
    /// the test suite's, read again anyway and compare.
    fn snapshot(&self) -> DbState {
        let read = self.store.inspect(|p| {
            let version: i64 = p.with_statement(SCHEMA_VERSION, |s| s.query_row([], |r| r.get(0)))?;
            let at = (p.connection().total_changes(), version);
            let settled = p.connection().is_autocommit();
            let mut kept = self.log(|log| match &log.last_snapshot {
                Some((when, db)) if settled && *when == at => Some(db.clone()),
                _ => None,
            });
            if !cfg!(debug_assertions) {
                if let Some(db) = kept.take() {
                    return Ok(db);
                }
            }
            let pending = p.with_statement(self.plan.flow.pending_query(), |s| {
                s.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                    .collect()
            })?;
            let accounts = p.with_statement(self.plan.flow.accounts_query(), |s| {
                s.query_map([], |r| r.get::<_, String>(0))?.collect()
            })?;
            let db = DbState { pending, accounts };
            if let Some(kept) = kept {
                assert_eq!(kept, db, "a kept snapshot is what the tables hold");
            }
            if settled {
                self.log(|log| log.last_snapshot = Some((at, db.clone())));
            }
            Ok(db)
        });
        read.expect("the flow's snapshot queries run on its own schema")
    }
}

/// The ports of one request inside the world.
struct SimPorts<'w, F> {
    world: &'w World<F>,
    request: &'w Planned,
    /// What the request is: a file's `[[request]]`, or a probe's login.
    spec: &'w RequestSpec,
    /// The generation of the worker process the request runs in.
    generation: u64,
    statements: Cell<u32>,
    busy_waited_ms: Cell<u64>,
    /// This request's crash fault killed the process.
    killed_it: Cell<bool>,
}

impl<F: Flow> SimPorts<'_, F> {
    fn new<'w>(world: &'w World<F>, request: &'w Planned, spec: &'w RequestSpec) -> SimPorts<'w, F> {
        let generation = world.log(|log| match log.in_flight.get(&request.id) {
            Some((_, generation)) => *generation,
            None => log.generations[request.worker],
        });
        SimPorts {
            world,
            request,
            spec,
            generation,
            statements: Cell::new(0),
            busy_waited_ms: Cell::new(0),
            killed_it: Cell::new(false),
        }
    }

    /// Whether the process this request runs in still lives. Asked at
    /// every step: a dead process runs nothing more.
    fn alive(&self) -> Result<(), WorkerCrashed> {
        if self.world.log(|log| log.generations[self.request.worker]) == self.generation {
            Ok(())
        } else {
            Err(WorkerCrashed)
        }
    }
}

impl<F: Flow> StatementHook for SimPorts<'_, F> {
    fn requester(&self) -> u64 {
        // Request 0 is a worker's own start-up work: one per worker.
        match self.request.id {
            0 => u64::MAX - self.request.worker as u64,
            id => id as u64,
        }
    }
    fn before(&self, _sql: &'static str) -> Result<(), DbError> {
        self.alive()?;
        let n = self.statements.get() + 1;
        self.statements.set(n);
        if self.request.first_copy {
            let at = StatementAt {
                request: self.request.spec,
                statement: n,
                choice: crate::schedule::taken(),
            };
            self.world.log(|log| log.statements.push(at));
        }
        let Some(FaultKind::Db(error)) = self
            .world
            .fault(self.request, Some(n), |k| matches!(k, FaultKind::Db(_)))
        else {
            return Ok(());
        };
        let error = match error {
            DbFault::Busy => DbError::Busy,
            DbFault::Io => DbError::Io,
            DbFault::Full => DbError::Full,
        };
        self.world.log(|log| log.faults_fired += 1);
        let what = What::Fault {
            statement: n,
            error: error.to_string(),
        };
        self.world.event(Some(self.request), None, what);
        Err(error)
    }
    fn after(&self, sql: &'static str, outcome: &Result<usize, DbError>) -> Result<(), DbError> {
        let crash = self
            .world
            .fault(self.request, Some(self.statements.get()), |k| k == FaultKind::Crash)
            .is_some();
        // Called with the connection held: this is the statement's place in
        // the trace. Recording it is no step of its own.
        let outcome = match outcome {
            Ok(_) if sql == "BEGIN IMMEDIATE" || sql == "COMMIT" => SqlOutcome::Done,
            Ok(n) => SqlOutcome::Rows(*n),
            Err(e) => SqlOutcome::Error(e.to_string()),
        };
        self.world.event(Some(self.request), None, What::Sql { sql, outcome });
        if crash {
            // The whole process dies now: every request in flight on it is
            // dead at its next step.
            self.world.log(|log| {
                log.faults_fired += 1;
                log.generations[self.request.worker] += 1;
                log.recovering[self.request.worker] = true;
            });
            self.killed_it.set(true);
            return Err(DbError::Crashed);
        }
        Ok(())
    }
    fn still_alive(&self) -> Result<(), DbError> {
        Ok(self.alive()?)
    }
    fn wait_for_lock(&self, attempt: u32) -> Result<(), DbError> {
        // SQLite's busy handler: back off, doubling, until the timeout.
        let waited = self.busy_waited_ms.get();
        if waited >= BUSY_TIMEOUT_MS {
            return Err(DbError::Busy);
        }
        let backoff = (10u64 << attempt.min(9).saturating_sub(1)).min(BUSY_TIMEOUT_MS - waited);
        self.busy_waited_ms.set(waited + backoff);
        if attempt == 1 {
            self.world.event(
                Some(self.request),
                None,
                What::Waited("the database is locked by another request"),
            );
        }
        self.world.sleep(backoff);
        Ok(self.alive()?)
    }
}

impl<F: Flow> Ports for SimPorts<'_, F> {
    type Platform = P;
    fn db(&self) -> Db<'_, P> {
        self.world.store.db(self)
    }
    // Reading the clock and drawing randomness are not steps (the spec's
    // steps are SQL, sessions, mail and worker memory).
    fn now_ms(&self) -> u64 {
        EPOCH_UNIX_MS + self.world.log(|log| log.now_ms)
    }
    // The network adds no delay to requests: a request arrives when it is
    // sent. A worker's own start-up work arrives when it starts.
    fn arrived_ms(&self) -> u64 {
        match self.request.id {
            0 => self.now_ms(),
            _ => EPOCH_UNIX_MS + self.request.at_ms,
        }
    }
    fn random_u64(&self) -> u64 {
        self.world.log(|log| log.rng.next_u64())
    }
    fn send_mail(&self, mail: Mail) -> Result<Sent, WorkerCrashed> {
        self.alive()?;
        let lost = self.world.fault(self.request, None, |k| k == FaultKind::Mail).is_some();
        let latency = self.world.plan.scenario.deployment.mail_latency_ms;
        let to = mail.to.clone();
        let number = self.world.with(|s| s.mailboxes.post(mail.to.clone(), mail.otp.clone()));
        if latency > 0 {
            self.world.event(Some(self.request), None, What::Waited("SMTP send"));
            self.world.sleep(latency);
        }
        if self.alive().is_err() {
            // The SMTP conversation ends with the process: nothing goes out.
            self.world
                .event(Some(self.request), None, What::MailCut { mail: number });
            return Err(WorkerCrashed);
        }
        // A mail is sent when the mail server has accepted it (the reply
        // to DATA): its code's promised lifetime starts now, after the
        // SMTP conversation, as it does in live mode.
        let (id, worker) = (self.request.id, Some(self.request.worker));
        let sent = (mail.to, mail.otp, mail.temp_id.to_string());
        self.world.log(|log| {
            log.recorder
                .mail_accepted(log.now_ms, (id, worker), number, sent, (lost, Vec::new()))
        });
        if lost {
            self.world.log(|log| log.faults_fired += 1);
        } else {
            self.world.with(|s| {
                let at = mail_due(s.now_ms, Some(self.spec));
                s.deliveries.push((at, Delivery::Mail { mail: number, to }));
            });
        }
        Ok(Sent::Accepted)
    }
    fn with_memory<R>(&self, f: impl FnOnce(&mut WorkerMemory) -> R) -> Result<R, WorkerCrashed> {
        // Checked once the memory is ours: taking it is a step, and the
        // process may die meanwhile; a dead request must not write into
        // its successor's memory.
        self.world.with(|s| {
            self.alive()?;
            self.world.event(Some(self.request), None, What::Memory);
            Ok(f(&mut s.memories[self.request.worker]))
        })
    }
}

/// Runs the plan once. Call it inside a shuttle execution: the scheduler
/// of that execution decides every interleaving.
pub fn run<F: Flow>(plan: &RunPlan<F>) -> RunOutcome {
    let scenario = &plan.scenario;
    let config = FlowConfig {
        otp_ttl_ms: scenario.deployment.otp_ttl_ms,
        max_attempts: scenario.deployment.max_attempts,
        db_mode: scenario.deployment.db_mode,
        ..FlowConfig::default()
    };
    let (prepared, emptying) = spare::take(plan.flow.schema());
    let store = Store::<P>::from_prepared(prepared);
    let workers = scenario.deployment.workers;
    let mut owners = BTreeMap::new();
    for r in &scenario.requests {
        owners
            .entry(r.browser.clone())
            .or_insert_with(|| scenario.owns(&r.browser));
    }
    let seers = scenario
        .browsers
        .iter()
        .filter(|b| b.sees_everything)
        .map(|b| b.name.clone())
        .collect();
    let world = Arc::new(World {
        log: Unshared(RefCell::new(Log {
            now_ms: 0,
            last_snapshot: None,
            recorder: Recorder::with_capacity(TRACE_CAPACITY),
            rng: SplitMix64::new(plan.seed),
            faults_fired: 0,
            statements: Vec::new(),
            generations: vec![0; workers],
            recovering: vec![false; workers],
            in_flight: BTreeMap::new(),
        })),
        plan: plan.clone(),
        owners,
        seers,
        config,
        store,
        planned: plan_requests(scenario),
        state: <P as Platform>::Mutex::new(State {
            now_ms: 0,
            running: 0,
            sleepers: Vec::new(),
            next_token: 0,
            browsers: BTreeMap::new(),
            navigations: Navigations::default(),
            mailboxes: Mailboxes::default(),
            sightings: Sightings::default(),
            server_sessions: BTreeMap::new(),
            next_sid: 1,
            deliveries: Vec::new(),
            memories: vec![WorkerMemory::default(); workers],
            recovery_waiters: vec![Vec::new(); workers],
            finished: 0,
            finished_at_snapshot: 0,
        }),
        clock: P::condvar(),
    });
    drive(&world);
    crate::schedule::set_quiet(false);
    let faults_fired = world.log(|log| log.faults_fired >= plan.faults.len());
    let statements = world.log(|log| std::mem::take(&mut log.statements));
    let trace = world.log(|log| std::mem::take(&mut log.recorder)).finish();
    // Every task is joined: the world is ours alone again.
    if let Ok(world) = Arc::try_unwrap(world) {
        spare::give_back(plan.flow.schema(), world.store.into_prepared(), emptying);
    }
    RunOutcome {
        trace,
        faults_fired,
        statements,
    }
}

/// In-memory databases kept between runs on this thread, with the
/// statements prepared on them. Opening one and creating the tables costs
/// more than the rest of a schedule; emptying the tables is cheap and keeps
/// the prepared statements warm. An emptied table
/// hands out the same rowids as a new one, so runs stay identical.
mod spare {
    use std::cell::RefCell;

    use otpsim_core::Prepared;
    use rusqlite::Connection;

    /// How to empty a database, listed once rather than asking
    /// `sqlite_master` at every run (BENCHMARKS.md, session 18).
    pub(super) struct Emptying {
        /// One `DELETE` per table, `sqlite_sequence` among them, so that
        /// AUTOINCREMENT ids start again at 1.
        statements: Vec<String>,
        /// `PRAGMA schema_version` when they were listed: a flow that
        /// creates a table as it runs changes it, and its database is not
        /// kept.
        version: i64,
    }

    struct Kept {
        schema: &'static str,
        prepared: Prepared,
        emptying: Emptying,
    }

    /// Bytes a page of a simulated database: SQLite's smallest but one.
    const PAGE_SIZE: i64 = 1024;

    thread_local! {
        static SPARE: RefCell<Vec<Kept>> = const { RefCell::new(Vec::new()) };
    }

    fn schema_version(prepared: &mut Prepared) -> rusqlite::Result<i64> {
        prepared.with_statement(super::SCHEMA_VERSION, |s| s.query_row([], |r| r.get(0)))
    }

    /// A database with `schema` and no rows, and how to empty it.
    pub(super) fn take(schema: &'static str) -> (Prepared, Emptying) {
        let kept = SPARE.with(|s| {
            let mut spare = s.borrow_mut();
            let i = spare.iter().position(|k| std::ptr::eq(k.schema, schema))?;
            let kept = spare.swap_remove(i);
            Some((kept.prepared, kept.emptying))
        });
        kept.unwrap_or_else(|| {
            let mut prepared = Prepared::new(Connection::open_in_memory().expect("an in-memory database opens"));
            let conn = prepared.connection();
            // A write copies each page it changes into the rollback
            // journal: a run's rows fill a few hundred bytes, and 4 KiB
            // pages cost it 5% (BENCHMARKS.md, session 25).
            conn.pragma_update(None, "page_size", PAGE_SIZE)
                .expect("an empty database takes a page size");
            conn.execute_batch(schema).expect("the variant's schema is valid SQL");
            let listed = conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .and_then(|mut s| {
                    s.query_map([], |r| r.get::<_, String>(0))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .and_then(|tables| Ok((tables, schema_version(&mut prepared)?)));
            let (tables, version) = listed.expect("an in-memory database lists its tables");
            let statements = tables.iter().map(|t| format!("DELETE FROM \"{t}\"")).collect();
            (prepared, Emptying { statements, version })
        })
    }

    /// Empties the tables and keeps the database for the next run; one
    /// that cannot be emptied, or whose tables changed, is dropped.
    pub(super) fn give_back(schema: &'static str, mut prepared: Prepared, emptying: Emptying) {
        let emptied = prepared.connection().is_autocommit()
            && schema_version(&mut prepared).is_ok_and(|v| v == emptying.version)
            && emptying.statements.iter().all(|sql| {
                // Made at run time, so rusqlite's cache, not the store's list.
                prepared
                    .connection()
                    .prepare_cached(sql)
                    .and_then(|mut s| s.execute([]))
                    .is_ok()
            });
        if emptied {
            SPARE.with(|s| {
                s.borrow_mut().push(Kept {
                    schema,
                    prepared,
                    emptying,
                })
            });
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const SCHEMA: &str = "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL);";

        fn insert(conn: &Connection) -> i64 {
            conn.execute("INSERT INTO outbox (email) VALUES ('ana@example.com')", [])
                .unwrap();
            conn.last_insert_rowid()
        }

        #[test]
        fn a_kept_database_hands_out_the_ids_of_a_new_one() {
            let (prepared, emptying) = take(SCHEMA);
            let conn = prepared.connection();
            assert_eq!((insert(conn), insert(conn)), (1, 2));
            // A mark on the connection that is no table's row.
            conn.pragma_update(None, "user_version", 7).unwrap();
            give_back(SCHEMA, prepared, emptying);
            let (prepared, emptying) = take(SCHEMA);
            let conn = prepared.connection();
            let mark: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
            assert_eq!(mark, 7, "the same connection again");
            let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0)).unwrap();
            assert_eq!(page, PAGE_SIZE, "the small pages a run's journal copies");
            // Its AUTOINCREMENT counter was emptied too.
            assert_eq!(insert(conn), 1);
            give_back(SCHEMA, prepared, emptying);
        }

        #[test]
        fn a_database_whose_tables_changed_is_not_kept() {
            let (prepared, emptying) = take(SCHEMA);
            let conn = prepared.connection();
            conn.execute_batch("CREATE TABLE later (x INTEGER); INSERT INTO later VALUES (1);")
                .unwrap();
            give_back(SCHEMA, prepared, emptying);
            let (prepared, emptying) = take(SCHEMA);
            let conn = prepared.connection();
            let later: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'later'", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(later, 0, "a new database, without the table the run made");
            give_back(SCHEMA, prepared, emptying);
        }
    }
}

fn drive<F: Flow>(world: &Arc<World<F>>) {
    let mut next_send = 0;
    let mut handlers = Vec::new();
    // The file's requests, then (once they are all done) the probe's.
    let mut sends: Vec<(Planned, RequestSpec)> = world
        .planned
        .iter()
        .map(|p| (p.clone(), world.plan.scenario.requests[p.spec].clone()))
        .collect();
    let mut probed = !world.plan.scenario.probe;
    loop {
        P::wait_while(&world.state, &world.clock, |s| s.running > 0);
        let idle = world.with(|s| s.sleepers.is_empty());
        if idle {
            let changed = world.with(|s| s.finished != s.finished_at_snapshot);
            if changed {
                let db = world.snapshot();
                world.with(|s| {
                    world.log(|log| log.recorder.quiescent(log.now_ms, db));
                    s.finished_at_snapshot = s.finished;
                });
            }
        }
        let next = world.with(|s| {
            let deliveries = s.deliveries.iter().map(|(at, _)| *at);
            let sleepers = s.sleepers.iter().map(|(wake, _)| *wake);
            let send = sends.get(next_send).map(|(p, _)| p.at_ms);
            deliveries.chain(sleepers).chain(send).min()
        });
        let Some(now) = next else {
            if probed {
                break;
            }
            // Every request answered, every mail delivered: the probe, on
            // no strategy's budget.
            probed = true;
            crate::schedule::set_quiet(true);
            let now = world.with(|s| s.now_ms);
            let accounts = world.snapshot().accounts;
            let logins = probe_logins(&world.plan.scenario, &accounts, sends.len(), now);
            if !logins.is_empty() {
                world.record(None, None, None, What::Probe { guessed: false });
            }
            sends.extend(logins);
            continue;
        };
        let now = world.with(|s| {
            s.now_ms = s.now_ms.max(now);
            s.now_ms
        });
        world.log(|log| log.now_ms = now);

        // 1. Deliveries due now, in an order the scheduler picks.
        let due: Vec<Delivery> = world.with(|s| {
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut s.deliveries)
                .into_iter()
                .partition(|(at, _)| *at <= now);
            s.deliveries = later;
            due.into_iter().map(|(_, d)| d).collect()
        });
        if due.len() == 1 {
            let d = due.into_iter().next().expect("one");
            world.with(|s| deliver(world, s, d));
        } else {
            let racers: Vec<_> = due
                .into_iter()
                .map(|d| {
                    let w = Arc::clone(world);
                    P::spawn(move || w.with(|s| deliver(&w, s, d)))
                })
                .collect();
            racers.into_iter().for_each(P::join);
        }

        // 2. Handlers whose wait is over.
        world.with(|s| {
            let before = s.sleepers.len();
            s.sleepers.retain(|(wake, _)| *wake > now);
            s.running += before - s.sleepers.len();
        });
        P::notify_all(&world.clock);

        // 3. Requests sent now.
        while let Some((p, spec)) = sends.get(next_send).filter(|(p, _)| p.at_ms <= now) {
            next_send += 1;
            let (p, spec) = (p.clone(), spec.clone());
            let (request, cookie) = world.with(|s| send(world, s, &p, &spec));
            let w = Arc::clone(world);
            handlers.push(P::spawn(move || handle(&w, p, spec, request, cookie)));
        }
    }
    handlers.into_iter().for_each(P::join);
}

fn deliver<F: Flow>(world: &World<F>, s: &mut State, delivery: Delivery) {
    match delivery {
        Delivery::Response {
            request,
            browser,
            set_cookie,
        } => {
            let taken = s.navigations.arrives(&browser, request).then(|| {
                let b = s.browsers.entry(browser.clone()).or_default();
                if let Some(c) = set_cookie {
                    b.cookie = c;
                }
                b.cookie.clone()
            });
            if let (Some(cookie), true) = (&taken, world.seers.contains(&browser)) {
                s.sightings.saw(&browser, "a cookie", cookie.to_string());
            }
            world.log(|log| log.recorder.response_arrived(log.now_ms, request, &browser, taken));
        }
        Delivery::Mail { mail, to } => {
            s.mailboxes.arrives(mail, to.clone());
            world.log(|log| log.recorder.mail_arrived(log.now_ms, mail, to));
        }
    }
}

/// The browser sends `p`: the code is picked from the mailbox as it stands
/// now (if the browser reads it), the cookie is whatever the jar holds now.
fn send<F: Flow>(world: &World<F>, s: &mut State, p: &Planned, spec: &RequestSpec) -> (Request, Cookie) {
    let owns = world.owners.get(&spec.browser).map_or(&[][..], |o| &o[..]);
    let cookie = s.browsers.entry(spec.browser.clone()).or_default().cookie.clone();
    let sightings = world.seers.contains(&spec.browser).then_some(&mut s.sightings);
    let (otp, source) = s.mailboxes.typed(spec, owns, sightings);
    let (email, password) = (spec.email.to_string(), spec.password.clone());
    let request = match spec.kind {
        Kind::Signup => Request::Signup { email, password },
        Kind::Verify => Request::Verify {
            email,
            otp: otp.as_ref().map(|o| o.digits().to_string()).unwrap_or_default(),
            password,
        },
        Kind::Login => Request::Login { email, password },
        Kind::Resend => Request::Resend { email, password },
    };
    // A form submission is a navigation: it abandons the browser's
    // earlier one still in flight.
    if spec.via == Via::Form {
        s.navigations.submit(&spec.browser, p.id);
    }
    // The process that accepts the request is the one alive now.
    world.log(|log| {
        let generation = log.generations[p.worker];
        log.in_flight.insert(p.id, (p.worker, generation));
    });
    let sending = Sending {
        spec,
        owner: owns.contains(&spec.email),
        otp,
        source,
        cookie: cookie.clone(),
        route: None,
    };
    world.log(|log| log.recorder.sent(log.now_ms, (p.id, Some(p.worker)), sending));
    s.running += 1;
    (request, cookie)
}

fn handle<F: Flow>(world: &World<F>, p: Planned, spec: RequestSpec, request: Request, cookie: Cookie) {
    let (p, spec, id) = (&p, &spec, p.id);
    let server = world.plan.scenario.deployment.session == SessionMode::Server;
    let ports = SimPorts::new(world, p, spec);
    if ports.alive().is_ok() {
        wait_for_recovery(world, p.worker, ports.generation, id);
    }
    let mut session = match &cookie {
        Cookie::Session(data) => Session::loaded(data.clone()),
        Cookie::Sid(sid) => world.with(|s| {
            let data = s.server_sessions.get(sid).cloned().unwrap_or_default();
            world.event(Some(p), None, What::SessionLoad(data.clone()));
            Session::loaded(data)
        }),
        Cookie::None | Cookie::Opaque(_) => Session::default(),
    };
    // A panic in the handler is the flow's bug, not the harness's: it is
    // recorded, the request gets no answer, and the run goes on so that
    // the trace around it is kept.
    let ran = catch_unwind(AssertUnwindSafe(|| {
        world.plan.flow.handle(&ports, &world.config, &mut session, &request)
    }));
    let handled = match ran {
        Ok(handled) => handled,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".to_string());
            world.event(Some(p), None, What::Panicked(message));
            world.store.abandon(id as u64);
            world.log(|log| log.in_flight.remove(&id));
            // It may have panicked on its own crash: the process still died.
            if ports.killed_it.get() {
                world.with(|s| s.memories[p.worker] = WorkerMemory::default());
                replace_process(world, p, spec);
            }
            world.with(|s| {
                s.running -= 1;
                s.finished += 1;
            });
            P::notify_all(&world.clock);
            return;
        }
    };
    // A request that outlived its process without another step still
    // answers nothing.
    let handled = handled.and_then(|r| ports.alive().map(|()| r));
    world.log(|log| log.in_flight.remove(&id));
    world.with(|s| match &handled {
        Ok(response) => {
            let set_cookie = session.is_modified().then(|| {
                let data = session.data().clone();
                if server {
                    let sid = match cookie {
                        Cookie::Sid(sid) => sid,
                        _ => {
                            s.next_sid += 1;
                            s.next_sid - 1
                        }
                    };
                    world.event(Some(p), None, What::SessionSave(data.clone()));
                    s.server_sessions.insert(sid, data);
                    Cookie::Sid(sid)
                } else {
                    Cookie::Session(data)
                }
            });
            let (code, message, set) = (response.code, response.message.clone(), set_cookie.clone());
            world.log(|log| {
                log.recorder
                    .answered(log.now_ms, (id, Some(p.worker)), (code, None), message, set)
            });
            // The simulator's clock is the instant of the answer.
            let at = response_due(s.now_ms, spec);
            s.deliveries.push((
                at,
                Delivery::Response {
                    request: id,
                    browser: spec.browser.clone(),
                    set_cookie,
                },
            ));
        }
        Err(WorkerCrashed) if ports.killed_it.get() => {
            world.event(Some(p), None, What::Crashed);
            // A fresh process: the lock table is gone.
            s.memories[p.worker] = WorkerMemory::default();
        }
        Err(WorkerCrashed) => world.event(Some(p), None, What::DiedWithWorker),
    });
    if ports.killed_it.get() {
        replace_process(world, p, spec);
    }
    world.with(|s| {
        s.running -= 1;
        s.finished += 1;
    });
    P::notify_all(&world.clock);
}

/// After `crashed`'s fault killed its process: every open transaction of
/// the dead process rolls back, as SQLite does (defensive: a crash follows
/// a statement that ran, so no neighbour held the write lock then), and a
/// new process starts and recovers.
fn replace_process<F: Flow>(world: &World<F>, crashed: &Planned, spec: &RequestSpec) {
    let dead: Vec<usize> = world.log(|log| {
        let now = log.generations[crashed.worker];
        log.in_flight
            .iter()
            .filter(|(_, (w, generation))| *w == crashed.worker && *generation < now)
            .map(|(r, _)| *r)
            .collect()
    });
    for r in dead {
        world.store.abandon(r as u64);
    }
    // Requests that were waiting for the previous recovery are dead now:
    // let them see it before this recovery waits on the clock.
    P::notify_all(&world.clock);
    restart(world, crashed, spec);
}

/// A request accepted by a worker's new process while it still runs its
/// recovery waits for it, off the clock's books (the recovery's own waits
/// must be able to move time); the recovery puts it back on them. A
/// request put back on the books stops waiting if its process died again
/// before it ran (`generation` is the one that accepted it): it is dead,
/// and it must not wait, counted as running, for a recovery that waits for
/// the clock (found by the explorer: two crashes and a 10-minute SMTP send).
fn wait_for_recovery<F: Flow>(world: &World<F>, worker: usize, generation: u64, request: usize) {
    let waits = world.with(|s| {
        // Asked once the state is ours (taking it is a step): the process
        // may have died, and recovery begun, since the request was sent.
        let (recovering, current) = world.log(|log| (log.recovering[worker], log.generations[worker] == generation));
        let waits = recovering && current;
        if waits {
            s.running -= 1;
            s.recovery_waiters[worker].push(request);
        }
        waits
    });
    if waits {
        P::notify_all(&world.clock);
        P::wait_while(&world.state, &world.clock, |_| {
            world.log(|log| log.recovering[worker] && log.generations[worker] == generation)
        });
        // Woken by its process's death rather than by the recovery's end:
        // back on the clock's books by itself.
        world.with(|s| {
            let waiters = &mut s.recovery_waiters[worker];
            if let Some(i) = waiters.iter().position(|r| *r == request) {
                waiters.swap_remove(i);
                s.running += 1;
            }
        });
    }
}

/// The crashed worker's replacement starts and runs the variant's recovery
/// (no faults: the plan targets requests), then takes requests again.
/// Its mails take the crashed request's `email_delay`.
fn restart<F: Flow>(world: &World<F>, crashed: &Planned, spec: &RequestSpec) {
    let boot = Planned {
        id: 0,
        first_copy: false,
        ..crashed.clone()
    };
    world.event(Some(&boot), None, What::Restarted);
    let ports = SimPorts::new(world, &boot, spec);
    // A crash during recovery cannot be planned; nothing more to do.
    let _ = world.plan.flow.recover(&ports, &world.config);
    world.with(|s| {
        world.log(|log| log.recovering[crashed.worker] = false);
        s.running += std::mem::take(&mut s.recovery_waiters[crashed.worker]).len();
    });
    P::notify_all(&world.clock);
}
