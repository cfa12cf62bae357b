//! `internal_validate`: every index rebuilt from the columns and compared,
//! for property tests and fuzz targets.

use super::{BitmapKey, OrderKey, Store, TextField};

impl Store {
    /// Rebuilds every index from the columns and compares: bitmaps,
    /// dictionaries and their reference counts, ordered indexes (content and
    /// order), trigrams, and the derived indexes (days, ip addresses,
    /// sharing, v1 `extend_info` keys). Slow (a full scan); for tests.
    ///
    /// # Errors
    ///
    /// A description of the first disagreement found.
    #[doc(hidden)]
    pub fn internal_validate(&self) -> Result<(), String> {
        let (c, x) = (&self.cols, &self.idx);
        let rows = c.rows();
        if !(&self.live & &self.free).is_empty()
            || self.live.len() + self.free.len() != rows as u64
            || self.live.max().is_some_and(|m| m as usize >= rows)
            || self.free.max().is_some_and(|m| m as usize >= rows)
        {
            return Err("live and free rows do not partition the row space".into());
        }
        c.check(&self.live)?;

        for &key in BitmapKey::ALL {
            if &c.bitmap_index(key, &self.live) != x.bitmap(key) {
                return Err(format!(
                    "bitmap index of `{}` disagrees with its column",
                    key.name()
                ));
            }
        }

        for &field in TextField::ALL {
            if c.trigram_index(field) != x.substrings[field as usize] {
                return Err(format!(
                    "trigram index of `{}` disagrees with its dictionary",
                    field.name()
                ));
            }
        }

        for &key in OrderKey::ALL {
            let seq = x.order(key);
            seq.check(|&a, &b| c.cmp_rows(key, a, b))
                .map_err(|e| format!("ordered index of `{}`: {e}", key.name()))?;
            let held: roaring::RoaringBitmap = seq.iter().copied().collect();
            if held != self.live || seq.len() != self.len() {
                return Err(format!(
                    "ordered index of `{}` does not hold exactly the live rows",
                    key.name()
                ));
            }
        }

        x.derived.check(c, &self.live)
    }
}
