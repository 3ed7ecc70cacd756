//! The scenario loader on hostile input: arbitrary bytes and mutations of
//! every valid file either load or fail with a located message; never a
//! panic.

use std::path::Path;

use otpsim_sim::Scenario;
use proptest::prelude::*;

fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect()
}

fn assert_located(bytes: Vec<u8>) {
    let lines = bytes.split(|b| *b == b'\n').count();
    if let Err(e) = Scenario::from_bytes(Path::new("fuzz.toml"), bytes) {
        assert!(!e.message.is_empty());
        assert!(e.line >= 1 && e.line <= lines && e.column >= 1, "{e}");
        assert!(e.to_string().starts_with("fuzz.toml:"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        assert_located(bytes);
    }

    #[test]
    fn mutated_corpus_files(file in 0usize..64, at in any::<prop::sample::Index>(), cut in 0usize..40, insert in "[a-z0-9 =\"\\[\\]\n.:-]{0,12}") {
        let files = corpus();
        let text = files[file % files.len()].as_bytes();
        let start = at.index(text.len() + 1);
        let end = (start + cut).min(text.len());
        let mut mutated = text[..start].to_vec();
        mutated.extend_from_slice(insert.as_bytes());
        mutated.extend_from_slice(&text[end..]);
        assert_located(mutated);
    }
}

#[test]
fn every_corpus_file_loads() {
    for text in corpus() {
        Scenario::from_bytes(Path::new("corpus.toml"), text.into_bytes()).unwrap();
    }
}
