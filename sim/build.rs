//! Generates one `#[test]` per file of the corpus (`scenarios/` at the
//! workspace's root) for `tests/corpus.rs`, so that `cargo test` names the
//! file that fails.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=../scenarios");
    let mut files: Vec<String> = std::fs::read_dir("../scenarios")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .map(|p| p.to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut code = String::new();
    for file in &files {
        let stem = Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        code.push_str(&format!(
            "#[test]\nfn scenario_{name}() {{\n    check_file({file:?});\n}}\n\n"
        ));
    }
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("corpus_tests.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}
