//! Signup plus verify on a SQLite file in WAL mode, one request after the
//! other, per variant, beside raw rusqlite executing the same statements
//! on the same kind of file (naive's for naive and seed_fix, which adds one
//! SELECT; idempotent's for idempotent).

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use otpsim_core::local::Local;
use otpsim_core::platform::Std;
use otpsim_core::{Flow, Request, Session, Store, Variant};
use rusqlite::{params, Connection};

fn scratch(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("otpsim-bench-{name}-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

/// A connection set up as `Store::open_file` sets up its own.
fn raw_connection(name: &str, schema: &str) -> Connection {
    let conn = Connection::open(scratch(name)).unwrap();
    conn.busy_timeout(std::time::Duration::from_millis(5000)).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch(schema).unwrap();
    conn
}

fn flows(c: &mut Criterion) {
    let mut group = c.benchmark_group("flows");
    {
        let conn = raw_connection("raw", Variant::Naive.schema());
        let mut n = 0u64;
        group.bench_function("raw rusqlite, naive's statements (baseline)", |b| {
            b.iter(|| {
                n += 1;
                let email = format!("u{n}@bench.example");
                let temp = format!("temp_1_{n:08x}");
                conn.prepare_cached("DELETE FROM temp_registrations WHERE email = ?1").unwrap().execute(params![email]).unwrap();
                conn.prepare_cached("INSERT INTO temp_registrations (temp_id, email, password_hash, otp, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
                    .unwrap()
                    .execute(params![temp, email, "h", "123456", 0])
                    .unwrap();
                let row: String = conn
                    .prepare_cached("SELECT email, password_hash, otp, created_at FROM temp_registrations WHERE temp_id = ?1")
                    .unwrap()
                    .query_row(params![temp], |r| r.get(2))
                    .unwrap();
                assert_eq!(row, "123456");
                conn.prepare_cached("INSERT INTO users (email, password_hash) VALUES (?1, ?2)").unwrap().execute(params![email, "h"]).unwrap();
                conn.prepare_cached("DELETE FROM temp_registrations WHERE temp_id = ?1").unwrap().execute(params![temp]).unwrap();
            })
        });
    }
    {
        let conn = raw_connection("raw-idempotent", Variant::Idempotent.schema());
        let mut n = 0u64;
        let run = |sql: &str, p: &[&dyn rusqlite::ToSql]| {
            conn.prepare_cached(sql).unwrap().execute(p).unwrap();
        };
        let exists = |sql: &str, p: &[&dyn rusqlite::ToSql]| conn.prepare_cached(sql).unwrap().exists(p).unwrap();
        group.bench_function("raw rusqlite, idempotent's statements (baseline)", |b| {
            b.iter(|| {
                n += 1;
                let email = format!("u{n}@bench.example");
                let temp = format!("temp_1_{n:08x}");
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                assert!(!exists("SELECT 1 FROM users WHERE email = ?1", params![email]));
                assert!(!exists("SELECT temp_id, created_at, attempts, sends FROM temp_registrations WHERE email = ?1", params![email]));
                run("INSERT INTO temp_registrations (email, temp_id, password_hash, otp_mac, created_at, attempts, sends) VALUES (?1, ?2, ?3, ?4, ?5, 0, 1) ON CONFLICT (email) DO NOTHING", params![email, temp, "h", "m", 0]);
                run("INSERT INTO outbox (temp_id, email) VALUES (?1, ?2) ON CONFLICT (temp_id) DO NOTHING", params![temp, email]);
                conn.execute_batch("COMMIT").unwrap();
                run("DELETE FROM outbox WHERE temp_id = ?1", params![temp]);
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                assert!(exists("SELECT otp_mac, created_at, attempts, password_hash FROM temp_registrations WHERE email = ?1", params![email]));
                run("UPDATE temp_registrations SET attempts = attempts + 1 WHERE email = ?1", params![email]);
                run("INSERT INTO users (email, password_hash, otp_mac) VALUES (?1, ?2, ?3) ON CONFLICT (email) DO NOTHING", params![email, "h", "m"]);
                run("DELETE FROM temp_registrations WHERE email = ?1", params![email]);
                conn.execute_batch("COMMIT").unwrap();
            })
        });
    }
    for variant in Variant::MAIN {
        let path = scratch(&variant.to_string());
        let store = Store::<Std>::open_file(&path, variant.schema(), otpsim_core::store::BUSY_TIMEOUT_MS).unwrap();
        let local = Local::with_store(variant, 1, 1, store).unwrap();
        let mut n = 0u64;
        group.bench_function(format!("signup+verify {variant}"), |b| {
            b.iter(|| {
                n += 1;
                let email = format!("u{n}@bench.example");
                let mut session = Session::default();
                let signup = Request::Signup {
                    email: email.clone(),
                    password: "pw".into(),
                };
                local.handle(0, &mut session, &signup).unwrap();
                let otp = local.latest_code(&email).unwrap().digits().to_string();
                let r = local
                    .handle(
                        0,
                        &mut session,
                        &Request::Verify {
                            email,
                            otp,
                            password: "s3cret!".into(),
                        },
                    )
                    .unwrap();
                assert!(r.code.is_success(), "{variant}: {}", r.message);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, flows);
criterion_main!(benches);
