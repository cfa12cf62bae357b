//! Replays every committed fuzz input (`fuzz/corpus/<target>/` and
//! `fuzz/seeds/<target>/`) through the targets' own bodies
//! (`fuzz/harness.rs`), so that `cargo test` re-checks each finding and
//! each interesting input without cargo-fuzz or a nightly toolchain.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

/// Runs `target` on every file of the committed input folders; returns
/// how many there were.
fn replay(name: &str, target: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for folder in ["seeds", "corpus"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join(name)) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in files.iter().filter(|f| f.is_file()) {
            let data = std::fs::read(file).expect("a committed fuzz input is readable");
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "fuzz input {} fails", file.display());
            replayed += 1;
        }
    }
    replayed
}

#[test]
fn ingest_corpus_replays() {
    assert!(replay("ingest", harness::ingest) > 0, "no committed inputs");
}

#[test]
fn request_corpus_replays() {
    assert!(
        replay("request", harness::request) > 0,
        "no committed inputs"
    );
}

#[test]
fn ops_corpus_replays() {
    assert!(replay("ops", harness::ops) > 0, "no committed inputs");
}

#[test]
fn snapshot_corpus_replays() {
    assert!(
        replay("snapshot", harness::snapshot) > 0,
        "no committed inputs"
    );
}

#[test]
fn lines_corpus_replays() {
    assert!(replay("lines", harness::lines) > 0, "no committed inputs");
}

#[test]
fn wire_corpus_replays() {
    assert!(replay("wire", harness::wire) > 0, "no committed inputs");
}
