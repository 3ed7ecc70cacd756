//! The shipped fix taken apart. Each of the 16 on/off combinations of
//! seed_fix's switches runs the scenario corpus (every schedule the files
//! ask for) and a generated search; [`Ablation`] says, per switch, what it
//! is load-bearing for and what switching it on breaks, and which breaks no
//! combination of switches prevents.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use otpsim_core::{SeedFixSwitches, Variant};

use crate::explore::{search, Budget, Options};
use crate::invariant::Invariant;
use crate::scenario::Scenario;
use crate::schedule::Strategy;
use crate::sweep::sweep;

/// What one combination broke: (scenario file, invariant).
pub type Broken = BTreeSet<(String, Invariant)>;

/// What the generated search counts as, in place of a scenario file.
pub const GENERATED: &str = "generated scenarios";

/// What every combination of switches broke.
#[derive(Debug, Clone)]
pub struct Ablation {
    /// Each combination, the shipped fix first.
    pub rows: Vec<(SeedFixSwitches, Broken)>,
    /// How many sources were explored: the scenarios, and the search if
    /// it had a budget.
    pub sources: usize,
}

/// What one switch does: for each (scenario, invariant), in how many of
/// the 8 settings of the other switches turning it off breaks it
/// (`load_bearing`) or turning it on breaks it (`harms`).
#[derive(Debug, Clone, Default)]
pub struct SwitchVerdict {
    /// Turning the switch off breaks these.
    pub load_bearing: BTreeMap<(String, Invariant), usize>,
    /// Turning the switch on breaks these.
    pub harms: BTreeMap<(String, Invariant), usize>,
}

impl Ablation {
    /// Sweeps every combination over `scenarios` and searches each for
    /// `budget / 16`; `progress` is told each combination's count.
    pub fn run(
        scenarios: &[Arc<Scenario>],
        budget: Budget,
        seed: u64,
        jobs: usize,
        progress: &(dyn Fn(&Variant, usize) + Sync),
    ) -> Ablation {
        let combos = SeedFixSwitches::all_combinations();
        let per_combo = budget.split(combos.len() as u32);
        // Each combination is explored on its own: `jobs` does not change
        // what is found (with a budget in schedules), only how fast.
        let rows = crate::jobs::map(&combos, jobs, |&switches| {
            let variant = Variant::SeedFix(switches);
            let mut broken = Broken::new();
            for scenario in scenarios {
                let all = scenario.invariants.len();
                let found = sweep(
                    scenario,
                    &variant,
                    Strategy::default(),
                    scenario.schedules,
                    scenario.seed,
                    move |f| f.len() == all,
                );
                let file = scenario
                    .path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                broken.extend(found.violated().into_iter().map(|i| (file.clone(), i)));
            }
            if !per_combo.is_zero() {
                let report = search(&variant, &Options::new(per_combo, seed), &|_, _| {});
                broken.extend(report.findings.iter().map(|f| (GENERATED.to_string(), f.invariant)));
            }
            progress(&variant, broken.len());
            (switches, broken)
        });
        Ablation {
            rows,
            sources: scenarios.len() + usize::from(!per_combo.is_zero()),
        }
    }

    fn broken(&self, switches: SeedFixSwitches) -> &Broken {
        &self
            .rows
            .iter()
            .find(|(s, _)| *s == switches)
            .expect("all 16 combinations ran")
            .1
    }

    /// What the switch called `name` carries.
    pub fn verdict(&self, name: &str) -> SwitchVerdict {
        let mut verdict = SwitchVerdict::default();
        for (switches, on) in &self.rows {
            let Some(off) = without(*switches, name) else { continue };
            let off = self.broken(off);
            for pair in off.difference(on) {
                *verdict.load_bearing.entry(pair.clone()).or_default() += 1;
            }
            for pair in on.difference(off) {
                *verdict.harms.entry(pair.clone()).or_default() += 1;
            }
        }
        verdict
    }

    /// What the shipped fix (every switch on) breaks.
    pub fn shipped(&self) -> &Broken {
        self.broken(SeedFixSwitches::ALL_ON)
    }

    /// What the shipped fix breaks that no combination of switches prevents.
    pub fn never_prevented(&self) -> Vec<&(String, Invariant)> {
        self.shipped()
            .iter()
            .filter(|pair| self.rows.iter().all(|(_, b)| b.contains(*pair)))
            .collect()
    }

    /// What the shipped fix breaks that some other combination does not.
    pub fn fixable(&self) -> Vec<&(String, Invariant)> {
        self.shipped()
            .iter()
            .filter(|pair| self.rows.iter().any(|(_, b)| !b.contains(*pair)))
            .collect()
    }
}

/// The switches that are on, joined with `+`.
pub fn label(s: SeedFixSwitches) -> String {
    let on: Vec<&str> = SeedFixSwitches::NAMES
        .iter()
        .zip([s.dedup, s.clear_session, s.db_check, s.fallback])
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect();
    if on.is_empty() {
        "(none)".to_string()
    } else {
        on.join("+")
    }
}

/// The same switches with `name` turned off, if it was on.
fn without(s: SeedFixSwitches, name: &str) -> Option<SeedFixSwitches> {
    let mut off = s;
    let flag = match name {
        "dedup" => &mut off.dedup,
        "clear_session" => &mut off.clear_session,
        "db_check" => &mut off.db_check,
        _ => &mut off.fallback,
    };
    std::mem::replace(flag, false).then_some(off)
}
