//! The database port: one SQLite database over rusqlite, shared by every
//! worker of a deployment, where each SQL statement is one step.
//!
//! A [`Store`] owns the connection; a request talks to it through a [`Db`]
//! handle that carries the request's [`StatementHook`]. The hook is how a
//! harness sees and steers each statement: it traces it, yields to the
//! scheduler, injects a fault, or kills the worker right after it.
//!
//! SQLite's write lock is modelled explicitly: `BEGIN IMMEDIATE` makes the
//! request the writer until `COMMIT` or rollback, and any statement of
//! another request meanwhile waits as SQLite's busy handler does (through
//! [`StatementHook::wait_for_lock`]) and fails with [`DbError::Busy`] when
//! the hook gives up. Readers are blocked too, which is stricter than WAL
//! but never hides a race between writers. A store opened on a file per
//! thread (`otpsim stress`) leaves all of this to SQLite itself.

use std::ptr::NonNull;

use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, MappedRows, Params, PrepFlags, Statement, ToSql};

use crate::platform::{Lock, Platform};

/// SQLite's busy timeout, as Python's `sqlite3` sets it: how long a
/// statement waits for another connection's write lock before it fails
/// with SQLITE_BUSY. The simulated world's busy handler and every real
/// connection (`otpsim stress`) use this one figure.
pub const BUSY_TIMEOUT_MS: u64 = 5000;

/// Why a statement failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    /// SQLITE_BUSY: the database was locked for longer than the busy timeout.
    #[error("database is locked (SQLITE_BUSY)")]
    Busy,
    /// SQLITE_IOERR: a disk I/O error.
    #[error("disk I/O error (SQLITE_IOERR)")]
    Io,
    /// SQLITE_FULL: the disk is full.
    #[error("database or disk is full (SQLITE_FULL)")]
    Full,
    /// A constraint (UNIQUE, NOT NULL, …) refused the statement.
    #[error("constraint failed: {0}")]
    Constraint(String),
    /// The worker process died during or right after the statement; its
    /// open transaction is rolled back and its request gets no answer.
    #[error("the worker crashed")]
    Crashed,
    /// Anything else SQLite reported.
    #[error("{0}")]
    Other(String),
}

impl From<rusqlite::Error> for DbError {
    fn from(err: rusqlite::Error) -> DbError {
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => DbError::Busy,
            Some(ErrorCode::SystemIoFailure) => DbError::Io,
            Some(ErrorCode::DiskFull) => DbError::Full,
            Some(ErrorCode::ConstraintViolation) => DbError::Constraint(err.to_string()),
            _ => DbError::Other(err.to_string()),
        }
    }
}

/// What a harness does around each statement of one request.
pub trait StatementHook {
    /// Who is asking, for the write lock: distinct for concurrent requests.
    fn requester(&self) -> u64;
    /// Before a statement runs. An error is the statement's outcome (an
    /// injected fault) and the statement does not run.
    fn before(&self, sql: &'static str) -> Result<(), DbError> {
        let _ = sql;
        Ok(())
    }
    /// Holding the connection, just before the statement runs: `Err`
    /// refuses it. Taking the connection is a step, so a request whose
    /// process died while it waited for it is refused here.
    fn still_alive(&self) -> Result<(), DbError> {
        Ok(())
    }
    /// After the statement ran, still holding the connection, so that
    /// hooks see statements in the order they ran. `Err(DbError::Crashed)`
    /// kills the worker right after it (a committed COMMIT stays committed).
    fn after(&self, sql: &'static str, outcome: &Result<usize, DbError>) -> Result<(), DbError> {
        let _ = (sql, outcome);
        Ok(())
    }
    /// Another request holds the write lock: wait before try `attempt`
    /// (1-based). `Err(DbError::Busy)` means the busy timeout ran out,
    /// `Err(DbError::Crashed)` that the process died while it waited.
    fn wait_for_lock(&self, attempt: u32) -> Result<(), DbError>;
}

/// A hook that only yields while waiting for the lock: for running the
/// flows directly on a platform, with no world around them.
#[derive(Debug)]
pub struct YieldingHook<P> {
    requester: u64,
    _platform: std::marker::PhantomData<fn() -> P>,
}

