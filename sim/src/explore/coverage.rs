//! What counts as new behaviour for the learning search: the features of
//! one run's trace, each a hash of a small tuple of the domain's words.
//!
//! - a statement and what it did, per kind of request (`DELETE … -> 0 rows`
//!   in a signup is not `-> 1 row`);
//! - an answer, per kind of request, and which answer came right after
//!   which (the order in which requests finish is most of a race);
//! - reads-from: for each read, the write it saw, the latest earlier
//!   write with rows on the same table for the same address, named by its
//!   statement and request kind, and whether it was the reader's own;
//! - the rare events: a fault, a crash, a dying request, a restart, a cut
//!   mail, a dropped response, a panic, a cookie that lost its
//!   registration;
//! - the corners, measured against the code's lifetime: a request that
//!   waited for its answer a long while or longer than a lifetime, a mail
//!   that reached its mailbox after its code had died, a mail a recovery
//!   sent, how many faults struck one run, a lockout.
//!
//! Features name statements and kinds, never times, request numbers or
//! temp_ids, so the set saturates: a run that adds none is not kept.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};

use foldhash::fast::FixedState;
use otpsim_core::Kind;

use crate::trace::{SqlOutcome, Trace, What};

/// A hash of the parts, each written with its length, so that no two
/// lists of parts make the same input. foldhash with a fixed seed gives
/// the same value on every run of a build, which is all the search asks:
/// features live in memory only, and are only asked whether they were
/// seen.
fn feature(parts: &[&str]) -> u64 {
    let mut h = FixedState::with_seed(0).build_hasher();
    for part in parts {
        h.write_usize(part.len());
        h.write(part.as_bytes());
    }
    h.finish()
}

/// A feature that names statements, each by the hash of its text
/// ([`Statements`]), beside its words. Their count goes first, as each
/// word's length does, so that no two lists make the same input; a seed
/// of its own keeps it apart from [`feature`]'s, but for collisions.
fn feature_naming(statements: &[u64], parts: &[&str]) -> u64 {
    let mut h = FixedState::with_seed(1).build_hasher();
    h.write_usize(statements.len());
    for statement in statements {
        h.write_u64(*statement);
    }
    for part in parts {
        h.write_usize(part.len());
        h.write(part.as_bytes());
    }
    h.finish()
}

/// A statement as the features see it: the hash of its text, and its
/// table ([`table`]).
#[derive(Clone, Copy)]
struct Statement {
    text: u64,
    table: Option<(&'static str, bool)>,
}

/// The statements of one run, each worked out once, found again by where
/// its text lies: a run repeats a flow's dozen statements some sixty times,
/// and hashing and splitting each text every time cost a sixth of what the
/// features cost (0.71% of a schedule's instructions, of 4.3%;
/// BENCHMARKS.md, session 27). Two texts at one address are one text: the
/// flows' SQL is `'static`. One text at two addresses is worked out twice,
/// to the same [`Statement`].
#[derive(Default)]
struct Statements(Vec<((usize, usize), Statement)>);

impl Statements {
    fn of(&mut self, sql: &'static str) -> Statement {
        let at = (sql.as_ptr() as usize, sql.len());
        if let Some((_, statement)) = self.0.iter().find(|(key, _)| *key == at) {
            return *statement;
        }
        let statement = Statement {
            text: feature(&[sql]),
            table: table(sql),
        };
        self.0.push((at, statement));
        statement
    }
}

fn rows(outcome: &SqlOutcome) -> &'static str {
    match outcome {
        SqlOutcome::Done => "ok",
        SqlOutcome::Rows(0) => "0",
        SqlOutcome::Rows(1) => "1",
        SqlOutcome::Rows(_) => "n",
        SqlOutcome::Error(_) => "error",
    }
}

/// The table a statement reads or writes first, and whether it writes.
/// The flows' SQL is ASCII, and this runs once a run for each statement:
/// Unicode's whitespace cost a schedule 1.1% of its instructions when it
/// ran at every statement (BENCHMARKS.md, session 25).
fn table(sql: &str) -> Option<(&str, bool)> {
    let mut words = sql.split_ascii_whitespace();
    let verb = words.next()?;
    match verb {
        "UPDATE" => words.next().map(|t| (t, true)),
        "INSERT" | "DELETE" | "REPLACE" | "SELECT" => {
            let mut words = words.skip_while(|w| !matches!(*w, "FROM" | "INTO"));
            words.next()?;
            words.next().map(|t| (t, verb != "SELECT"))
        }
        _ => None,
    }
}

