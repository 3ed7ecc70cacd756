//! `otpsim ablate`: the shipped fix taken apart. Each of the 16 on/off
//! combinations of seed_fix's switches runs the scenario corpus (every
//! schedule the files ask for) and a generated search; the table shows
//! which invariants each combination breaks, and the verdict says which
//! switch is load-bearing for which invariant and what no switch prevents.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use otpsim_core::{SeedFixSwitches, Variant};
use otpsim_sim::explore::{explore, Strategy};
use otpsim_sim::search::search;
use otpsim_sim::{Invariant, Scenario};

/// What each combination broke, and where it was seen first.
type Broken = BTreeMap<Invariant, String>;

/// Runs the ablation and prints the table and the verdict.
pub fn run(scenarios: &[Arc<Scenario>], budget: Duration, seed: u64) -> Vec<(SeedFixSwitches, Broken)> {
    let combos = SeedFixSwitches::all_combinations();
    let per_combo = budget / combos.len() as u32;
    let mut rows = Vec::new();
    for switches in combos {
        let variant = Variant::SeedFix(switches);
        let mut broken = Broken::new();
        for scenario in scenarios {
            let all = scenario.invariants.len();
            let found = explore(
                scenario,
                variant,
                Strategy::default(),
                scenario.schedules,
                scenario.seed,
                move |f| f.len() == all,
            );
            for i in found.violated() {
                let file = scenario
                    .path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                broken.entry(i).or_insert(file);
            }
        }
        if !per_combo.is_zero() {
            for f in search(variant, per_combo, seed, &|_, _| {}).findings {
                broken.entry(f.invariant).or_insert_with(|| "generated".to_string());
            }
        }
        eprintln!("{variant}: {} invariant(s) broken", broken.len());
        rows.push((switches, broken));
    }
    print_table(&rows);
    print_verdict(&rows);
    rows
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

fn print_table(rows: &[(SeedFixSwitches, Broken)]) {
    print!("{:<40}", "switches on");
    for i in Invariant::ALL {
        print!(" {:>16}", i.name());
    }
    println!();
    for (switches, broken) in rows {
        print!("{:<40}", label(*switches));
        for i in Invariant::ALL {
            print!(" {:>16}", if broken.contains_key(&i) { "BROKEN" } else { "-" });
        }
        println!();
    }
}

fn get(s: &mut SeedFixSwitches, name: &str) -> bool {
    match name {
        "dedup" => s.dedup,
        "clear_session" => s.clear_session,
        "db_check" => s.db_check,
        _ => s.fallback,
    }
}

fn print_verdict(rows: &[(SeedFixSwitches, Broken)]) {
    let lookup: BTreeMap<SeedFixSwitches, &Broken> = rows.iter().map(|(s, b)| (*s, b)).collect();
    println!();
    for name in SeedFixSwitches::NAMES {
        // Load-bearing: with the other switches as they are, turning this
        // one off breaks the invariant.
        let mut matters: BTreeMap<Invariant, usize> = BTreeMap::new();
        let mut harms: BTreeMap<Invariant, usize> = BTreeMap::new();
        for (switches, broken_on) in rows {
            let mut s = *switches;
            if !get(&mut s, name) {
                continue;
            }
            let off = Variant::SeedFix(s).to_string() + "-" + name;
            let off: Variant = off.parse().expect("a known switch");
            let Variant::SeedFix(off) = off else { continue };
            let broken_off = lookup[&off];
            for i in Invariant::ALL {
                match (broken_on.contains_key(&i), broken_off.contains_key(&i)) {
                    (false, true) => *matters.entry(i).or_default() += 1,
                    (true, false) => *harms.entry(i).or_default() += 1,
                    _ => {}
                }
            }
        }
        let list = |m: &BTreeMap<Invariant, usize>| {
            m.iter()
                .map(|(i, n)| format!("{i} (in {n} of 8 settings of the others)"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (matters.is_empty(), harms.is_empty()) {
            (true, true) => println!("{name}: changes nothing the corpus and the search can see."),
            (false, true) => println!("{name}: load-bearing for {}.", list(&matters)),
            (true, false) => println!("{name}: protects nothing, and itself breaks {}.", list(&harms)),
            (false, false) => println!(
                "{name}: load-bearing for {}; but turning it on breaks {}.",
                list(&matters),
                list(&harms)
            ),
        }
    }
    let shipped = lookup[&SeedFixSwitches::ALL_ON];
    let always: BTreeSet<Invariant> = Invariant::ALL
        .into_iter()
        .filter(|i| rows.iter().all(|(_, b)| b.contains_key(i)))
        .collect();
    if shipped.is_empty() {
        println!("With every switch on, the fix breaks nothing that was explored.");
    } else {
        let list: Vec<String> = shipped.iter().map(|(i, file)| format!("{i} ({file})")).collect();
        println!(
            "With every switch on, the shipped fix still breaks {}.",
            list.join(", ")
        );
    }
    if !always.is_empty() {
        let list: Vec<&str> = always.iter().map(|i| i.name()).collect();
        println!("No combination of switches prevents: {}.", list.join(", "));
    }
}