impl<P: Platform> YieldingHook<P> {
    /// The hook of request `requester`.
    pub fn new(requester: u64) -> Self {
        YieldingHook {
            requester,
            _platform: std::marker::PhantomData,
        }
    }
}

impl<P: Platform> StatementHook for YieldingHook<P> {
    fn requester(&self) -> u64 {
        self.requester
    }
    fn wait_for_lock(&self, attempt: u32) -> Result<(), DbError> {
        P::yield_now();
        if attempt < 1000 {
            Ok(())
        } else {
            Err(DbError::Busy)
        }
    }
}

/// One row of a result, as SQLite's dynamic values.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(Vec<Value>);

impl Row {
    /// Column `i` as text, or `""` if it is not text.
    pub fn text(&self, i: usize) -> &str {
        match self.0.get(i) {
            Some(Value::Text(s)) => s,
            _ => "",
        }
    }
    /// Column `i` as an integer, or 0 if it is not one.
    pub fn int(&self, i: usize) -> i64 {
        match self.0.get(i) {
            Some(Value::Integer(n)) => *n,
            _ => 0,
        }
    }
}

struct Inner {
    prepared: Prepared,
    writer: Option<u64>,
}

/// Statements a [`Prepared`] keeps: more than any flow has.
const STATEMENTS_KEPT: usize = 64;

/// A connection and the statements a [`Store`] prepared on it, found again
/// by the address of their text. A flow's SQL is literals, so a dozen
/// addresses (Rust does not promise one address for equal literals: a text
/// at two addresses is only prepared twice). Kept together so that a
/// connection reused for a later store (the simulator's spare databases)
/// keeps them warm.
///
/// Why not rusqlite's `prepare_cached`: it hashes the text twice a
/// statement, copies it into a new key and relinks an LRU list; that was
/// about 6% of an explored schedule (BENCHMARKS.md, session 28).
pub struct Prepared {
    statements: Vec<(&'static str, Statement<'static>)>,
    /// Owned: made by `Box::leak` in [`Prepared::new`], freed in `drop`
    /// after the statements. A pointer, not a `Box`: moving a `Box`
    /// asserts it is the only way to its value, and every statement holds
    /// another.
    conn: NonNull<Connection>,
}

// Safety: SQLite's multi-thread mode (rusqlite opens its connections with
// SQLITE_OPEN_NO_MUTEX) lets a connection move to another thread with its
// statements, so long as one thread at a time uses them. The statements
// here are this connection's own (a `KeptStatement` cannot be replaced or
// taken out), and using any takes `&mut self`.
unsafe impl Send for Prepared {}

impl Drop for Prepared {
    fn drop(&mut self) {
        // A statement finalizes through its connection: the statements go
        // first.
        self.statements.clear();
        // Safety: made by `Box::leak` in `new` and freed only here; no
        // statement is left to use it.
        drop(unsafe { Box::from_raw(self.conn.as_ptr()) });
    }
}

impl Prepared {
    /// `conn`, with no statement prepared yet.
    pub fn new(conn: Connection) -> Self {
        Prepared {
            statements: Vec::new(),
            conn: NonNull::from(Box::leak(Box::new(conn))),
        }
    }

    /// The connection, for what goes around the store's statements
    /// (reading it with SQL made at run time, emptying it for reuse).
    pub fn connection(&self) -> &Connection {
        // Safety: valid until `drop`.
        unsafe { self.conn.as_ref() }
    }

