//! The bulk builder against the reference path (each line decoded by
//! `Record::from_value`, the batch applied by `Store::upsert`): random
//! JSON Lines — valid records, repeated ids, repeated and unknown keys,
//! escapes, missing fields, broken lines, blank lines — handed over in
//! random pieces. Both build the same store, answering every request byte
//! for byte alike, or both refuse with the same message.

use proptest::prelude::*;

use super::api::request;
use super::store::{id_variant, record, IDS};
use crate::store::{Store, StoreBuilder};

/// The reference: today's path, one line at a time, then one upsert.
fn reference(text: &[u8]) -> Result<Store, String> {
    crate::oracle::load_lines(text)
}

fn built(text: &[u8], cuts: &[usize]) -> Result<Store, String> {
    let mut builder = StoreBuilder::new();
    let mut at = 0;
    for &cut in cuts {
        let cut = cut.min(text.len()).max(at);
        builder.push_lines(&text[at..cut]);
        at = cut;
    }
    builder.push_lines(&text[at..]);
    builder.finish().map_err(|e| e.to_string())
}

/// One line: a record written out, perhaps altered.
fn line() -> impl Strategy<Value = String> {
    (record(), 0..12u8, 0..IDS.len() * 8).prop_map(|(r, how, n)| {
        let mut r = r;
        // Mostly distinct ids, sometimes one from the small pool.
        if how != 0 {
            r.id = id_variant(&r.id, n + 1);
        }
        let plain = serde_json::to_string(&r).expect("a record serializes");
        match how {
            1 => plain.replacen("{", "{\"id\":\"shadowed\",", 1), // repeated key
            2 => plain.replacen("{", "{\"unknown\":1,", 1),
            3 => plain.replacen("\"name\":\"", "\"name\":\"\\u00e9\\n", 1), // escapes
            4 => plain.replacen(",\"status\":", ",\"status_\":", 1),
            5 => plain.replacen(":", " : ", 3),
            6 if n % 5 == 0 => plain[..plain.len() / 2].to_owned(), // broken
            7 => plain.replacen("\"members\":[]", "\"members\":null", 1),
            8 => format!("  {plain}\r"),
            _ => plain,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn the_builder_builds_what_upsert_builds(
        lines in proptest::collection::vec((line(), 0..4u8), 0..60),
        cuts in proptest::collection::vec(0..20_000usize, 0..6),
        requests in proptest::collection::vec(request(), 1..8),
    ) {
        let mut text = String::new();
        for (line, blanks) in &lines {
            text.push_str(line);
            for _ in 0..*blanks {
                text.push_str("\n ");
            }
            text.push('\n');
        }
        let mut cuts = cuts;
        cuts.sort_unstable();
        let (want, got) = (reference(text.as_bytes()), built(text.as_bytes(), &cuts));
        match (&want, &got) {
            (Ok(want), Ok(got)) => {
                prop_assert!(got.internal_validate().is_ok(), "{:?}", got.internal_validate());
                prop_assert_eq!(got.records(), want.records());
                for (scope, path, query) in &requests {
                    prop_assert_eq!(got.handle(path, query, scope), want.handle(path, query, scope));
                }
            }
            (Err(want), Err(got)) => prop_assert_eq!(got, want),
            _ => prop_assert!(false, "reference {:?}, builder {:?}", want.as_ref().err(), got.as_ref().err()),
        }
    }
}

/// Whole chunks and more: rows past the first chunk, blocks built on the
/// pool, a repeated id found across blocks.
#[test]
fn large_inputs_build_alike_and_repeats_across_blocks_are_found() {
    let config = crate::synth::SynthConfig {
        records: 5000,
        ..Default::default()
    };
    let mut text = String::new();
    for r in crate::synth::generate(&config) {
        text.push_str(&serde_json::to_string(&r).expect("serializes"));
        text.push('\n');
    }
    let want = reference(text.as_bytes()).expect("valid");
    let got = built(text.as_bytes(), &[1, 70_000, 70_001, 2_000_000]).expect("valid");
    got.internal_validate().expect("validates");
    assert_eq!(got.records(), want.records());
    // Line 4,500 repeats line 3's id.
    let third = text.lines().nth(2).expect("a line").to_owned();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[4499] = &third;
    let repeated = lines.join("\n");
    let err = built(repeated.as_bytes(), &[]).unwrap_err();
    assert_eq!(Err(err.clone()), reference(repeated.as_bytes()).map(|_| ()));
    assert!(
        err.starts_with("line 4500: record 4499: field `id`: duplicate id"),
        "{err}"
    );
    assert!(err.ends_with("(also record 2 of this batch)"), "{err}");
}
