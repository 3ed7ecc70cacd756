//! The loom model of two concurrent signups and a verify, explored whole,
//! per variant (idempotent at the three-preemption bound its test uses).

#[path = "../tests/models/mod.rs"]
mod models;

use criterion::{criterion_group, criterion_main, Criterion};
use models::{run, Model};
use otpsim_core::platform::Loom;

fn loom_model(c: &mut Criterion) {
    let mut group = c.benchmark_group("loom");
    group.sample_size(10);
    for (variant, bound) in [("naive", None), ("seed_fix", None), ("idempotent", Some(3))] {
        let v = variant.parse().unwrap();
        group.bench_function(format!("double-click + verify, {variant}, bound {bound:?}"), |b| {
            b.iter(|| {
                let mut builder = loom::model::Builder::new();
                builder.preemption_bound = bound;
                builder.check(move || {
                    let _ = run::<Loom>(Model::DoubleClickSignup, v, 1);
                });
            })
        });
    }
    group.finish();
}

criterion_group!(benches, loom_model);
criterion_main!(benches);
