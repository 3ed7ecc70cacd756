//! otpsim-sim: the simulated world the flows of `otpsim-core` run in, the
//! scenario files that describe it, the invariants checked on its traces,
//! and the explorers that run it under many schedules.

#![warn(missing_docs)]

pub mod bugfind;
pub mod check;
pub mod choice;
pub mod explore;
pub mod generate;
pub mod invariant;
pub mod render;
pub mod scenario;
pub mod search;
pub mod stress;
pub mod trace;
pub mod uniform;
pub mod world;

pub use invariant::{Invariant, Violation};
pub use scenario::{Expectation, Scenario, ScenarioError};
pub use trace::Trace;
