//! How each index is stored in a snapshot: as it is in memory (bitmaps in
//! the portable roaring format, ordered sequences as their entries), so
//! that reading one back sorts and inserts nothing.

use roaring::RoaringBitmap;

use super::{BitmapIndex, DayIndex, ExtendOverlap, IpIndex, SharingIndex, SortedSeq, TrigramIndex};
use crate::codec::{Decoder, Encoder, Malformed, Persist};

/// An index that names rows: a snapshot reader checks that each names
/// only rows the store has.
pub(crate) trait RowBound {
    /// The highest row named, if any.
    fn max_row(&self) -> Option<u32>;
}

/// The rows of an ordered index.
impl RowBound for SortedSeq<u32> {
    fn max_row(&self) -> Option<u32> {
        self.iter().copied().max()
    }
}

impl Persist for BitmapIndex {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        out.seq(self.by_code.iter());
    }
    fn load(input: &mut Decoder<'_>) -> Result<BitmapIndex, Malformed> {
        let bitmaps: Vec<RoaringBitmap> = input.seq()?;
        Ok(BitmapIndex {
            by_code: bitmaps.into_iter().collect(),
        })
    }
}

/// The highest row any bitmap holds.
impl RowBound for BitmapIndex {
    fn max_row(&self) -> Option<u32> {
        self.by_code.iter().filter_map(|b| b.max()).max()
    }
}

impl Persist for TrigramIndex {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        self.grams.save(out);
    }
    fn load(input: &mut Decoder<'_>) -> Result<TrigramIndex, Malformed> {
        Ok(TrigramIndex {
            grams: Persist::load(input)?,
        })
    }
}

impl Persist for DayIndex {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        self.days.save(out);
    }
    fn load(input: &mut Decoder<'_>) -> Result<DayIndex, Malformed> {
        Ok(DayIndex {
            days: Persist::load(input)?,
        })
    }
}

impl Persist for ExtendOverlap {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        self.rows.save(out);
    }
    fn load(input: &mut Decoder<'_>) -> Result<ExtendOverlap, Malformed> {
        Ok(ExtendOverlap {
            rows: Persist::load(input)?,
        })
    }
}

/// Written only between batches, when nothing is gathered.
impl Persist for IpIndex {
    const MIN_BYTES: usize = 16;
    fn save(&self, out: &mut Encoder) {
        self.v4.save(out);
        self.v6.save(out);
    }
    fn load(input: &mut Decoder<'_>) -> Result<IpIndex, Malformed> {
        Ok(IpIndex {
            v4: Persist::load(input)?,
            v6: Persist::load(input)?,
            gathered: None,
        })
    }
}

/// The highest row an address points at.
impl RowBound for IpIndex {
    fn max_row(&self) -> Option<u32> {
        let v4 = self.v4.iter().map(|e| e.1).max();
        let v6 = self.v6.iter().map(|e| e.1).max();
        v4.max(v6)
    }
}

impl Persist for SharingIndex {
    const MIN_BYTES: usize = 40;
    fn save(&self, out: &mut Encoder) {
        self.to.save(out);
        for by_status in &self.to_status {
            by_status.save(out);
        }
        out.seq(self.at_least.iter());
    }
    fn load(input: &mut Decoder<'_>) -> Result<SharingIndex, Malformed> {
        let to = BitmapIndex::load(input)?;
        let to_status = [
            BitmapIndex::load(input)?,
            BitmapIndex::load(input)?,
            BitmapIndex::load(input)?,
        ];
        let at_least: Vec<RoaringBitmap> = input.seq()?;
        Ok(SharingIndex {
            to,
            to_status,
            at_least: at_least.into_iter().collect(),
        })
    }
}

/// The highest row of any day.
impl RowBound for DayIndex {
    fn max_row(&self) -> Option<u32> {
        self.days.iter().filter_map(|(_, b)| b.max()).max()
    }
}

/// The highest row held.
impl RowBound for ExtendOverlap {
    fn max_row(&self) -> Option<u32> {
        self.rows.max()
    }
}

/// The highest row shared.
impl RowBound for SharingIndex {
    fn max_row(&self) -> Option<u32> {
        let by_dest = self.to_status.iter().chain([&self.to]);
        let counted = self.at_least.iter().filter_map(|b| b.max()).max();
        by_dest.filter_map(RowBound::max_row).max().max(counted)
    }
}
