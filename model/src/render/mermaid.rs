//! The diagram as a Mermaid `sequenceDiagram`, which GitHub renders inline.

use super::{Diagram, Step};

/// Mermaid's statement separators and entity marker cannot appear in text.
fn clean(text: &str) -> String {
    text.replace(';', ",").replace('#', "no. ").replace('\n', " ")
}

/// The Mermaid source.
pub fn mermaid(d: &Diagram) -> String {
    let mut out = String::from("sequenceDiagram\n");
    for (id, title) in d.lanes.iter().zip(&d.titles) {
        out.push_str(&format!("    participant {id} as {}\n", clean(title)));
    }
    for step in &d.steps {
        match step {
            Step::Message { from, to, text, reply } => {
                let arrow = if *reply { "-->>" } else { "->>" };
                out.push_str(&format!(
                    "    {}{arrow}{}: {}\n",
                    d.lanes[*from],
                    d.lanes[*to],
                    clean(text)
                ));
            }
            Step::Note { from, to, text, alarm } => {
                let over = if from == to {
                    d.lanes[*from].clone()
                } else {
                    format!("{},{}", d.lanes[*from], d.lanes[*to])
                };
                let text = if *alarm {
                    format!("⚠ {}", clean(text))
                } else {
                    clean(text)
                };
                out.push_str(&format!("    Note over {over}: {text}\n"));
            }
        }
    }
    out
}