/// A request's kind and whether its sender owns the address: a
/// stranger's successful verify or login is behaviour of its own.
fn label(kind: Kind, owner: bool) -> &'static str {
    match (kind, owner) {
        (Kind::Signup, true) => "signup",
        (Kind::Signup, false) => "stranger's signup",
        (Kind::Verify, true) => "verify",
        (Kind::Verify, false) => "stranger's verify",
        (Kind::Login, true) => "login",
        (Kind::Login, false) => "stranger's login",
        (Kind::Resend, true) => "resend",
        (Kind::Resend, false) => "stranger's resend",
    }
}

/// How long something took, in words that do not depend on the run's
/// numbers: against the code's lifetime `ttl_ms`.
fn span(ms: u64, ttl_ms: u64) -> &'static str {
    if ms < 1000 {
        "short"
    } else if ms < ttl_ms {
        "long"
    } else {
        "past a lifetime"
    }
}

/// A redirect's target as a page: its path, without the query and with
/// every run of digits one `#`, so that ids and codes in it are not new
/// behaviour.
fn page(location: &str) -> String {
    let path = location.split(['?', '#']).next().unwrap_or("");
    let path = path
        .split_once("://")
        .map_or(path, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
    let mut out = String::new();
    for c in path.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('#') {
                out.push('#');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Every feature of `trace`, appended to `out` (unsorted, may repeat);
/// `ttl_ms` is the run's code lifetime.
pub fn features(trace: &Trace, ttl_ms: u64, out: &mut Vec<u64>) {
    let mut sent_at: BTreeMap<usize, u64> = BTreeMap::new();
    let mut mailed_at: BTreeMap<usize, u64> = BTreeMap::new();
    let mut faults = 0;
    // Per request: who sent what (its label) and its address, from its
    // Sent event.
    let mut requests: BTreeMap<usize, (&'static str, &str)> = BTreeMap::new();
    let mut statements = Statements::default();
    let initial = feature(&["initial"]);
    // The latest write with rows, per (table, address): (statement, kind, request).
    let mut last_write: BTreeMap<(&str, &str), (u64, &'static str, usize)> = BTreeMap::new();
    let mut last_answer = ("start", "");
    for event in &trace.events {
        let request = event.request.and_then(|r| requests.get(&r).map(|(k, e)| (r, *k, *e)));
        let kind = request.as_ref().map_or("worker", |(_, k, _)| *k);
        match &event.what {
            What::Sent {
                kind: k,
                email,
                owner,
                cookie,
                ..
            } => {
                let label = label(*k, *owner);
                if let Some(r) = event.request {
                    requests.insert(r, (label, email.as_str()));
                    sent_at.insert(r, event.at_ms);
                }
                let held = if cookie.temp_user_id().is_some() {
                    "registration"
                } else {
                    "none"
                };
                out.push(feature(&["sent", label, held]));
            }
            What::Sql { sql, outcome } => {
                let statement = statements.of(sql);
                out.push(feature_naming(&[statement.text], &["sql", kind, rows(outcome)]));
                let (Some((r, k, email)), Some((t, writes))) = (&request, statement.table) else {
                    continue;
                };
                if writes {
                    if matches!(outcome, SqlOutcome::Rows(n) if *n > 0) {
                        last_write.insert((t, email), (statement.text, *k, *r));
                    }
                } else {
                    let (writer, writer_kind, own) = match last_write.get(&(t, *email)) {
                        Some((w, wk, wr)) => (*w, *wk, if wr == r { "own" } else { "other" }),
                        // No write before it: the initial state, as a
                        // statement no flow has.
                        None => (initial, "", ""),
                    };
                    out.push(feature_naming(
                        &[statement.text, writer],
                        &["reads-from", kind, rows(outcome), writer_kind, own],
                    ));
                }
            }
            What::Answered {
                code, set_cookie, http, ..
            } => {
                // A live server's real answer: the redirects followed and
                // the final status, which the code alone does not show.
                if let Some(http) = http {
                    let chain: Vec<String> = http
                        .redirects
                        .iter()
                        .map(|(status, to)| format!("{status} {}", page(to)))
                        .collect();
                    out.push(feature(&["http", kind, &chain.join(" "), &http.status.to_string()]));
                }
                let sets = match set_cookie {
                    None => "no cookie",
                    Some(c) if c.temp_user_id().is_some() => "registration",
                    Some(_) => "cookie",
                };
                out.push(feature(&["answer", kind, code.as_str(), sets]));
                out.push(feature(&[
                    "answer after",
                    last_answer.0,
                    last_answer.1,
                    kind,
                    code.as_str(),
                ]));
                last_answer = (kind, code.as_str());
                if let Some(at) = event.request.and_then(|r| sent_at.get(&r)) {
                    out.push(feature(&[
                        "waited",
                        kind,
                        code.as_str(),
                        span(event.at_ms - at, ttl_ms),
                    ]));
                }
            }
            What::Fault { statement, .. } => {
                faults += 1;
                out.push(feature(&["fault", kind, &statement.to_string()]));
                out.push(feature(&["faults in one run", &faults.min(3).to_string()]));
            }
            What::Crashed => out.push(feature(&["crashed", kind])),
            What::DiedWithWorker => out.push(feature(&["died", kind])),
            What::Restarted => out.push(feature(&["restarted"])),
            What::MailCut { .. } => out.push(feature(&["mail cut"])),
            What::MailWithoutCode { .. } => out.push(feature(&["mail without a code"])),
            What::Abandoned => out.push(feature(&["abandoned", kind])),
            What::Panicked(_) => out.push(feature(&["panicked", kind])),
            What::MailSent { lost, mail, .. } => {
                mailed_at.insert(*mail, event.at_ms);
                out.push(feature(&["mail", kind, if *lost { "lost" } else { "sent" }]));
            }
            What::MailDelivered { mail, .. } => {
                let late = mailed_at.get(mail).map_or(0, |at| event.at_ms - at);
                out.push(feature(&["mail delivered", span(late, ttl_ms)]));
            }
            What::Delivered { cookie_now } => {
                let held = if cookie_now.temp_user_id().is_some() {
                    "registration"
                } else {
                    "none"
                };
                out.push(feature(&["delivered", kind, held]));
            }
            What::Quiescent(db) => {
                let pending = match db.pending.len() {
                    0 => "0",
                    1 => "1",
                    _ => "n",
                };
                out.push(feature(&["quiescent", pending, &db.accounts.len().min(2).to_string()]));
            }
            What::SessionLoad(_) | What::Probe { .. } | What::SessionSave(_) | What::Memory | What::Waited(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_named_for_reads_and_writes() {
        assert_eq!(
            table("SELECT temp_id FROM temp_registrations WHERE email = ?1"),
            Some(("temp_registrations", false))
        );
        assert_eq!(
            table("INSERT INTO users (email, password_hash) VALUES (?1, ?2)"),
            Some(("users", true))
        );
        assert_eq!(
            table("UPDATE temp_registrations SET attempts = attempts + 1 WHERE email = ?1"),
            Some(("temp_registrations", true))
        );
        assert_eq!(
            table("DELETE FROM temp_registrations WHERE temp_id = ?1"),
            Some(("temp_registrations", true))
        );
        assert_eq!(table("BEGIN IMMEDIATE"), None);
    }

    #[test]
    fn a_redirect_is_its_page_without_ids() {
        assert_eq!(page("/verify?temp_id=temp_17_ab"), "/verify");
        assert_eq!(page("http://127.0.0.1:4000/users/42/confirm"), "/users/#/confirm");
        assert_eq!(page("https://example.com"), "/");
    }

    #[test]
    fn a_statement_is_its_text_wherever_the_text_lies() {
        let mut statements = Statements::default();
        let sql = "SELECT temp_id FROM temp_registrations WHERE email = ?1";
        let elsewhere: &'static str = String::from(sql).leak();
        let (a, b) = (statements.of(sql), statements.of(elsewhere));
        assert_eq!(a.text, b.text);
        assert_eq!(a.table, Some(("temp_registrations", false)));
        assert_eq!(a.table, b.table);
        assert_ne!(statements.of("DELETE FROM users WHERE email = ?1").text, a.text);
        // Found again by its address, not worked out a third time.
        assert_eq!(statements.of(sql).text, a.text);
        assert_eq!(statements.0.len(), 3);
    }

    #[test]
    fn features_naming_statements_tell_their_lists_apart() {
        let (x, y) = (feature(&["x"]), feature(&["y"]));
        assert_eq!(feature_naming(&[x], &["sql"]), feature_naming(&[x], &["sql"]));
        assert_ne!(feature_naming(&[x], &["sql"]), feature_naming(&[y], &["sql"]));
        assert_ne!(feature_naming(&[x, y], &["a"]), feature_naming(&[y, x], &["a"]));
        assert_ne!(feature_naming(&[x], &["a"]), feature_naming(&[x, y], &["a"]));
        assert_ne!(feature_naming(&[], &["a"]), feature(&["a"]));
    }

    #[test]
    fn features_are_the_same_for_the_same_words() {
        assert_eq!(feature(&["a", "bc"]), feature(&["a", "bc"]));
        assert_ne!(feature(&["a", "bc"]), feature(&["ab", "c"]));
        assert_ne!(feature(&["a", "", "b"]), feature(&["a", "b", ""]));
        assert_ne!(feature(&["a", "b"]), feature(&["a", "b", ""]));
    }
}