    /// Runs `f` on the statement of `sql`, prepared once: what reads the
    /// connection often (the simulator's snapshot at each quiescent
    /// point) pays no parse and no hash. Its parameters are cleared
    /// afterwards, on a panic too, as `prepare_cached` clears them: named
    /// parameters need not all be bound, and one left out must be NULL,
    /// not the last call's value.
    pub fn with_statement<R>(
        &mut self,
        sql: &'static str,
        f: impl FnOnce(&mut KeptStatement<'_>) -> rusqlite::Result<R>,
    ) -> rusqlite::Result<R> {
        struct Cleared<'a, 'b>(&'a mut KeptStatement<'b>);
        impl Drop for Cleared<'_, '_> {
            fn drop(&mut self) {
                self.0 .0.clear_bindings();
            }
        }
        let (mut stmt, _) = self.statement(sql)?;
        let cleared = Cleared(&mut stmt);
        f(cleared.0)
    }

    /// The statement of `sql`, prepared once, and the connection.
    fn statement(&mut self, sql: &'static str) -> rusqlite::Result<(KeptStatement<'_>, &Connection)> {
        // Safety: the connection lives until `drop`, which finalizes every
        // statement before it frees it; no `&'static` leaves this type but
        // inside a statement, and no statement leaves it at all.
        let conn: &'static Connection = unsafe { &*self.conn.as_ptr() };
        let at = self.statements.iter().position(|(text, _)| std::ptr::eq(*text, sql));
        let at = match at {
            Some(at) => at,
            None => {
                let stmt = conn.prepare_with_flags(sql, PrepFlags::SQLITE_PREPARE_PERSISTENT)?;
                // A `&'static str` made at run time could have a new address
                // at every call: the list stays bounded, first in first out.
                if self.statements.len() == STATEMENTS_KEPT {
                    self.statements.remove(0);
                }
                self.statements.push((sql, stmt));
                self.statements.len() - 1
            }
        };
        Ok((KeptStatement(&mut self.statements[at].1), conn))
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("statements", &self.statements.len())
            .finish_non_exhaustive()
    }
}

/// A statement a [`Prepared`] keeps, to run. Not a `&mut Statement`: one
/// could be replaced through it by a statement of another connection,
/// which the `Send` of [`Prepared`] must rule out.
pub struct KeptStatement<'a>(&'a mut Statement<'static>);

impl KeptStatement<'_> {
    /// rusqlite's `Statement::execute`.
    pub fn execute<P: Params>(&mut self, params: P) -> rusqlite::Result<usize> {
        self.0.execute(params)
    }
    /// rusqlite's `Statement::query_row`.
    pub fn query_row<T, P: Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
        &mut self,
        params: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.0.query_row(params, f)
    }
    /// rusqlite's `Statement::query_map`.
    pub fn query_map<T, P: Params, F: FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
        &mut self,
        params: P,
        f: F,
    ) -> rusqlite::Result<MappedRows<'_, F>> {
        self.0.query_map(params, f)
    }
    /// rusqlite's `Statement::column_count`.
    pub fn column_count(&self) -> usize {
        self.0.column_count()
    }
    /// How many times the statement ran (SQLite's count: each run from
    /// its first step to its reset).
    #[cfg(test)]
    fn runs(&self) -> i32 {
        self.0.get_status(rusqlite::StatementStatus::Run)
    }
}

/// The shared database.
pub struct Store<P: Platform> {
    inner: P::Mutex<Inner>,
}

impl<P: Platform> std::fmt::Debug for Store<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// A column as `PRAGMA table_info` gives it: name, type, NOT NULL, default.
type Column = (String, String, bool, Option<String>);

/// Adds to `conn`'s tables the columns `schema` gives them and a file made
/// by an earlier version lacks (`CREATE TABLE IF NOT EXISTS` keeps an old
/// table as it was): otherwise every statement naming one fails with "no
/// such column". A column that cannot be added (NOT NULL without a
/// default) is left for that error to name.
fn add_missing_columns(conn: &Connection, schema: &str) -> rusqlite::Result<()> {
    let wanted = Connection::open_in_memory()?;
    wanted.execute_batch(schema)?;
    let columns = |c: &Connection, table: &str| -> rusqlite::Result<Vec<Column>> {
        let mut info = c.prepare(&format!("PRAGMA table_info(\"{table}\")"))?;
        let rows = info.query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0, r.get(4)?)))?;
        rows.collect()
    };
    let mut tables =
        wanted.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")?;
    let names: Vec<String> = tables.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    for table in names {
        let have: Vec<String> = columns(conn, &table)?.into_iter().map(|c| c.0).collect();
        for (name, kind, not_null, default) in columns(&wanted, &table)? {
            if have.contains(&name) || (not_null && default.is_none()) {
                continue;
            }
            let mut decl = format!("ALTER TABLE \"{table}\" ADD COLUMN \"{name}\" {kind}");
            if not_null {
                decl.push_str(" NOT NULL");
            }
            if let Some(d) = default {
                decl.push_str(&format!(" DEFAULT {d}"));
            }
            conn.execute_batch(&decl)?;
        }
    }
    Ok(())
}

