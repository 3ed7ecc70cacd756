//! The flows outside the simulator, in one test binary (one link instead
//! of three): one request at a time on a real database, on real threads,
//! and under loom. shuttle's tests keep a binary of their own
//! (`platform_shuttle.rs`): shuttle installs a process-wide panic hook,
//! which `cargo test` would share with these.

#[path = "../common/mod.rs"]
mod common;
mod on_loom;
mod on_std;
mod sequential;
