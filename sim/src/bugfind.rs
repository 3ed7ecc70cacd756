//! How fast each scheduler finds a known bug: schedules to the first
//! violation, over many seeds, for shuttle Random, PCT at depth 2 and 3,
//! DFS, and random choice vectors (what `explore` draws before shrinking).

use std::sync::Arc;

use otpsim_core::ports::SplitMix64;
use otpsim_core::Variant;

use crate::scenario::Scenario;
use crate::schedule::Strategy;
use crate::sweep::{replay, sweep, Replay};

/// A way of choosing schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finder {
    /// One of shuttle's schedulers.
    Shuttle(Strategy),
    /// Uniformly random choice vectors through the choice scheduler.
    ChoiceVector,
}

impl std::fmt::Display for Finder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finder::Shuttle(s) => write!(f, "{s}"),
            Finder::ChoiceVector => f.write_str("choices"),
        }
    }
}

/// The finders compared, in table order.
pub const FINDERS: [Finder; 5] = [
    Finder::Shuttle(Strategy::Random),
    Finder::Shuttle(Strategy::Pct(2)),
    Finder::Shuttle(Strategy::Pct(3)),
    Finder::Shuttle(Strategy::Dfs),
    Finder::ChoiceVector,
];

/// Schedules to the first violation for each seed (`None`: not within
/// `max`). DFS ignores the seed, so it is run once.
pub fn schedules_to_first(
    scenario: &Arc<Scenario>,
    variant: Variant,
    finder: Finder,
    seeds: u64,
    max: u32,
) -> Vec<Option<u64>> {
    let seeds = if finder == Finder::Shuttle(Strategy::Dfs) {
        1
    } else {
        seeds
    };
    (1..=seeds)
        .map(|seed| match finder {
            Finder::Shuttle(strategy) => sweep(scenario, &variant, strategy, max, seed, |found| !found.is_empty())
                .counterexamples
                .first()
                .and_then(|f| match f.replay {
                    Replay::Schedule { schedule, .. } => Some(schedule + 1),
                    Replay::Deliveries { .. } => None,
                }),
            Finder::ChoiceVector => {
                let mut rng = SplitMix64::new(seed);
                (1..=u64::from(max)).find(|_| {
                    let choices: Vec<u8> = (0..64).map(|_| (rng.next_u64() % 4) as u8).collect();
                    !replay(scenario, &variant, scenario.seed, &choices, 1).1.is_empty()
                })
            }
        })
        .collect()
}

/// Median, 90th percentile and maximum; a miss counts as more than `max`.
pub fn summary(found: &[Option<u64>], max: u32) -> (String, String, String) {
    let mut v: Vec<u64> = found.iter().map(|f| f.unwrap_or(u64::from(max) + 1)).collect();
    v.sort_unstable();
    let show = |n: u64| {
        if n > u64::from(max) {
            format!(">{max}")
        } else {
            n.to_string()
        }
    };
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (show(at(0.5)), show(at(0.9)), show(*v.last().unwrap_or(&0)))
}
