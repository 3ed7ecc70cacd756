//! `otpsim ablate`: prints what `otpsim_sim::ablate` found, as a table
//! (per invariant, the scenarios in which each combination of switches
//! breaks it) and a verdict per switch.

use std::sync::Arc;

use otpsim_core::SeedFixSwitches;
use otpsim_sim::ablate::{label, Ablation};
use otpsim_sim::explore::Budget;
use otpsim_sim::{Invariant, Scenario};

/// Runs the ablation and prints the table and the verdict.
pub fn run(scenarios: &[Arc<Scenario>], budget: Budget, seed: u64, jobs: usize) {
    let ablation = Ablation::run(scenarios, budget, seed, jobs, &|variant, broken| {
        eprintln!("{variant}: {broken} break(s)");
    });
    print_table(&ablation);
    print_verdict(&ablation);
}

fn print_table(ablation: &Ablation) {
    println!(
        "Scenarios (of {}) in which each combination of switches breaks each invariant:",
        ablation.sources
    );
    print!("{:<38}", "switches on");
    for i in Invariant::ALL {
        print!(" {:>16}", i.name());
    }
    println!();
    for (s, broken) in &ablation.rows {
        print!("{:<38}", label(*s));
        for i in Invariant::ALL {
            let n = broken.iter().filter(|(_, j)| *j == i).count();
            print!(" {:>16}", if n == 0 { "-".to_string() } else { n.to_string() });
        }
        println!();
    }
}

fn print_verdict(ablation: &Ablation) {
    println!();
    let list = |m: &std::collections::BTreeMap<(String, Invariant), usize>| {
        m.iter()
            .map(|((file, i), n)| format!("{i} in {file} ({n}/8)"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for name in SeedFixSwitches::NAMES {
        let v = ablation.verdict(name);
        match (v.load_bearing.is_empty(), v.harms.is_empty()) {
            (true, true) => println!("{name}: changes nothing that was explored."),
            (false, true) => println!("{name}: load-bearing for {}.", list(&v.load_bearing)),
            (true, false) => println!(
                "{name}: prevents nothing, and switching it on breaks {}.",
                list(&v.harms)
            ),
            (false, false) => println!(
                "{name}: load-bearing for {}; but switching it on breaks {}.",
                list(&v.load_bearing),
                list(&v.harms)
            ),
        }
    }
    println!("(n/8: in how many of the 8 settings of the other switches turning it off breaks that)");
    let names = |pairs: Vec<&(String, Invariant)>| {
        pairs
            .iter()
            .map(|(file, i)| format!("{i} in {file}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let shipped = ablation.shipped();
    if shipped.is_empty() {
        println!("With every switch on, the fix breaks nothing that was explored.");
    } else {
        println!(
            "With every switch on, the shipped fix still breaks {} invariant(s) across the scenarios.",
            shipped.len()
        );
    }
    let always = ablation.never_prevented();
    if !always.is_empty() {
        println!("No combination of switches prevents: {}.", names(always));
    }
    let fixable = ablation.fixable();
    if !fixable.is_empty() {
        println!(
            "Broken by the shipped fix but not by some other combination: {}.",
            names(fixable)
        );
    }
}
