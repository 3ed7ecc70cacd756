//! One whole schedule of the double-click signup scenario, per variant,
//! beside a raw baseline: shuttle running the same two DELETE + INSERT
//! pairs directly on a fresh in-memory database, with no world around them.
//! The ratio of the two is the cost of the world. The baseline, like
//! `replay`, starts a shuttle runner for its one schedule; `check` and
//! `explore` run many schedules through one runner, measured last.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use otpsim_core::Variant;
use otpsim_sim::sweep::{replay, run_cases};
use otpsim_sim::Scenario;
use rusqlite::{params, Connection};
use shuttle::scheduler::RandomScheduler;
use shuttle::{Config, Runner};

fn raw_baseline() {
    let config = Config::new();
    Runner::new(RandomScheduler::new_from_seed(1, 1), config).run(|| {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE temp_registrations (temp_id TEXT PRIMARY KEY, email TEXT NOT NULL, password_hash TEXT NOT NULL, otp TEXT NOT NULL, created_at INTEGER NOT NULL)").unwrap();
        let db = Arc::new(shuttle::sync::Mutex::new(conn));
        let tasks: Vec<_> = (0..2)
            .map(|i| {
                let db = Arc::clone(&db);
                shuttle::thread::spawn(move || {
                    db.lock().unwrap().execute("DELETE FROM temp_registrations WHERE email = ?1", params!["ana@example.com"]).unwrap();
                    db.lock()
                        .unwrap()
                        .execute(
                            "INSERT INTO temp_registrations (temp_id, email, password_hash, otp, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![format!("temp_1_{i:08x}"), "ana@example.com", "h", "123456", 0],
                        )
                        .unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.join().unwrap();
        }
    });
}

fn schedule(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/double_click_signup.toml");
    let scenario = Arc::new(Scenario::load(&path).unwrap());
    let mut group = c.benchmark_group("schedule");
    group.bench_function("raw shuttle + fresh sqlite (baseline)", |b| b.iter(raw_baseline));
    for variant in Variant::MAIN {
        let scenario = Arc::clone(&scenario);
        // A fixed interleaving, so every iteration does the same work.
        let choices = Mutex::new(vec![1u8, 0, 1, 0, 1]);
        group.bench_function(format!("world double-click {variant}"), |b| {
            b.iter(|| replay(&scenario, &variant, 1, &choices.lock().unwrap(), 1))
        });
    }
    // As `check` and `explore` run schedules: many through one runner,
    // whose task stacks are reused from one schedule to the next.
    for variant in Variant::MAIN {
        let scenario = Arc::clone(&scenario);
        group.bench_function(format!("world double-click {variant}, one runner"), |b| {
            b.iter_custom(|iters| {
                let case = (Arc::clone(&scenario), vec![1u8, 0, 1, 0, 1]);
                let mut left = iters;
                let start = Instant::now();
                run_cases(&variant, move |_| {
                    left = left.checked_sub(1)?;
                    Some(case.clone())
                });
                start.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, schedule);
criterion_main!(benches);
