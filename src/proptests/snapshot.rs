//! Snapshots: a store written and read back answers every request byte for
//! byte as the original, validates, and goes on taking changes like it;
//! every damaged input is an error naming its section and offset.

use proptest::prelude::*;
use proptest::strategy::ValueTree;

use super::api::request;
use super::store::{op, record, Op};
use crate::oracle::Oracle;
use crate::store::{SnapshotError, Store, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};

fn apply(store: &mut Store, oracle: &mut Oracle, op: &Op) {
    match op {
        Op::Upsert(records) => {
            let _ = store.upsert(records);
            let _ = oracle.upsert(records);
        }
        Op::Delete(ids) => {
            let _ = store.delete(ids);
            let _ = oracle.delete(ids);
        }
    }
}

fn round_trip(store: &Store, position: &[u8]) -> Store {
    let mut file = Vec::new();
    let written = store.write_snapshot(&mut file, position).expect("writes");
    assert_eq!(
        written,
        file.len() as u64,
        "the reported size is the file's"
    );
    let restored = Store::read_snapshot(&file[..]).expect("reads back");
    assert_eq!(restored.position, position);
    restored.store
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_restored_store_answers_like_the_original(
        ops in proptest::collection::vec(op(), 1..16),
        later in proptest::collection::vec(op(), 0..6),
        requests in proptest::collection::vec(request(), 1..16),
        position in proptest::collection::vec(any::<u8>(), 0..24),
    ) {
        let (mut store, mut oracle) = (Store::new(), Oracle::new());
        for op in &ops {
            apply(&mut store, &mut oracle, op);
        }
        let mut restored = round_trip(&store, &position);
        prop_assert!(restored.internal_validate().is_ok(), "{:?}", restored.internal_validate());
        prop_assert_eq!(restored.records(), store.records());
        prop_assert_eq!(restored.memory_usage().records, store.len());
        for (scope, path, query) in &requests {
            prop_assert_eq!(restored.handle(path, query, scope), store.handle(path, query, scope),
                "{} ? {}", path, query);
        }
        // Freed rows and codes come back too: later changes land alike.
        let mut twin = Oracle::new();
        for op in &later {
            apply(&mut restored, &mut twin, op);
            apply(&mut store, &mut oracle, op);
        }
        prop_assert!(restored.internal_validate().is_ok());
        for (scope, path, query) in &requests {
            prop_assert_eq!(restored.handle(path, query, scope), store.handle(path, query, scope));
        }
    }
}

/// A small store with every kind of content: members, ip addresses,
/// deletes (free rows and codes).
fn sample() -> Store {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let records = proptest::collection::vec(record(), 40)
        .new_tree(&mut runner)
        .expect("a tree")
        .current();
    let (mut store, mut oracle) = (Store::new(), Oracle::new());
    for r in &records {
        apply(&mut store, &mut oracle, &Op::Upsert(vec![r.clone()]));
    }
    let ids: Vec<String> = store
        .records()
        .iter()
        .take(5)
        .map(|r| r.id.clone())
        .collect();
    store.delete(&ids).expect("ids exist");
    store
}

fn snapshot_of(store: &Store) -> Vec<u8> {
    let mut file = Vec::new();
    store
        .write_snapshot(&mut file, b"0/16B3748")
        .expect("writes");
    file
}

#[test]
fn wrong_magic_and_other_versions_are_refused() {
    let file = snapshot_of(&sample());
    let err = Store::read_snapshot(&b"{\"id\": \"b1\"}\n"[..]).unwrap_err();
    assert!(matches!(err, SnapshotError::NotASnapshot { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        r#"not a backdex snapshot: it starts with "{\"id\": \"" instead of "BDXSNAP\x00""#
    );
    let mut other = file.clone();
    // Version 1 (issue 12's first format: plain integer columns) and the
    // next one are both refused.
    for version in [1, SNAPSHOT_VERSION + 1] {
        other[8..12].copy_from_slice(&version.to_le_bytes());
        let err = Store::read_snapshot(&other[..]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "snapshot format version {version} cannot be read by this build, \
                 which reads version {SNAPSHOT_VERSION}"
            )
        );
    }
    assert!(Store::read_snapshot(&[][..]).is_err());
    assert_eq!(&file[..8], &SNAPSHOT_MAGIC);
}

#[test]
fn every_flipped_byte_and_every_truncation_is_an_error() {
    let file = snapshot_of(&sample());
    for at in 0..file.len() {
        let mut bad = file.clone();
        bad[at] ^= 0x20;
        let err = Store::read_snapshot(&bad[..]).expect_err("a flipped byte is caught");
        if at >= 12 {
            // Past the magic and version: a section is named with an offset.
            let shown = err.to_string();
            assert!(shown.contains("offset"), "byte {at}: {shown}");
        }
    }
    for cut in 0..file.len() {
        let err = Store::read_snapshot(&file[..cut]).expect_err("a truncation is caught");
        if cut >= 12 {
            assert!(
                matches!(err, SnapshotError::Truncated { .. }),
                "cut {cut}: {err}"
            );
        }
    }
    let mut longer = file.clone();
    longer.push(0);
    let err = Store::read_snapshot(&longer[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "snapshot has bytes after its last section, from offset {}",
            file.len()
        )
    );
}

#[test]
fn absurd_lengths_are_refused_without_allocating_them() {
    let file = snapshot_of(&Store::new());
    // The first section's length: magic, version, name length, "header".
    let at = 8 + 4 + 1 + "header".len();
    let mut bad = file.clone();
    bad[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    let err = Store::read_snapshot(&bad[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "snapshot section `header` is malformed at offset {at}: a section length of {} bytes is absurd",
            u64::MAX
        )
    );
    // Large but not absurd: read as far as the data goes, then truncated.
    bad[at..at + 8].copy_from_slice(&(1u64 << 39).to_le_bytes());
    let err = Store::read_snapshot(&bad[..]).unwrap_err();
    assert!(
        matches!(err, SnapshotError::Truncated { ref section, .. } if section == "header"),
        "{err}"
    );
}

/// A payload whose checksum is right but whose content breaks a bound is
/// refused by the decoder (what a buggy writer would produce).
#[test]
fn bounds_are_checked_after_the_checksums() {
    let store = sample();
    let mut file = snapshot_of(&store);
    // Rewrite the `header` section with a record count that disagrees.
    let name_at = 12;
    let len_at = name_at + 1 + "header".len();
    let payload_len = u64::from_le_bytes(file[len_at..len_at + 8].try_into().unwrap()) as usize;
    let payload_at = len_at + 8;
    let records_at = payload_at + payload_len - 8;
    file[records_at..records_at + 8].copy_from_slice(&12_345u64.to_le_bytes());
    let crc_at = payload_at + payload_len;
    let crc = crc32fast::hash(&file[name_at..crc_at]);
    file[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    let err = Store::read_snapshot(&file[..]).unwrap_err();
    assert!(
        matches!(err, SnapshotError::Malformed { ref section, .. } if section == "rows"),
        "{err}"
    );
    assert!(
        err.to_string().contains("the header's number of records"),
        "{err}"
    );
}

#[test]
fn long_positions_are_refused() {
    let err = Store::new()
        .write_snapshot(&mut Vec::new(), &[0; 4097])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "a snapshot position holds at most 4096 bytes, this one 4097"
    );
}
