//! otpsim-sim: the engine. The simulated world the flows of `otpsim-core`
//! run in under shuttle's schedulers, the sweep that runs one scenario
//! under many schedules ([`sweep`]), and the search that generates
//! scenarios ([`explore`]). The vocabulary it shares with live mode
//! (scenarios, traces, invariants, the request plan, pictures) lives in
//! `otpsim-model` and is re-exported here under its old paths.

#![warn(missing_docs)]

pub mod ablate;
pub mod bugfind;
pub mod check;
pub mod explore;
pub mod jobs;
pub mod schedule;
pub mod sweep;
pub mod world;

pub use invariant::{Invariant, Violation};
pub use otpsim_model::{agreement, invariant, plan, recorder, render, scenario, trace};
pub use scenario::{Expectation, Scenario, ScenarioError};
pub use sweep::{Counterexample, Sweep};
pub use trace::Trace;
