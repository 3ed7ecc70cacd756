//! `otpsim replay`: one schedule, as text, JSON, Mermaid, SVG or HTML.

use std::process::ExitCode;

use anyhow::{bail, Result};
use otpsim_sim::sweep::{replay, sweep};

use crate::cli::{ReplayArgs, RunFormat};
use crate::{load, InvalidInput};

pub fn run(args: &ReplayArgs) -> Result<ExitCode> {
    let (file, seed, choices, strategy, position, format, explain) = (
        args.file.as_path(),
        args.seed,
        args.choices.clone(),
        args.strategy,
        args.position,
        args.format,
        args.explain,
    );
    let Some(variant) = args.variant else {
        bail!(InvalidInput("--variant is needed without --target".to_string()));
    };
    use otpsim_sim::render::{self, Diagram};
    let scenario = load(file)?;
    if position == 0 {
        bail!(InvalidInput("--position counts from 1".to_string()));
    }
    let seed = seed.unwrap_or(scenario.seed);
    let pinned = choices.or_else(|| scenario.choices.clone());
    // One schedule runs: the pinned one, or the first counterexample the
    // sweep finds, shown as it was recorded (not run again).
    let (trace, violations, choices) = match pinned {
        Some(choices) => {
            let (outcome, violations, taken) = replay(&scenario, &variant, seed, &choices, position);
            (outcome.trace, violations, taken)
        }
        None => {
            let found = sweep(&scenario, &variant, strategy, scenario.schedules, seed, |found| {
                !found.is_empty()
            });
            match found.counterexamples.into_iter().next() {
                Some(c) => {
                    let choices = c.choices().to_vec();
                    (c.trace, c.violations, choices)
                }
                None => {
                    let note = format!(
                        "no schedule of {} ({strategy}, seed {seed}) broke a checked invariant; here is the one with no preemption",
                        found.schedules
                    );
                    if format == RunFormat::Text {
                        println!("{note}");
                    } else {
                        eprintln!("{note}");
                    }
                    let (outcome, violations, taken) = replay(&scenario, &variant, seed, &[], position);
                    (outcome.trace, violations, taken)
                }
            }
        }
    };
    let choices: Vec<String> = choices.iter().map(u8::to_string).collect();
    let schedule = format!("seed {seed} choices [{}]", choices.join(","));
    let title = format!("{} | variant {variant} | {schedule}", scenario.name);
    let explanation = render::explain(&trace, &violations);
    let diagram = || Diagram::of(&trace, &violations);
    match format {
        RunFormat::Text => {
            println!("# {title}");
            print!("{trace}");
            if violations.is_empty() {
                println!("no invariant broken");
            }
            for v in &violations {
                println!("VIOLATED {}: {}", v.invariant, v.why);
            }
            if explain && !explanation.is_empty() {
                println!("EXPLANATION: {explanation}");
            }
        }
        RunFormat::Json => print!("{}", render::json(&title, &trace, &violations, &explanation)),
        RunFormat::Mermaid => print!("{}", render::mermaid(&diagram())),
        RunFormat::Svg => print!("{}", render::svg(&diagram())),
        RunFormat::Html => {
            print!(
                "{}",
                render::html_page(&title, &render::svg(&diagram()), &explanation, &trace.to_string())
            )
        }
    }
    // A replay that shows a break fails, as check and explore do: a script
    // that replays a saved counterexample sees it still breaks.
    Ok(if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
