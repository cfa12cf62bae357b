//! Large upserts into a store that holds records, whose new records go in
//! as column blocks (`store/append.rs`), against the row-by-row path (the
//! same batch applied in small pieces): random stores with free rows from
//! deletes and a partial last chunk, batches mixing replacements and new
//! records. Both hold the same records, validate, and answer every request
//! byte for byte alike.

use proptest::prelude::*;

use super::api::request;
use super::store::{record, IDS};
use crate::record::Record;
use crate::store::{Store, BULK_MIN};

/// `n` random records with distinct ids: all UUIDs (kept as 16 bytes) or
/// ids of odd shapes.
fn distinct(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Record>> {
    (proptest::collection::vec(record(), n), any::<bool>()).prop_map(|(mut records, uuids)| {
        for (i, r) in records.iter_mut().enumerate() {
            r.id = if uuids {
                format!("{:08x}-3c7a-47ba-848e-{i:012x}", (i % 7) * 0x1111_1111)
            } else {
                // The pool's odd shapes, made distinct by a suffix of one width.
                format!("{}{i:05}", IDS[i % IDS.len()])
            };
            // Every third record brings values no other record holds, so
            // that blocks bring dictionary values of their own.
            if i % 3 == 0 {
                r.name = format!("{}{i}", r.name);
                r.resource_name = format!("{i}{}", r.resource_name);
                r.resource_id = format!("{}{i}", r.resource_id);
            }
        }
        records
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn a_large_batch_appended_as_blocks_answers_as_row_by_row(
        records in distinct(BULK_MIN + 1100..BULK_MIN + 2600),
        base_len in 0..1100usize,
        delete_every in 2..9usize,
        replace_every in 2..7usize,
        requests in proptest::collection::vec(request(), 1..24),
    ) {
        let (base, fresh) = records.split_at(base_len);
        // Some of the base replaced, with the contents of other records.
        let mut batch: Vec<Record> = fresh.to_vec();
        for (i, old) in base.iter().enumerate().step_by(replace_every) {
            let contents = &fresh[i % fresh.len()];
            batch.push(Record { id: old.id.clone(), ..contents.clone() });
        }
        let third = batch.len() / 3;
        batch.rotate_left(third);
        let gone: Vec<&str> = base
            .iter()
            .skip(1)
            .step_by(delete_every)
            .map(|r| r.id.as_str())
            .filter(|id| !batch.iter().any(|r| r.id == *id))
            .collect();

        let (mut blocks, mut rows) = (Store::new(), Store::new());
        for store in [&mut blocks, &mut rows] {
            store.upsert(base).unwrap();
            store.delete(&gone).unwrap();
        }
        prop_assert!(blocks.appendable(fresh.len()) > 0, "the batch takes the block path");
        blocks.upsert(&batch).unwrap();
        for piece in batch.chunks(BULK_MIN / 4) {
            rows.upsert(piece).unwrap();
        }
        prop_assert!(blocks.internal_validate().is_ok(), "{:?}", blocks.internal_validate());
        prop_assert_eq!(blocks.records(), rows.records());
        for (scope, path, query) in &requests {
            prop_assert_eq!(blocks.handle(path, query, scope), rows.handle(path, query, scope));
        }
        // The next changes, row by row, see consistent columns and indexes.
        let again: Vec<Record> = batch.iter().step_by(97).cloned().collect();
        blocks.upsert(&again).unwrap();
        rows.upsert(&again).unwrap();
        let ids: Vec<&str> = batch.iter().step_by(89).map(|r| r.id.as_str()).collect();
        blocks.delete(&ids).unwrap();
        rows.delete(&ids).unwrap();
        prop_assert!(blocks.internal_validate().is_ok(), "{:?}", blocks.internal_validate());
        prop_assert_eq!(blocks.records(), rows.records());
        for (scope, path, query) in &requests {
            prop_assert_eq!(blocks.handle(path, query, scope), rows.handle(path, query, scope));
        }
    }
}
