//! Real concurrency, for comparison with simulation: browsers on std
//! threads or tokio tasks double-click signup, then verify with the newest
//! code while a guesser tries a wrong one, against a pool of workers that
//! each hold their own connection to one SQLite file in WAL mode with a
//! busy timeout. Each run's events feed the same invariant checker.
//!
//! Nothing here is deterministic: the OS schedules the threads, and the
//! clock the flows see is the real one. That is the point of comparison.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use otpsim_core::platform::Std;
use otpsim_core::ports::RequestRng;
use otpsim_core::store::{YieldingHook, BUSY_TIMEOUT_MS};
use otpsim_core::{
    Db, DbError, Email, Flow, FlowConfig, Kind, Mail, Otp, Ports, Request, Sent, Session, Store, Variant,
    WorkerCrashed, WorkerMemory,
};

use otpsim_model::invariant::{violations, Invariant, Limits};
use otpsim_model::recorder::{Recorder, Sending};
use otpsim_model::scenario::RequestSpec;
use otpsim_model::trace::{CodeSource, Cookie, DbState, Trace, What};

/// How browsers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// One OS thread per browser; a double-click is two scoped threads.
    Threads,
    /// Browsers are tokio tasks; handlers run on `spawn_blocking`.
    Tokio,
}

/// What a stress run measured.
#[derive(Debug, Clone, Default)]
pub struct StressReport {
    /// Runs (one browser's signup, signup, verify and guess).
    pub runs: u64,
    /// Requests answered.
    pub requests: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Runs that broke each invariant.
    pub violations: Vec<(Invariant, u64)>,
    /// Answers per status, for the 500s and 503s.
    pub statuses: Vec<(u16, u64)>,
    /// One explanation per broken invariant, from the first run that broke it.
    pub examples: Vec<(Invariant, String)>,
}

impl StressReport {
    /// Runs that broke `invariant`, per 1000 runs.
    pub fn per_thousand(&self, invariant: Invariant) -> f64 {
        let n = self
            .violations
            .iter()
            .find(|(i, _)| *i == invariant)
            .map_or(0, |(_, n)| *n);
        if self.runs == 0 {
            0.0
        } else {
            n as f64 * 1000.0 / self.runs as f64
        }
    }
}

/// One server worker: its own connection and its own memory.
struct Worker {
    store: Store<Std>,
    memory: Mutex<WorkerMemory>,
}

/// The deployment: a pool of workers a request checks one out of.
struct Server {
    variant: Variant,
    /// The invariant checker's own connection, for snapshots.
    reader: Store<Std>,
    config: FlowConfig,
    idle: Mutex<Vec<Arc<Worker>>>,
    freed: Condvar,
    next_request: AtomicU64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One run's event log, shared by its browser and the handlers.
type Log = Arc<Mutex<Recorder>>;

struct StressPorts<'a> {
    arrived_ms: u64,
    worker: &'a Worker,
    hook: YieldingHook<Std>,
    rng: RequestRng,
    log: &'a Log,
    request: usize,
    started: Instant,
}

impl Ports for StressPorts<'_> {
    type Platform = Std;
    fn db(&self) -> Db<'_, Std> {
        self.worker.store.db(&self.hook)
    }
    fn now_ms(&self) -> u64 {
        unix_ms()
    }
    fn arrived_ms(&self) -> u64 {
        self.arrived_ms
    }
    fn random_u64(&self) -> u64 {
        self.rng.next_u64()
    }
    fn send_mail(&self, mail: Mail) -> Result<Sent, WorkerCrashed> {
        let mut log = self.log.lock().expect("not poisoned");
        let number = log.mails() + 1;
        let at = self.started.elapsed().as_millis() as u64;
        let sent = (mail.to, mail.otp, mail.temp_id.to_string());
        log.mail_accepted(at, (self.request, None), number, sent, (false, Vec::new()));
        Ok(Sent::Accepted)
    }
    fn with_memory<R>(&self, f: impl FnOnce(&mut WorkerMemory) -> R) -> Result<R, WorkerCrashed> {
        Ok(f(&mut self.worker.memory.lock().expect("not poisoned")))
    }
}

