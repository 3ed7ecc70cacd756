//! otpsim-model: what the simulator and live mode share, and nothing that
//! schedules. Scenario files, the trace of a run, the invariants judged on
//! it, the plan of a run's requests (who sends what, when, to which
//! worker, typing which code), and the pictures of a trace. Neither
//! shuttle nor proptest reaches it: `otpsim-live` depends on this crate,
//! not on the engine in `otpsim-sim`.

#![warn(missing_docs)]

pub mod agreement;
pub mod counterexample;
pub mod file;
pub mod invariant;
pub mod network;
pub mod plan;
pub mod recorder;
pub mod render;
pub mod scenario;
pub mod trace;

pub use counterexample::{Counterexample, Replay};
pub use invariant::{Invariant, Violation};
pub use recorder::Recorder;
pub use scenario::{Expectation, Scenario, ScenarioError};
pub use trace::Trace;