impl<P: Platform> Store<P> {
    /// A fresh in-memory database with `schema` applied.
    pub fn open_in_memory(schema: &str) -> Result<Self, DbError> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(schema)?;
        Ok(Self::from_prepared(Prepared::new(conn)))
    }

    /// A database file in WAL mode with a busy timeout, `schema` applied if
    /// its tables are missing: what one worker of a real deployment opens.
    pub fn open_file(path: &std::path::Path, schema: &str, busy_timeout_ms: u64) -> Result<Self, DbError> {
        let conn = Connection::open(path)?;
        let timeout = std::time::Duration::from_millis(busy_timeout_ms);
        conn.busy_timeout(timeout)?;
        // Workers starting together on a new file race to switch it to WAL
        // and create the tables; SQLite answers the loser SQLITE_BUSY at
        // once, without its busy handler, so wait here as it would.
        let started = std::time::Instant::now();
        loop {
            let set_up = conn
                .pragma_update(None, "journal_mode", "WAL")
                .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
                .and_then(|()| conn.execute_batch(schema));
            let set_up = set_up.and_then(|()| add_missing_columns(&conn, schema));
            match set_up.map_err(DbError::from) {
                Ok(()) => break,
                Err(DbError::Busy) if started.elapsed() < timeout => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Self::from_prepared(Prepared::new(conn)))
    }

    /// Wraps an open connection and the statements prepared on it.
    pub fn from_prepared(prepared: Prepared) -> Self {
        Store {
            inner: P::Mutex::new(Inner { prepared, writer: None }),
        }
    }

    /// The connection and its statements back, for reuse by a later run.
    pub fn into_prepared(self) -> Prepared {
        self.inner.into_inner().prepared
    }

    /// Reads the database outside any request: no hook, no step. For
    /// invariant checks and reports. `f` gets the connection with its
    /// statements; it must not put another in its place, or the store's
    /// write lock would describe a connection it no longer has.
    pub fn inspect<R>(&self, f: impl FnOnce(&mut Prepared) -> rusqlite::Result<R>) -> Result<R, DbError> {
        self.inner.with(|inner| f(&mut inner.prepared)).map_err(DbError::from)
    }

    /// The process of `requester` died: if it holds the write lock, its
    /// open transaction rolls back now, as SQLite does when a process dies,
    /// so that nobody waits for a request that will never run again.
    pub fn abandon(&self, requester: u64) {
        self.inner.with(|inner| {
            if inner.writer == Some(requester) {
                if !inner.prepared.connection().is_autocommit() {
                    let _ = inner
                        .prepared
                        .statement("ROLLBACK")
                        .and_then(|(mut s, _)| s.execute([]));
                }
                inner.writer = None;
            }
        });
    }

    /// The handle through which one request's statements go.
    pub fn db<'a>(&'a self, hook: &'a dyn StatementHook) -> Db<'a, P> {
        Db { store: self, hook }
    }
}

/// One request's view of the [`Store`]: every statement passes its hook.
pub struct Db<'a, P: Platform> {
    store: &'a Store<P>,
    hook: &'a dyn StatementHook,
}

