//! otpsim-sim: the simulated world the flows of `otpsim-core` run in, the
//! scenario files that describe it, the invariants checked on its traces,
//! the sweep that runs one scenario under many schedules ([`sweep`]), and
//! the search that generates scenarios ([`explore`]).

#![warn(missing_docs)]

pub mod ablate;
pub mod bugfind;
pub mod check;
pub mod explore;
pub mod invariant;
pub mod jobs;
pub mod render;
pub mod scenario;
pub mod schedule;
pub mod stress;
pub mod sweep;
pub mod trace;
pub mod world;

pub use invariant::{Invariant, Violation};
pub use scenario::{Expectation, Scenario, ScenarioError};
pub use sweep::{Counterexample, Sweep};
pub use trace::Trace;
