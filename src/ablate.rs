//! `otpsim ablate`: the shipped fix taken apart. Each of the 16 on/off
//! combinations of seed_fix's switches runs the scenario corpus (every
//! schedule the files ask for) and a generated search. The table counts,
//! per invariant, the scenarios in which each combination breaks it; the
//! verdict says which switch is load-bearing for which invariant in which
//! scenario, and which breaks no combination of switches prevents.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use otpsim_core::{SeedFixSwitches, Variant};
use otpsim_sim::explore::search;
use otpsim_sim::schedule::Strategy;
use otpsim_sim::sweep::sweep;
use otpsim_sim::{Invariant, Scenario};

/// What one combination broke: (scenario file, invariant).
type Broken = BTreeSet<(String, Invariant)>;

const GENERATED: &str = "generated scenarios";

/// Runs the ablation and prints the table and the verdict.
pub fn run(scenarios: &[Arc<Scenario>], budget: Duration, seed: u64) {
    let combos = SeedFixSwitches::all_combinations();
    let per_combo = budget / combos.len() as u32;
    let mut rows: BTreeMap<SeedFixSwitches, Broken> = BTreeMap::new();
    for &switches in &combos {
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
            let report = search(&variant, per_combo, seed, &|_, _| {});
            broken.extend(report.findings.iter().map(|f| (GENERATED.to_string(), f.invariant)));
        }
        eprintln!("{variant}: {} break(s)", broken.len());
        rows.insert(switches, broken);
    }
    print_table(&combos, &rows, scenarios.len() + usize::from(!per_combo.is_zero()));
    print_verdict(&rows);
}

fn label(s: SeedFixSwitches) -> String {
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

fn print_table(combos: &[SeedFixSwitches], rows: &BTreeMap<SeedFixSwitches, Broken>, sources: usize) {
    println!("Scenarios (of {sources}) in which each combination of switches breaks each invariant:");
    print!("{:<38}", "switches on");
    for i in Invariant::ALL {
        print!(" {:>16}", i.name());
    }
    println!();
    for s in combos {
        print!("{:<38}", label(*s));
        for i in Invariant::ALL {
            let n = rows[s].iter().filter(|(_, j)| *j == i).count();
            print!(" {:>16}", if n == 0 { "-".to_string() } else { n.to_string() });
        }
        println!();
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

fn print_verdict(rows: &BTreeMap<SeedFixSwitches, Broken>) {
    println!();
    for name in SeedFixSwitches::NAMES {
        // Load-bearing: with the other switches as they are, turning this
        // one off breaks what was held.
        let mut matters: BTreeMap<(String, Invariant), usize> = BTreeMap::new();
        let mut harms: BTreeMap<(String, Invariant), usize> = BTreeMap::new();
        for (switches, on) in rows {
            let Some(off) = without(*switches, name) else { continue };
            let off = &rows[&off];
            for pair in off.difference(on) {
                *matters.entry(pair.clone()).or_default() += 1;
            }
            for pair in on.difference(off) {
                *harms.entry(pair.clone()).or_default() += 1;
            }
        }
        let list = |m: &BTreeMap<(String, Invariant), usize>| {
            m.iter()
                .map(|((file, i), n)| format!("{i} in {file} ({n}/8)"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (matters.is_empty(), harms.is_empty()) {
            (true, true) => println!("{name}: changes nothing that was explored."),
            (false, true) => println!("{name}: load-bearing for {}.", list(&matters)),
            (true, false) => println!("{name}: prevents nothing, and switching it on breaks {}.", list(&harms)),
            (false, false) => {
                println!(
                    "{name}: load-bearing for {}; but switching it on breaks {}.",
                    list(&matters),
                    list(&harms)
                )
            }
        }
    }
    println!("(n/8: in how many of the 8 settings of the other switches turning it off breaks that)");
    let shipped = &rows[&SeedFixSwitches::ALL_ON];
    let always: Vec<String> = shipped
        .iter()
        .filter(|pair| rows.values().all(|b| b.contains(*pair)))
        .map(|(file, i)| format!("{i} in {file}"))
        .collect();
    let fixable: Vec<String> = shipped
        .iter()
        .filter(|pair| rows.values().any(|b| !b.contains(*pair)))
        .map(|(f, i)| format!("{i} in {f}"))
        .collect();
    if shipped.is_empty() {
        println!("With every switch on, the fix breaks nothing that was explored.");
    } else {
        println!(
            "With every switch on, the shipped fix still breaks {} invariant(s) across the scenarios.",
            shipped.len()
        );
    }
    if !always.is_empty() {
        println!("No combination of switches prevents: {}.", always.join(", "));
    }
    if !fixable.is_empty() {
        println!(
            "Broken by the shipped fix but not by some other combination: {}.",
            fixable.join(", ")
        );
    }
}