impl Server {
    fn open(variant: Variant, db: &Path, workers: usize) -> Result<Server, DbError> {
        let pool = (0..workers.max(1))
            .map(|_| {
                Ok(Arc::new(Worker {
                    store: Store::open_file(db, variant.schema(), BUSY_TIMEOUT_MS)?,
                    memory: Mutex::new(WorkerMemory::default()),
                }))
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok(Server {
            variant,
            reader: Store::open_file(db, variant.schema(), BUSY_TIMEOUT_MS)?,
            config: FlowConfig::default(),
            idle: Mutex::new(pool),
            freed: Condvar::new(),
            next_request: AtomicU64::new(1),
        })
    }

    /// Handles one request on the next free worker (blocking).
    fn handle(&self, cookie: &Session, request: &Request, log: &Log, number: usize, started: Instant) -> Session {
        // Arrival is before the wait for a free worker, as a front proxy
        // would stamp it.
        let arrived_ms = unix_ms();
        let worker = {
            let mut idle = self.idle.lock().expect("not poisoned");
            loop {
                if let Some(w) = idle.pop() {
                    break w;
                }
                idle = self.freed.wait(idle).expect("not poisoned");
            }
        };
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let ports = StressPorts {
            arrived_ms,
            worker: &worker,
            hook: YieldingHook::new(id),
            rng: RequestRng::new(0, id),
            log,
            request: number,
            started,
        };
        let mut session = Session::loaded(cookie.data().clone());
        let handled = self.variant.handle(&ports, &self.config, &mut session, request);
        self.idle.lock().expect("not poisoned").push(worker);
        self.freed.notify_one();
        let mut log = log.lock().expect("not poisoned");
        let at = started.elapsed().as_millis() as u64;
        match handled {
            Ok(r) => log.answered(at, (number, None), (r.code, None), r.message, None),
            Err(_) => log.record(at, Some(number), None, None, What::Crashed),
        }
        session
    }

    fn snapshot(&self, email: &str) -> DbState {
        self.reader
            .inspect(|p| {
                let pending = p.with_statement(
                    "SELECT email, temp_id FROM temp_registrations WHERE email = ?1 ORDER BY temp_id",
                    |stmt| stmt.query_map([email], |r| Ok((r.get(0)?, r.get(1)?)))?.collect(),
                )?;
                let accounts = p.with_statement("SELECT email FROM users WHERE email = ?1", |stmt| {
                    stmt.query_map([email], |r| r.get(0))?.collect()
                })?;
                Ok(DbState { pending, accounts })
            })
            .unwrap_or_default()
    }
}

fn sent(
    log: &Log,
    number: usize,
    kind: Kind,
    email: &Email,
    otp: Option<Otp>,
    source: Option<CodeSource>,
    started: Instant,
) {
    let spec = RequestSpec::fetch(0, "b1", kind, email.clone(), "s3cret!");
    let at = started.elapsed().as_millis() as u64;
    let mut log = log.lock().expect("not poisoned");
    let sending = Sending {
        spec: &spec,
        owner: true,
        otp,
        source,
        cookie: Cookie::None,
        route: None,
    };
    log.sent(at, (number, None), sending);
}

fn quiescent(server: &Server, log: &Log, email: &Email, started: Instant) {
    let db = server.snapshot(email.as_str());
    let at = started.elapsed().as_millis() as u64;
    log.lock().expect("not poisoned").quiescent(at, db);
}

/// The newest code in the log for `email`, and its mail number.
fn latest_code(log: &Log, email: &Email) -> Option<(Otp, usize)> {
    log.lock()
        .expect("not poisoned")
        .events()
        .iter()
        .rev()
        .find_map(|e| match &e.what {
            What::MailSent { to, otp, mail, .. } if to == email => Some((otp.clone(), *mail)),
            _ => None,
        })
}

/// How a browser sends two requests at once and waits for both; the
/// sessions come back in the order the responses arrived.
trait Transport {
    fn both(
        &self,
        requests: [(Session, Request, usize); 2],
        log: &Log,
    ) -> impl std::future::Future<Output = Vec<Session>>;
}

/// Two scoped OS threads.
struct Threads(Arc<Server>, Instant);

impl Transport for Threads {
    async fn both(&self, requests: [(Session, Request, usize); 2], log: &Log) -> Vec<Session> {
        let arrived = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for (cookie, request, number) in &requests {
                let arrived = &arrived;
                scope.spawn(move || {
                    let s = self.0.handle(cookie, request, log, *number, self.1);
                    arrived.lock().expect("not poisoned").push(s);
                });
            }
        });
        arrived.into_inner().expect("not poisoned")
    }
}

