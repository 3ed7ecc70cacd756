//! What a check found, in either mode: a run that broke an invariant, and
//! how to replay it as exactly that run. A simulated one replays as one
//! schedule of the scheduler's choices; a live one as one order of the
//! deliveries that were due together.

use std::path::PathBuf;

use crate::invariant::Violation;
use crate::scenario::{Expectation, Scenario, StatementChoice};
use crate::trace::Trace;

/// A run that broke an invariant, with all it takes to replay it.
#[derive(Debug, Clone)]
pub struct Counterexample {
    /// How to run it again.
    pub replay: Replay,
    /// What broke, each in a sentence.
    pub violations: Vec<Violation>,
    /// Every event.
    pub trace: Trace,
}

/// How a counterexample replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// One simulated schedule: its `choices` (the task picked where more
    /// than one could run) replay it as exactly one execution, whatever
    /// scheduler found it.
    Schedule {
        /// The flow's name (a variant for the project's own flows).
        flow: String,
        /// The seed of the world's randomness (temp_ids, codes).
        seed: u64,
        /// The 0-based index of the schedule in its scheduler's sequence.
        schedule: u64,
        /// The statement position a fault at `every` statement had (else 1).
        position: u32,
        /// The task choices.
        choices: Vec<u8>,
    },
    /// One live run against a target: the order of each instant's
    /// deliveries. What happens inside the server is not replayed.
    Deliveries {
        /// The target file.
        target: PathBuf,
        /// The delivery choices.
        choices: Vec<u8>,
    },
}

impl Counterexample {
    /// The choices that replay it, of whichever kind.
    pub fn choices(&self) -> &[u8] {
        match &self.replay {
            Replay::Schedule { choices, .. } | Replay::Deliveries { choices, .. } => choices,
        }
    }

    /// The command that replays it, for the file of `scenario`.
    pub fn command(&self, scenario: &Scenario) -> String {
        let file = scenario.path.display();
        let choices: Vec<String> = self.choices().iter().map(u8::to_string).collect();
        let choices = choices.join(",");
        match &self.replay {
            Replay::Schedule {
                flow, seed, position, ..
            } => {
                let mut command = format!("otpsim replay {file} --variant {flow} --seed {seed} --choices {choices}");
                if scenario.faults.iter().any(|s| s.statement == StatementChoice::Every) {
                    command.push_str(&format!(" --position {position}"));
                }
                command
            }
            Replay::Deliveries { target, .. } => {
                format!(
                    "otpsim replay {file} --target {} --deliveries {choices}",
                    target.display()
                )
            }
        }
    }
}

/// Of the counterexamples a check kept (the first of each invariant
/// broken), the one to show for `expectation`: the first that breaks its
/// invariant, else the first at all.
pub fn shown_for(counterexamples: &[Counterexample], expectation: Expectation) -> Option<&Counterexample> {
    let wanted = |c: &&Counterexample| match expectation {
        Expectation::FailOn(i) => c.violations.iter().any(|v| v.invariant == i),
        _ => true,
    };
    counterexamples.iter().find(wanted).or(counterexamples.first())
}
