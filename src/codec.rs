//! The binary encoding of a snapshot's sections: little-endian integers,
//! length-prefixed byte strings and sequences, roaring bitmaps in their
//! portable format. [`Persist`] is what each stored structure implements
//! beside its type; `store::snapshot` frames the sections (magic, version,
//! checksums) and names them in errors.
//!
//! Decoding never trusts a length: a count is checked against the bytes
//! that are left before anything is allocated, so a corrupt or hostile
//! section costs at most its own size.

use roaring::RoaringBitmap;

/// Why a section's payload does not decode: what was expected, and the
/// offset inside the payload where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    pub(crate) offset: usize,
    pub(crate) reason: String,
}

/// Appends values to a section's payload.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    pub(crate) bytes: Vec<u8>,
}

impl Encoder {
    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    /// A count or length (as `u64`).
    pub(crate) fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }
    /// Length-prefixed bytes.
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.bytes.extend_from_slice(b);
    }
    pub(crate) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    /// A sequence: its count, then each item.
    pub(crate) fn seq<'a, T: Persist + 'a>(&mut self, items: impl ExactSizeIterator<Item = &'a T>) {
        self.len(items.len());
        for item in items {
            item.save(self);
        }
    }
}

/// Reads values back from a section's payload.
#[derive(Debug)]
pub(crate) struct Decoder<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Decoder<'a> {
        Decoder { bytes, at: 0 }
    }

    /// An error at the current offset.
    pub(crate) fn malformed(&self, reason: impl Into<String>) -> Malformed {
        Malformed {
            offset: self.at,
            reason: reason.into(),
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if n > self.remaining() {
            return Err(self.malformed(format!("needs {n} bytes, {} are left", self.remaining())));
        }
        let taken = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, Malformed> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A count of items that take at least `min_bytes` each: never more
    /// than the bytes left can hold.
    pub(crate) fn count(&mut self, min_bytes: usize) -> Result<usize, Malformed> {
        let n = self.u64()?;
        let fits = (self.remaining() / min_bytes.max(1)) as u64;
        if n > fits {
            return Err(self.malformed(format!(
                "a count of {n} does not fit in the {} bytes left",
                self.remaining()
            )));
        }
        Ok(n as usize)
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.count(1)?;
        self.take(n)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, Malformed> {
        let start = self.at;
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|e| Malformed {
            offset: start,
            reason: format!("text is not UTF-8: {e}"),
        })
    }

    /// A sequence written by [`Encoder::seq`].
    pub(crate) fn seq<T: Persist>(&mut self) -> Result<Vec<T>, Malformed> {
        let n = self.count(T::MIN_BYTES)?;
        let mut items = Vec::with_capacity(n);
        T::load_many(self, n, &mut items)?;
        Ok(items)
    }

    /// Checks that the whole payload was read.
    pub(crate) fn finish(self) -> Result<(), Malformed> {
        if self.remaining() != 0 {
            return Err(self.malformed(format!("{} bytes left over", self.remaining())));
        }
        Ok(())
    }
}

/// A structure that a snapshot stores as it is, so that reading it back
/// rebuilds nothing.
pub(crate) trait Persist: Sized {
    /// The fewest bytes one value takes (bounds a sequence's count).
    const MIN_BYTES: usize = 1;
    fn save(&self, out: &mut Encoder);
    /// # Errors
    ///
    /// Where and why the bytes are not a value of this type.
    fn load(input: &mut Decoder<'_>) -> Result<Self, Malformed>;
    /// Appends `n` values read one after the other (integers override it
    /// to convert a whole slice at once).
    ///
    /// # Errors
    ///
    /// As [`Persist::load`].
    fn load_many(input: &mut Decoder<'_>, n: usize, out: &mut Vec<Self>) -> Result<(), Malformed> {
        for _ in 0..n {
            out.push(Self::load(input)?);
        }
        Ok(())
    }
}

macro_rules! persist_int {
    ($($ty:ty => $put:ident, $get:ident, $size:literal;)*) => {
        $(impl Persist for $ty {
            const MIN_BYTES: usize = $size;
            #[inline]
            fn save(&self, out: &mut Encoder) {
                out.$put(*self);
            }
            #[inline]
            fn load(input: &mut Decoder<'_>) -> Result<$ty, Malformed> {
                input.$get()
            }
            fn load_many(input: &mut Decoder<'_>, n: usize, out: &mut Vec<$ty>) -> Result<(), Malformed> {
                let bytes = input.take(n.checked_mul($size).ok_or_else(|| input.malformed("a count overflows"))?)?;
                out.extend(bytes.chunks_exact($size).map(|b| {
                    let mut le = [0; $size];
                    le.copy_from_slice(b);
                    <$ty>::from_le_bytes(le)
                }));
                Ok(())
            }
        })*
    };
}
persist_int! {
    u8 => u8, u8, 1;
    u32 => u32, u32, 4;
    u64 => u64, u64, 8;
    i64 => i64, i64, 8;
}

impl Persist for bool {
    fn save(&self, out: &mut Encoder) {
        out.u8(u8::from(*self));
    }
    fn load(input: &mut Decoder<'_>) -> Result<bool, Malformed> {
        match input.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(input.malformed(format!("{other} is not a boolean"))),
        }
    }
}

impl<const N: usize> Persist for [u8; N] {
    const MIN_BYTES: usize = N;
    fn save(&self, out: &mut Encoder) {
        out.bytes.extend_from_slice(self);
    }
    fn load(input: &mut Decoder<'_>) -> Result<[u8; N], Malformed> {
        input.array()
    }
}

impl<A: Persist, B: Persist> Persist for (A, B) {
    const MIN_BYTES: usize = A::MIN_BYTES + B::MIN_BYTES;
    fn save(&self, out: &mut Encoder) {
        self.0.save(out);
        self.1.save(out);
    }
    fn load(input: &mut Decoder<'_>) -> Result<(A, B), Malformed> {
        Ok((A::load(input)?, B::load(input)?))
    }
}

impl Persist for String {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        out.str(self);
    }
    fn load(input: &mut Decoder<'_>) -> Result<String, Malformed> {
        input.str().map(str::to_owned)
    }
}