/// Two `spawn_blocking` jobs: SQLite blocks, so it stays off the async
/// workers, as a tokio web server must keep it.
struct Tokio(Arc<Server>, Instant);

impl Transport for Tokio {
    async fn both(&self, requests: [(Session, Request, usize); 2], log: &Log) -> Vec<Session> {
        let arrived = Arc::new(Mutex::new(Vec::new()));
        let jobs: Vec<_> = requests
            .into_iter()
            .map(|(cookie, request, number)| {
                let (server, log, arrived, started) =
                    (Arc::clone(&self.0), Arc::clone(log), Arc::clone(&arrived), self.1);
                tokio::task::spawn_blocking(move || {
                    let s = server.handle(&cookie, &request, &log, number, started);
                    arrived.lock().expect("not poisoned").push(s);
                })
            })
            .collect();
        for job in jobs {
            let _ = job.await;
        }
        let sessions = std::mem::take(&mut *arrived.lock().expect("not poisoned"));
        sessions
    }
}

/// One run: a double-click signup whose responses race for the cookie, then
/// a verify with the newest code racing a guess.
async fn one_run(server: &Server, transport: &impl Transport, email: Email, started: Instant) -> Trace {
    let log: Log = Arc::default();
    let signup = Request::Signup {
        email: email.to_string(),
        password: "s3cret!".into(),
    };
    sent(&log, 1, Kind::Signup, &email, None, None, started);
    sent(&log, 2, Kind::Signup, &email, None, None, started);
    let sessions = transport
        .both(
            [(Session::default(), signup.clone(), 1), (Session::default(), signup, 2)],
            &log,
        )
        .await;
    // The last response to arrive sets the cookie, if it sets one.
    let cookie = sessions.into_iter().rfind(Session::is_modified).unwrap_or_default();
    let cookie = Session::loaded(cookie.data().clone());
    quiescent(server, &log, &email, started);
    if let Some((otp, mail)) = latest_code(&log, &email) {
        let wrong = Otp::from_number(otp.digits().parse::<u64>().unwrap_or(0) + 1);
        let verify = Request::Verify {
            email: email.to_string(),
            otp: otp.digits().into(),
            password: "s3cret!".into(),
        };
        let guess = Request::Verify {
            email: email.to_string(),
            otp: wrong.digits().into(),
            password: "s3cret!".into(),
        };
        sent(
            &log,
            3,
            Kind::Verify,
            &email,
            Some(otp),
            Some(CodeSource::Mail(mail)),
            started,
        );
        sent(
            &log,
            4,
            Kind::Verify,
            &email,
            Some(wrong),
            Some(CodeSource::Wrong),
            started,
        );
        transport
            .both([(cookie.clone(), verify, 3), (cookie, guess, 4)], &log)
            .await;
        quiescent(server, &log, &email, started);
    }
    let recorder = std::mem::take(&mut *log.lock().expect("not poisoned"));
    recorder.finish()
}

/// Tallies of all browsers, merged at the end.
#[derive(Default)]
struct Tally {
    runs: u64,
    requests: u64,
    violations: std::collections::BTreeMap<Invariant, u64>,
    statuses: std::collections::BTreeMap<u16, u64>,
    examples: std::collections::BTreeMap<Invariant, String>,
}

