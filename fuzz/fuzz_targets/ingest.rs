//! Arbitrary bytes as a JSON batch of records: parsing and validation must
//! never panic, and whatever is accepted must load into a store that
//! validates and gives the records back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(records) = backdex::records_from_json(&value) else { return };
    let mut store = backdex::Store::new();
    if store.upsert(&records).is_ok() {
        store.internal_validate().expect("indexes agree with columns");
        assert_eq!(store.len(), records.len());
    }
});