impl<T: Persist> Persist for Option<T> {
    fn save(&self, out: &mut Encoder) {
        match self {
            None => out.u8(0),
            Some(v) => {
                out.u8(1);
                v.save(out);
            }
        }
    }
    fn load(input: &mut Decoder<'_>) -> Result<Option<T>, Malformed> {
        match input.u8()? {
            0 => Ok(None),
            1 => T::load(input).map(Some),
            other => Err(input.malformed(format!("{other} is not an option tag"))),
        }
    }
}

impl<T: Persist> Persist for Vec<T> {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        out.seq(self.iter());
    }
    fn load(input: &mut Decoder<'_>) -> Result<Vec<T>, Malformed> {
        input.seq()
    }
}

/// The portable roaring format, length-prefixed; reading validates it.
impl Persist for RoaringBitmap {
    const MIN_BYTES: usize = 8;
    fn save(&self, out: &mut Encoder) {
        out.len(self.serialized_size());
        // Writing into a Vec cannot fail.
        let _ = self.serialize_into(&mut out.bytes);
    }
    fn load(input: &mut Decoder<'_>) -> Result<RoaringBitmap, Malformed> {
        let start = input.at;
        let bytes = input.bytes()?;
        RoaringBitmap::deserialize_from(bytes).map_err(|e| Malformed {
            offset: start,
            reason: format!("not a roaring bitmap: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Persist + PartialEq + std::fmt::Debug>(value: T) {
        let mut out = Encoder::default();
        value.save(&mut out);
        let mut input = Decoder::new(&out.bytes);
        assert_eq!(T::load(&mut input).unwrap(), value);
        input.finish().unwrap();
        // Every truncation is an error, never a panic.
        for cut in 0..out.bytes.len() {
            assert!(T::load(&mut Decoder::new(&out.bytes[..cut])).is_err());
        }
    }

    #[test]
    fn values_round_trip_and_truncations_fail() {
        round_trip(7u32);
        round_trip(-3i64);
        round_trip((u64::MAX, true));
        round_trip(vec![Some("é漢".to_owned()), None, Some(String::new())]);
        round_trip([9u8; 16]);
        round_trip((0..100_000u32).step_by(7).collect::<RoaringBitmap>());
    }

    #[test]
    fn absurd_counts_are_refused_before_allocating() {
        let mut out = Encoder::default();
        out.u64(u64::MAX / 2);
        let err = Vec::<u64>::load(&mut Decoder::new(&out.bytes)).unwrap_err();
        assert_eq!(err.offset, 8);
        assert!(err.reason.contains("does not fit"), "{}", err.reason);
        let mut bad = Encoder::default();
        bad.bytes(&[0xff, 0xfe]);
        assert!(String::load(&mut Decoder::new(&bad.bytes)).is_err());
        assert!(bool::load(&mut Decoder::new(&[2])).is_err());
    }
}
