//! A hash map in copy-on-write shards, so that cloning a store per batch
//! does not copy maps with hundreds of thousands of keys.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use super::Spine;
use hashbrown::HashTable;
use rustc_hash::{FxHashMap, FxHasher};
use std::mem::size_of;

use crate::codec::{Decoder, Encoder, Malformed, Persist};

const SHARD_BITS: u32 = 10;
const SHARDS: usize = 1 << SHARD_BITS;

/// The shards hash with rustc's Fx hash, several times faster than SipHash
/// on the short keys here. Keys come from records, which the backup service
/// writes, not from requests (which only look keys up), so hash flooding is
/// not a concern.
type FxMap<K, V> = FxHashMap<K, V>;

/// A map of `K` to `V` split into 1,024 `Arc`ed shards in a [`Spine`]: a
/// clone costs 16 pointer copies and a write copies one shard (about
/// 1/1,024 of the map) only when a snapshot still shares it.
#[derive(Debug, Clone)]
pub(crate) struct CowMap<K, V> {
    shards: Spine<FxMap<K, V>>,
    len: usize,
}

impl<K, V> Default for CowMap<K, V> {
    fn default() -> Self {
        CowMap {
            shards: (0..SHARDS).map(|_| FxMap::default()).collect(),
            len: 0,
        }
    }
}

/// The shard of a key. The shard maps hash with the same function and use
/// its low bits (bucket) and top bits (tag), so the shard comes from the
/// top bits of a second multiply: keys of one shard still differ there.
#[inline]
fn shard_of<Q: Hash + ?Sized>(key: &Q) -> usize {
    let mut h = FxHasher::default();
    key.hash(&mut h);
    (h.finish().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARD_BITS)) as usize
}

impl<K: Hash + Eq + Clone, V: Clone> CowMap<K, V> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[shard_of(key)].get(key)
    }

    /// The shard holding `key`, made unique, only when it holds the key:
    /// a miss must not copy a shard that a snapshot shares.
    fn shard_holding<Q>(&mut self, key: &Q) -> Option<&mut FxMap<K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = shard_of(key);
        if self.shards[i].contains_key(key) {
            Some(self.shards.make_mut(i))
        } else {
            None
        }
    }

    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard_holding(key)?.get_mut(key)
    }

    /// The value of `key`, inserting `make()` first when absent.
    pub(crate) fn entry_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let shard = self.shards.make_mut(shard_of(&key));
        if !shard.contains_key(&key) {
            self.len += 1;
        }
        shard.entry(key).or_insert_with(make)
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let removed = self.shard_holding(key)?.remove(key);
        self.len -= usize::from(removed.is_some());
        removed
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.shards.iter().flat_map(|s| s.iter())
    }

    /// Heap bytes of the table slots and shard headers (not of what the
    /// keys and values own themselves).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.shards.spine_bytes()
            + self.shards.len() * (16 + size_of::<FxMap<K, V>>())
            + self
                .shards
                .iter()
                .map(|s| s.capacity() * (size_of::<(K, V)>() + 1))
                .sum::<usize>()
    }
}

/// Codes found by a hash of what they stand for, which their owner keeps
/// (a dictionary's texts): the table holds 4 bytes a code and no copy of
/// the text, in copy-on-write shards like [`CowMap`]'s.
#[derive(Debug, Clone)]
pub(crate) struct CowTable {
    shards: Spine<HashTable<u32>>,
    len: usize,
}

impl Default for CowTable {
    fn default() -> Self {
        CowTable {
            shards: (0..SHARDS).map(|_| HashTable::new()).collect(),
            len: 0,
        }
    }
}

/// The Fx hash of a text, as [`CowTable`]s of texts take it.
#[inline]
pub(crate) fn text_hash(text: &str) -> u64 {
    let mut h = FxHasher::default();
    text.hash(&mut h);
    h.finish()
}

impl CowTable {
    /// The shard of a hash: the tables use its low bits (bucket) and top
    /// bits (tag), so the shard comes from the top bits of a second
    /// multiply, as [`CowMap`]'s do.
    #[inline]
    fn shard_of(hash: u64) -> usize {
        (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARD_BITS)) as usize
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The code with this hash that `is` accepts.
    #[inline]
    pub(crate) fn find(&self, hash: u64, is: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut is = is;
        self.shards[Self::shard_of(hash)]
            .find(hash, |&code| is(code))
            .copied()
    }

    /// Adds a code (not in the table) with its hash; `hash_of` gives the
    /// hash of any code the table holds, for growing.
    pub(crate) fn insert(&mut self, hash: u64, code: u32, hash_of: impl Fn(u32) -> u64) {
        self.shards
            .make_mut(Self::shard_of(hash))
            .insert_unique(hash, code, |&c| hash_of(c));
        self.len += 1;
    }

    /// Removes a code, found by its hash; whether it was there. A miss
    /// copies no shard a snapshot shares.
    pub(crate) fn remove(&mut self, hash: u64, code: u32) -> bool {
        let i = Self::shard_of(hash);
        if self.shards[i].find(hash, |&c| c == code).is_none() {
            return false;
        }
        if let Ok(entry) = self.shards.make_mut(i).find_entry(hash, |&c| c == code) {
            entry.remove();
            self.len -= 1;
        }
        true
    }

    /// Heap bytes of the slots and shard headers.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.shards.spine_bytes()
            + self.shards.len() * (16 + size_of::<HashTable<u32>>())
            + self
                .shards
                .iter()
                .map(|s| s.capacity() * (size_of::<u32>() + 1))
                .sum::<usize>()
    }
}

/// Stored as its entries, in no order; a key read twice is an error.
impl<K: Hash + Eq + Clone + Persist, V: Clone + Persist> Persist for CowMap<K, V> {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        out.len(self.len);
        for (k, v) in self.iter() {
            k.save(out);
            v.save(out);
        }
    }
    fn load(input: &mut Decoder<'_>) -> Result<CowMap<K, V>, Malformed> {
        let n = input.count(K::MIN_BYTES + V::MIN_BYTES)?;
        let mut map = CowMap::default();
        for _ in 0..n {
            let key = K::load(input)?;
            let value = V::load(input)?;
            let before = map.len();
            map.entry_or_insert_with(key, || value);
            if map.len() == before {
                return Err(input.malformed("a key is stored twice"));
            }
        }
        Ok(map)
    }
}
