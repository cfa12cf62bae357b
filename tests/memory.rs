//! The store's memory accounting (`Store::memory_usage`) against what the
//! allocator really holds for it: a counting global allocator sums the
//! live bytes of every allocation, and a store built by the bulk builder
//! must account for them within 5%, one grown by upserts within 15%, from
//! slim and from full records.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use backdex::synth::{generate, SynthConfig};
use backdex::{Store, StoreBuilder};

/// Live bytes requested from the allocator.
static LIVE: AtomicUsize = AtomicUsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Relaxed);
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn lines(records: usize, slim: bool) -> String {
    let config = SynthConfig {
        records,
        slim,
        seed: 7,
        ..SynthConfig::default()
    };
    let mut text = String::new();
    for r in generate(&config) {
        text.push_str(&serde_json::to_string(&r).expect("a record serializes"));
        text.push('\n');
    }
    text
}

/// The allocator's live bytes that the store `build` returns holds (what
/// dropping it frees), beside what the store accounts.
fn held_and_accounted(build: impl FnOnce() -> Store) -> (usize, usize) {
    let store = build();
    let accounted = store.memory_usage().total();
    let with = LIVE.load(Relaxed);
    drop(store);
    (with - LIVE.load(Relaxed), accounted)
}

/// Within `tolerance` (a fraction) of each other.
fn assert_agree(what: &str, (held, accounted): (usize, usize), tolerance: f64) {
    let ratio = accounted as f64 / held as f64;
    eprintln!("{what}: allocator holds {held} bytes, the store accounts {accounted} ({ratio:.3})");
    assert!(
        (1.0 - tolerance..=1.0 + tolerance).contains(&ratio),
        "{what}: the store accounts {accounted} bytes, the allocator holds {held}"
    );
}

#[test]
fn accounting_agrees_with_the_allocator() {
    for slim in [true, false] {
        let text = lines(20_000, slim);
        let kind = if slim { "slim" } else { "full" };
        assert_agree(
            &format!("{kind}, bulk builder"),
            held_and_accounted(|| {
                let mut builder = StoreBuilder::new();
                builder.push_lines(text.as_bytes());
                builder.finish().expect("the records load")
            }),
            0.05,
        );
        let records: Vec<_> = generate(&SynthConfig {
            records: 20_000,
            slim,
            seed: 7,
            ..SynthConfig::default()
        })
        .collect();
        assert_agree(
            &format!("{kind}, upserts"),
            held_and_accounted(|| {
                let mut store = Store::new();
                for batch in records.chunks(1000) {
                    store.upsert(batch).expect("the batch applies");
                }
                store
            }),
            // Bitmaps grown one insert at a time keep growth slack that
            // the accounting cannot see (roaring does not tell capacity).
            0.15,
        );
    }
}