impl<P: Platform> Db<'_, P> {
    /// Runs one statement and returns the number of rows it changed. SQL is
    /// a literal (`&'static str`): values only ever travel as parameters.
    pub fn execute(&self, sql: &'static str, params: &[&dyn ToSql]) -> Result<usize, DbError> {
        self.step(sql, |stmt, _| Ok(stmt.execute(params)?)).map(|(n, _)| n)
    }

    /// Runs one INSERT of one row and returns the rowid of the row it
    /// made. One statement, as `INSERT … RETURNING id` would be, without
    /// the table SQLite builds and drops for RETURNING at every run of it
    /// (BENCHMARKS.md, session 18). An INSERT that made no row (`OR
    /// IGNORE`, `DO NOTHING`) is an error: the connection's last rowid
    /// would be an earlier statement's.
    pub fn insert(&self, sql: &'static str, params: &[&dyn ToSql]) -> Result<i64, DbError> {
        let (changed, inserted) = self.step(sql, |stmt, conn| {
            let changed = stmt.execute(params)?;
            Ok(Inserted {
                changed,
                rowid: conn.last_insert_rowid(),
            })
        })?;
        match changed {
            1 => Ok(inserted.rowid),
            n => Err(DbError::Other(format!("an INSERT of one row changed {n} rows"))),
        }
    }

    /// Runs one query and returns its rows.
    pub fn query(&self, sql: &'static str, params: &[&dyn ToSql]) -> Result<Vec<Row>, DbError> {
        self.step(sql, |stmt, _| {
            let width = stmt.column_count();
            let rows = stmt
                .query_map(params, |r| {
                    (0..width)
                        .map(|i| r.get::<_, Value>(i))
                        .collect::<Result<Vec<_>, _>>()
                        .map(Row)
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .map(|(_, rows)| rows)
    }

    /// Runs one query and returns its first row, if any.
    pub fn query_first(&self, sql: &'static str, params: &[&dyn ToSql]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs `body` in one `BEGIN IMMEDIATE` transaction: committed when it
    /// returns `Ok`, rolled back when it (or the COMMIT) fails or the
    /// worker crashes inside it.
    pub fn immediate<R>(&self, body: impl FnOnce(&Self) -> Result<R, DbError>) -> Result<R, DbError> {
        let me = self.hook.requester();
        let outcome = self
            .step("BEGIN IMMEDIATE", |stmt, _| {
                // (sqlite3_changes() is the last DML's count, not this one's: 0.)
                Ok(stmt.execute([]).map(|_| 0)?)
            })
            .and_then(|_| body(self))
            .and_then(|value| {
                self.step("COMMIT", |stmt, _| Ok(stmt.execute([]).map(|_| 0)?))
                    .map(|_| value)
            });
        // After a failed BEGIN or COMMIT, a crash, or an error the body
        // returned, the transaction is still open: roll it
        // back as SQLite does when the statement fails or the process dies.
        // A crash right after a successful COMMIT finds nothing to undo.
        self.store.abandon(me);
        outcome
    }

    fn step<T>(
        &self,
        sql: &'static str,
        mut run: impl FnMut(&mut KeptStatement<'_>, &Connection) -> Result<T, DbError>,
    ) -> Result<(usize, T), DbError>
    where
        T: Counted,
    {
        self.hook.before(sql)?;
        let me = self.hook.requester();
        let mut attempt = 0;
        loop {
            let tried = self.store.inner.with(|inner| match inner.writer {
                Some(writer) if writer != me => None,
                _ => {
                    if let Err(dead) = self.hook.still_alive() {
                        return Some(Err(dead));
                    }
                    let result = inner
                        .prepared
                        .statement(sql)
                        .map_err(DbError::from)
                        .and_then(|(mut stmt, conn)| run(&mut stmt, conn));
                    if sql == "BEGIN IMMEDIATE" && result.is_ok() {
                        inner.writer = Some(me);
                    } else if sql == "COMMIT" && result.is_ok() {
                        inner.writer = None;
                    }
                    // Still holding the connection: the hook sees the
                    // statements in the order they ran.
                    let counted = result.as_ref().map(Counted::count).map_err(Clone::clone);
                    Some(self.hook.after(sql, &counted).and(result))
                }
            });
            match tried {
                Some(result) => return result.map(|t| (t.count(), t)),
                None => {
                    attempt += 1;
                    self.hook.wait_for_lock(attempt)?;
                }
            }
        }
    }
}

/// What a statement's outcome counts, for the hook's trace.
trait Counted {
    fn count(&self) -> usize;
}

impl Counted for usize {
    fn count(&self) -> usize {
        *self
    }
}

/// What an INSERT did: the rows it changed (the trace's count) and the
/// rowid it made.
struct Inserted {
    changed: usize,
    rowid: i64,
}

impl Counted for Inserted {
    fn count(&self) -> usize {
        self.changed
    }
}

impl Counted for Vec<Row> {
    fn count(&self) -> usize {
        self.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Std;
    use rusqlite::params;

    struct Faulty {
        id: u64,
        fail_on: &'static str,
    }

    impl StatementHook for Faulty {
        fn requester(&self) -> u64 {
            self.id
        }
        fn before(&self, sql: &'static str) -> Result<(), DbError> {
            if sql.starts_with(self.fail_on) {
                Err(DbError::Io)
            } else {
                Ok(())
            }
        }
        fn wait_for_lock(&self, attempt: u32) -> Result<(), DbError> {
            if attempt < 3 {
                Ok(())
            } else {
                Err(DbError::Busy)
            }
        }
    }

    fn store() -> Store<Std> {
        Store::open_in_memory("CREATE TABLE t(x INTEGER UNIQUE);").unwrap()
    }

    fn count(store: &Store<Std>) -> i64 {
        store
            .inspect(|p| p.connection().query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .unwrap()
    }

    #[test]
    fn a_failed_commit_rolls_the_transaction_back() {
        let store = store();
        let hook = Faulty {
            id: 1,
            fail_on: "COMMIT",
        };
        let db = store.db(&hook);
        let outcome = db.immediate(|db| db.execute("INSERT INTO t VALUES (?1)", params![1]));
        assert_eq!(outcome, Err(DbError::Io));
        assert_eq!(count(&store), 0);
        // The write lock is free again.
        let ok = YieldingHook::<Std>::new(2);
        store.db(&ok).execute("INSERT INTO t VALUES (?1)", params![2]).unwrap();
        assert_eq!(count(&store), 1);
    }

    #[test]
    fn a_statement_is_prepared_once_and_kept_with_its_connection() {
        // A static, not a const: one address.
        static INSERT: &str = "INSERT INTO t VALUES (?1)";
        let store = store();
        let hook = YieldingHook::<Std>::new(1);
        let db = store.db(&hook);
        for x in [1, 2, 3] {
            db.execute(INSERT, params![x]).unwrap();
        }
        let mut prepared = store.into_prepared();
        assert_eq!(prepared.statements.len(), 1, "one statement for three runs of one text");
        // A store made again from the connection runs the same SQLite
        // statement: its fourth run, and its rows still there.
        let store = Store::<Std>::from_prepared(prepared);
        let db = store.db(&hook);
        db.execute(INSERT, params![4]).unwrap();
        assert_eq!(count(&store), 4);
        prepared = store.into_prepared();
        assert_eq!(prepared.statement(INSERT).unwrap().0.runs(), 4);
        // A reader's statement is kept beside it, its parameters cleared.
        static COUNT: &str = "SELECT count(*) FROM t WHERE x >= ?1";
        let read =
            |p: &mut Prepared, from: i64| p.with_statement(COUNT, |s| s.query_row([from], |r| r.get::<_, i64>(0)));
        assert_eq!((read(&mut prepared, 2), read(&mut prepared, 4)), (Ok(3), Ok(1)));
        // Bound by no one now: NULL, not the last call's 4 (x >= NULL
        // holds for no row).
        let unbound = prepared.with_statement(COUNT, |s| {
            s.query_row(&[] as &[(&str, &dyn ToSql)], |r| r.get::<_, i64>(0))
        });
        assert_eq!(unbound, Ok(0));
        assert_eq!(prepared.statements.len(), 2);
        assert_eq!(prepared.statement(COUNT).unwrap().0.runs(), 3);
        // Texts made at run time, each at a new address: the list stays
        // bounded, the first kept is the first dropped, and every text
        // still runs.
        let store = Store::<Std>::from_prepared(prepared);
        let db = store.db(&hook);
        for x in 5..(5 + STATEMENTS_KEPT as i64) {
            let sql: &'static str = String::leak(format!("INSERT INTO t VALUES ({x})"));
            assert_eq!(db.execute(sql, params![]), Ok(1));
        }
        db.execute(INSERT, params![100]).unwrap();
        assert_eq!(count(&store), 4 + STATEMENTS_KEPT as i64 + 1);
        let mut prepared = store.into_prepared();
        assert_eq!(prepared.statements.len(), STATEMENTS_KEPT);
        assert_eq!(
            prepared.statement(INSERT).unwrap().0.runs(),
            1,
            "prepared again once dropped"
        );
    }

    #[test]
    fn an_insert_answers_the_rowid_of_its_own_row() {
        let store = store();
        let hook = YieldingHook::<Std>::new(1);
        let db = store.db(&hook);
        let rowids: Vec<i64> = [7, 3, 9]
            .iter()
            .map(|x| db.insert("INSERT INTO t VALUES (?1)", params![x]).unwrap())
            .collect();
        let stored = |rowid: i64| {
            store
                .inspect(|p| {
                    p.connection()
                        .query_row("SELECT x FROM t WHERE rowid = ?1", [rowid], |r| r.get::<_, i64>(0))
                })
                .unwrap()
        };
        assert_eq!(rowids.iter().map(|r| stored(*r)).collect::<Vec<_>>(), vec![7, 3, 9]);
        // An insert that made no row answers an error, not an earlier rowid.
        assert_eq!(
            db.insert("INSERT OR IGNORE INTO t VALUES (?1)", params![7]),
            Err(DbError::Other("an INSERT of one row changed 0 rows".into()))
        );
        assert!(matches!(
            db.insert("INSERT INTO t VALUES (?1)", params![7]),
            Err(DbError::Constraint(_))
        ));
    }

    #[test]
    fn other_requests_wait_for_the_writer_then_time_out_busy() {
        let store = store();
        let writer = YieldingHook::<Std>::new(1);
        let other = Faulty {
            id: 2,
            fail_on: "never",
        };
        let seen = store.db(&writer).immediate(|db| {
            db.execute("INSERT INTO t VALUES (?1)", params![1])?;
            Ok(store.db(&other).query("SELECT x FROM t", params![]))
        });
        assert_eq!(seen, Ok(Err(DbError::Busy)));
        assert_eq!(store.db(&other).query("SELECT x FROM t", params![]).unwrap().len(), 1);
    }

    #[test]
    fn workers_opening_a_new_file_together_both_get_it() {
        let dir = std::env::temp_dir().join(format!("otpsim-open-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for round in 0..20 {
            let path = dir.join(format!("race-{round}.sqlite"));
            let openers: Vec<_> = (0..4)
                .map(|_| {
                    let path = path.clone();
                    std::thread::spawn(move || {
                        Store::<Std>::open_file(&path, "CREATE TABLE IF NOT EXISTS t(x INTEGER);", 5000).map(|_| ())
                    })
                })
                .collect();
            for opener in openers {
                assert_eq!(opener.join().unwrap(), Ok(()), "round {round}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_from_an_earlier_schema_gains_its_new_columns() {
        let dir = std::env::temp_dir().join(format!("otpsim-migrate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("old.sqlite");
        let _ = std::fs::remove_file(&path);
        let old = "CREATE TABLE IF NOT EXISTS r (email TEXT PRIMARY KEY, n INTEGER NOT NULL);";
        drop(Store::<Std>::open_file(&path, old, 5000).unwrap());
        let new = "CREATE TABLE IF NOT EXISTS r (email TEXT PRIMARY KEY, n INTEGER NOT NULL,
                     prev TEXT, since INTEGER NOT NULL DEFAULT 0);";
        let store = Store::<Std>::open_file(&path, new, 5000).unwrap();
        let hook = YieldingHook::<Std>::new(1);
        let db = store.db(&hook);
        db.execute("INSERT INTO r (email, n, prev) VALUES ('a', 1, 'x')", params![])
            .unwrap();
        let row = db.query_first("SELECT prev, since FROM r", params![]).unwrap().unwrap();
        assert_eq!((row.text(0), row.int(1)), ("x", 0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sqlite_errors_map_to_typed_errors() {
        let store = store();
        let hook = YieldingHook::<Std>::new(1);
        let db = store.db(&hook);
        db.execute("INSERT INTO t VALUES (?1)", params![7]).unwrap();
        assert!(matches!(
            db.execute("INSERT INTO t VALUES (?1)", params![7]),
            Err(DbError::Constraint(_))
        ));
        let row = db.query_first("SELECT x, 'a' FROM t", params![]).unwrap().unwrap();
        assert_eq!((row.int(0), row.text(1)), (7, "a"));
    }
}