impl Tally {
    fn add(&mut self, trace: &Trace, limits: Limits) {
        self.runs += 1;
        for e in &trace.events {
            if let What::Answered { code, .. } = e.what {
                self.requests += 1;
                *self.statuses.entry(code.status()).or_default() += 1;
            }
        }
        for v in violations(trace, limits, &Invariant::ALL) {
            *self.violations.entry(v.invariant).or_default() += 1;
            self.examples.entry(v.invariant).or_insert(v.why);
        }
    }
}

async fn browser(
    server: Arc<Server>,
    transport: impl Transport,
    id: usize,
    until: Instant,
    runs: Arc<AtomicU64>,
    started: Instant,
) -> Tally {
    let limits = Limits {
        otp_ttl_ms: server.config.otp_ttl_ms,
        max_attempts: server.config.max_attempts,
        precision_ms: 0,
    };
    let mut tally = Tally::default();
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let email = Email::parse(&format!("b{id}r{n}@stress.example")).expect("a valid address");
        let trace = one_run(&server, &transport, email, started).await;
        tally.add(&trace, limits);
        runs.fetch_add(1, Ordering::Relaxed);
    }
    tally
}

/// Polls a future that never waits (the threads transport) to completion.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// Runs `browsers` browsers against `workers` workers on the database file
/// `db` for `duration`; `progress` is told the runs so far, now and then.
pub fn stress(
    variant: Variant,
    runtime: Runtime,
    browsers: usize,
    workers: usize,
    duration: Duration,
    db: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<StressReport, DbError> {
    let server = Arc::new(Server::open(variant, db, workers)?);
    let started = Instant::now();
    let until = started + duration;
    let runs = Arc::new(AtomicU64::new(0));
    let tallies: Vec<Tally> = match runtime {
        Runtime::Threads => std::thread::scope(|scope| {
            let handles: Vec<_> = (0..browsers.max(1))
                .map(|id| {
                    let (server, runs) = (Arc::clone(&server), Arc::clone(&runs));
                    scope.spawn(move || {
                        block_on(browser(
                            Arc::clone(&server),
                            Threads(server, started),
                            id,
                            until,
                            runs,
                            started,
                        ))
                    })
                })
                .collect();
            while handles.iter().any(|h| !h.is_finished()) {
                progress(runs.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(100));
            }
            handles
                .into_iter()
                .map(|h| h.join().expect("a browser panicked"))
                .collect()
        }),
        Runtime::Tokio => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(browsers.clamp(1, 4))
                .enable_time()
                .build()
                .map_err(|e| DbError::Other(e.to_string()))?;
            rt.block_on(async {
                let tasks: Vec<_> = (0..browsers.max(1))
                    .map(|id| {
                        let (server, runs) = (Arc::clone(&server), Arc::clone(&runs));
                        tokio::spawn(browser(
                            Arc::clone(&server),
                            Tokio(server, started),
                            id,
                            until,
                            runs,
                            started,
                        ))
                    })
                    .collect();
                while !tasks.iter().all(|t| t.is_finished()) {
                    progress(runs.load(Ordering::Relaxed));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let mut tallies = Vec::new();
                for t in tasks {
                    tallies.push(t.await.expect("a browser panicked"));
                }
                tallies
            })
        }
    };
    let mut total = Tally::default();
    for t in tallies {
        total.runs += t.runs;
        total.requests += t.requests;
        for (k, v) in t.violations {
            *total.violations.entry(k).or_default() += v;
        }
        for (k, v) in t.statuses {
            *total.statuses.entry(k).or_default() += v;
        }
        for (k, v) in t.examples {
            total.examples.entry(k).or_insert(v);
        }
    }
    Ok(StressReport {
        runs: total.runs,
        requests: total.requests,
        seconds: started.elapsed().as_secs_f64(),
        violations: total.violations.into_iter().collect(),
        statuses: total.statuses.into_iter().collect(),
        examples: total.examples.into_iter().collect(),
    })
}
