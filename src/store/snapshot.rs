//! Snapshots: a store written as it is in memory — columns, dictionaries,
//! bitmaps, ordered and derived indexes — so that reading it back sorts,
//! parses and inserts nothing, plus a position of the caller's (a
//! replication LSN, say) handed back on reading.
//!
//! # Format (version 3)
//!
//! ```text
//! magic    8 bytes  "BDXSNAP\0"
//! version  u32 LE   3
//! section* name_len u8, name (ASCII), payload_len u64 LE, payload,
//!          crc32 u32 LE of everything from name_len to the payload's end
//! ```
//!
//! The sections come in a fixed order: `header` (the position, the number
//! of rows and of records), `rows` (the live and free row bitmaps), one
//! `column.<field>` per field of the table, `bitmap.<field>`,
//! `order.<field>` and `substring.<field>` per index, one
//! `derived.<field>` per derived index. Payloads are encoded by
//! [`crate::codec`]. A reader of another version refuses the file; the
//! version changes whenever a section's encoding does.
//!
//! Reading checks every checksum before decoding, then every bound a later
//! access relies on (each column has the store's number of rows, every row
//! an index names exists, every code a row holds is in its dictionary), so
//! a damaged file is an error and never a panic or a half-built store.
//! That the indexes agree with the columns is not re-derived (that would
//! be the rebuild a snapshot exists to avoid): a file whose checksums pass
//! is trusted to be what `write_snapshot` wrote.

use std::io::{self, Read, Write};

use roaring::RoaringBitmap;

use super::sections::{
    decode_index, malformed, take_part, Bounds, Decoded, Part, Sections, SnapshotError,
    MAX_POSITION_BYTES, SNAPSHOT_MAGIC, SNAPSHOT_VERSION,
};
use super::table::{Columns, Derived};
use super::{BitmapKey, Indexes, OrderKey, Store, TextField};
use crate::codec::{Decoder, Encoder, Malformed, Persist};
use crate::index::{BitmapIndex, SortedSeq, TrigramIndex};

/// A payload longer than this is refused as absurd before reading it.
const MAX_SECTION_BYTES: u64 = 1 << 40;

/// At most this much is reserved for a payload before its bytes arrive
/// (a damaged length then costs no more; real sections are read without
/// regrowing).
const PREALLOCATE_MAX: u64 = 1 << 28;

/// Sections read ahead of their decoding, at most.
const IN_FLIGHT: usize = 3;

/// A store read back from a snapshot, with the position it was written at.
#[derive(Debug)]
pub struct Restored {
    /// The store, as it was written.
    pub store: Store,
    /// The caller's position given to [`Store::write_snapshot`].
    pub position: Vec<u8>,
}

/// One section as read, its checksum not yet verified (that happens on
/// the decoding thread).
struct Section {
    name: &'static str,
    /// Where the section starts in the file.
    start: u64,
    /// Where its payload starts.
    offset: u64,
    /// The name length, name and payload length, as framed.
    head: Vec<u8>,
    payload: Vec<u8>,
    crc: u32,
}

/// Decodes an ordered index: in bounds, and holding every live row.
fn decode_order(input: &mut Decoder<'_>, bounds: Bounds) -> Result<Decoded, Malformed> {
    let seq = decode_index::<SortedSeq<u32>>(input, bounds)?;
    let held = seq
        .downcast_ref::<SortedSeq<u32>>()
        .map_or(0, SortedSeq::len);
    if held as u64 != bounds.live {
        return Err(Malformed {
            offset: 0,
            reason: format!(
                "the ordered index holds {held} rows, the store {} live ones",
                bounds.live
            ),
        });
    }
    Ok(seq)
}

fn decode_plain<T: Persist + Send + 'static>(
    input: &mut Decoder<'_>,
    _: Bounds,
) -> Result<Decoded, Malformed> {
    Ok(Box::new(T::load(input)?))
}

/// Decodes the live and free rows: they partition the rows, and the live
/// ones are the header's records.
fn decode_rows(input: &mut Decoder<'_>, bounds: Bounds) -> Result<Decoded, Malformed> {
    let rows = Rows::load(input)?;
    let bad = |reason: &str| Malformed {
        offset: 0,
        reason: reason.to_owned(),
    };
    if !rows.live.is_disjoint(&rows.free) || rows.live.len() + rows.free.len() != bounds.rows as u64
    {
        return Err(bad("live and free rows do not partition the rows"));
    }
    if rows
        .live
        .max()
        .max(rows.free.max())
        .is_some_and(|m| m as usize >= bounds.rows)
    {
        return Err(bad("a row lies past the number of rows"));
    }
    if rows.live.len() != bounds.live {
        return Err(bad("the live rows are not the header's number of records"));
    }
    Ok(Box::new(rows))
}

/// Every section after the header, in the format's order.
fn parts() -> Vec<Part> {
    let mut parts = vec![Part {
        name: "rows",
        decode: decode_rows,
    }];
    parts.extend_from_slice(Columns::PARTS);
    parts.extend(BitmapKey::ALL.iter().map(|k| Part {
        name: k.section(),
        decode: decode_index::<BitmapIndex>,
    }));
    parts.extend(OrderKey::ALL.iter().map(|k| Part {
        name: k.section(),
        decode: decode_order,
    }));
    parts.extend(TextField::ALL.iter().map(|k| Part {
        name: k.section(),
        decode: decode_plain::<TrigramIndex>,
    }));
    parts.extend_from_slice(Derived::PARTS);
    parts
}

/// The `header` section.
struct Header {
    position: Vec<u8>,
    rows: u64,
    records: u64,
}

impl Persist for Header {
    const MIN_BYTES: usize = 24;
    fn save(&self, out: &mut Encoder) {
        out.bytes(&self.position);
        out.u64(self.rows);
        out.u64(self.records);
    }
    fn load(input: &mut Decoder<'_>) -> Result<Header, Malformed> {
        let position = input.bytes()?.to_vec();
        if position.len() > MAX_POSITION_BYTES {
            return Err(input.malformed(format!(
                "a position of {} bytes is longer than {MAX_POSITION_BYTES}",
                position.len()
            )));
        }
        Ok(Header {
            position,
            rows: input.u64()?,
            records: input.u64()?,
        })
    }
}

/// The `rows` section: live and free rows.
struct Rows {
    live: RoaringBitmap,
    free: RoaringBitmap,
}

impl Persist for Rows {
    const MIN_BYTES: usize = 16;
    fn save(&self, out: &mut Encoder) {
        self.live.save(out);
        self.free.save(out);
    }
    fn load(input: &mut Decoder<'_>) -> Result<Rows, Malformed> {
        Ok(Rows {
            live: Persist::load(input)?,
            free: Persist::load(input)?,
        })
    }
}

/// Reads exactly `buf.len()` bytes, telling a short input apart from a
/// failing one.
fn read_full(
    input: &mut impl Read,
    buf: &mut [u8],
    section: &str,
    at: u64,
) -> Result<(), SnapshotError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => SnapshotError::Truncated {
            section: section.to_owned(),
            offset: at,
        },
        _ => SnapshotError::Io(e),
    })
}

/// Reads one section's frame, which must be `expected`; the payload is
/// read as far as the input goes, never further than its length says.
fn read_section(
    input: &mut impl Read,
    expected: &'static str,
    at: &mut u64,
    mut payload: Vec<u8>,
) -> Result<Section, SnapshotError> {
    let start = *at;
    let mut head = vec![0u8; 1];
    read_full(input, &mut head, expected, start)?;
    let name_len = usize::from(head[0]);
    head.resize(1 + name_len + 8, 0);
    read_full(input, &mut head[1..1 + name_len], expected, start + 1)?;
    if &head[1..1 + name_len] != expected.as_bytes() {
        return Err(SnapshotError::UnexpectedSection {
            expected,
            found: String::from_utf8_lossy(&head[1..1 + name_len]).into_owned(),
            offset: start,
        });
    }
    let size_at = start + 1 + name_len as u64;
    read_full(input, &mut head[1 + name_len..], expected, size_at)?;
    let mut size = [0u8; 8];
    size.copy_from_slice(&head[1 + name_len..]);
    let payload_len = u64::from_le_bytes(size);
    let offset = size_at + 8;
    if payload_len > MAX_SECTION_BYTES {
        return Err(malformed(
            expected,
            size_at,
            format!("a section length of {payload_len} bytes is absurd"),
        ));
    }
    payload.clear();
    payload.reserve(payload_len.min(PREALLOCATE_MAX) as usize);
    let got = input
        .by_ref()
        .take(payload_len)
        .read_to_end(&mut payload)
        .map_err(SnapshotError::Io)?;
    if (got as u64) < payload_len {
        return Err(SnapshotError::Truncated {
            section: expected.to_owned(),
            offset: offset + got as u64,
        });
    }
    let mut crc = [0u8; 4];
    read_full(input, &mut crc, expected, offset + payload_len)?;
    *at = offset + payload_len + 4;
    Ok(Section {
        name: expected,
        start,
        offset,
        head,
        payload,
        crc: u32::from_le_bytes(crc),
    })
}

/// Verifies a section's checksum, then decodes it with `decode`.
fn decode_section(
    section: &Section,
    decode: impl FnOnce(&mut Decoder<'_>) -> Result<Decoded, Malformed>,
) -> Result<Decoded, SnapshotError> {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&section.head);
    hasher.update(&section.payload);
    if hasher.finalize() != section.crc {
        return Err(SnapshotError::ChecksumMismatch {
            section: section.name.to_owned(),
            offset: section.start,
        });
    }
    let at = |m: Malformed| malformed(section.name, section.offset + m.offset as u64, m.reason);
    let mut input = Decoder::new(&section.payload);
    let value = decode(&mut input).map_err(at)?;
    input.finish().map_err(at)?;
    Ok(value)
}

impl Store {
    /// Writes the store as a snapshot, with `position` (the caller's: a
    /// replication LSN, say; at most [`MAX_POSITION_BYTES`]) to be handed
    /// back by [`Store::read_snapshot`]. Returns the bytes written. The
    /// caller opens and flushes the writer; the library does no I/O of its
    /// own.
    ///
    /// ```
    /// use backdex::{records_from_json, Store};
    /// let mut store = Store::new();
    /// store.upsert(&records_from_json(&serde_json::json!([{
    ///     "id": "b1", "checkpoint_id": "c1", "project_id": "p1", "name": "n",
    ///     "status": "available", "resource_id": "vm1", "resource_type": "OS::Nova::Server",
    ///     "created_at": "2020-02-21T07:00:54", "updated_at": "2020-02-21T07:07:25"
    /// }]))?)?;
    /// let mut file = Vec::new();
    /// store.write_snapshot(&mut file, b"lsn 0/16B3748")?;
    /// let restored = Store::read_snapshot(&file[..])?;
    /// assert_eq!(restored.position, b"lsn 0/16B3748");
    /// assert_eq!(restored.store.get("b1"), store.get("b1"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`SnapshotError::PositionTooLong`], or [`SnapshotError::Io`] when
    /// the writer fails (what was written is then incomplete).
    pub fn write_snapshot<W: Write>(
        &self,
        out: &mut W,
        position: &[u8],
    ) -> Result<u64, SnapshotError> {
        if position.len() > MAX_POSITION_BYTES {
            return Err(SnapshotError::PositionTooLong {
                bytes: position.len(),
            });
        }
        out.write_all(&SNAPSHOT_MAGIC).map_err(SnapshotError::Io)?;
        out.write_all(&SNAPSHOT_VERSION.to_le_bytes())
            .map_err(SnapshotError::Io)?;
        let mut sections = Sections::after(out, 12);
        let header = Header {
            position: position.to_vec(),
            rows: self.cols.rows() as u64,
            records: self.live.len(),
        };
        sections.put("header", &header)?;
        // The bitmaps are cloned only to be framed (a bitmap clone is a
        // copy of its containers; small next to the columns).
        sections.put(
            "rows",
            &Rows {
                live: self.live.clone(),
                free: self.free.clone(),
            },
        )?;
        self.cols.save_sections(&mut sections)?;
        let x = &self.idx;
        for (key, index) in BitmapKey::ALL.iter().zip(&x.bitmaps) {
            sections.put(key.section(), index)?;
        }
        for (key, seq) in OrderKey::ALL.iter().zip(&x.orders) {
            sections.put(key.section(), seq)?;
        }
        for (field, grams) in TextField::ALL.iter().zip(&x.substrings) {
            sections.put(field.section(), grams)?;
        }
        x.derived.save_sections(&mut sections)?;
        Ok(sections.written())
    }

    /// Reads a snapshot written by [`Store::write_snapshot`]: the store as
    /// it was, and the position it was written with. Nothing is rebuilt
    /// but the dictionaries' lookup maps; every checksum and bound is
    /// checked first.
    ///
    /// # Errors
    ///
    /// A [`SnapshotError`] naming the section and the offset for a file
    /// that is not a snapshot, of another version, truncated, damaged or
    /// malformed; [`SnapshotError::Io`] when the reader fails. No store is
    /// returned then.
    pub fn read_snapshot<R: Read>(mut input: R) -> Result<Restored, SnapshotError> {
        let mut magic = Vec::with_capacity(8);
        input
            .by_ref()
            .take(8)
            .read_to_end(&mut magic)
            .map_err(SnapshotError::Io)?;
        if magic != SNAPSHOT_MAGIC {
            return Err(SnapshotError::NotASnapshot { found: magic });
        }
        let mut version = [0u8; 4];
        read_full(&mut input, &mut version, "version", 8)?;
        let version = u32::from_le_bytes(version);
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion {
                found: version,
                supported: SNAPSHOT_VERSION,
            });
        }
        let mut at = 12;
        let header = read_section(&mut input, "header", &mut at, Vec::new())?;
        let header: Header = take_part(&mut std::iter::once(decode_section(&header, |d| {
            Ok(Box::new(Header::load(d)?))
        })?))?;
        let bounds = Bounds {
            rows: usize::try_from(header.rows)
                .map_err(|_| malformed("header", 12, "more rows than this machine can address"))?,
            live: header.records,
        };
        // The sections are read here, in order, and each is checked and
        // decoded on the pool as soon as it is in; decoding overlaps reading.
        let parts = parts();
        let mut decoded: Vec<Option<Result<Decoded, SnapshotError>>> =
            parts.iter().map(|_| None).collect();
        let mut framing = Ok(());
        // A few payload buffers go round: reading touches their pages once
        // instead of a fresh buffer's per section.
        let (give_back, returned) = std::sync::mpsc::channel::<Vec<u8>>();
        let mut buffers = 0;
        rayon::in_place_scope(|scope| {
            for (part, slot) in parts.iter().zip(decoded.iter_mut()) {
                let buffer = match returned.try_recv() {
                    Ok(buffer) => buffer,
                    Err(_) if buffers < IN_FLIGHT => {
                        buffers += 1;
                        Vec::new()
                    }
                    Err(_) => returned.recv().unwrap_or_default(),
                };
                match read_section(&mut input, part.name, &mut at, buffer) {
                    Ok(section) => {
                        let give_back = GiveBack(give_back.clone(), section);
                        scope.spawn(move |_| {
                            let section = &give_back.1;
                            *slot = Some(decode_section(section, |d| (part.decode)(d, bounds)));
                        });
                    }
                    Err(e) => {
                        framing = Err(e);
                        return;
                    }
                }
            }
            let mut rest = [0u8; 1];
            framing = match input.read(&mut rest) {
                Ok(0) => Ok(()),
                Ok(_) => Err(SnapshotError::TrailingBytes { offset: at }),
                Err(e) => Err(SnapshotError::Io(e)),
            };
        });
        // The first fault by position: a section that was read but does
        // not check comes before the framing fault that stopped reading.
        let mut parts_in = Vec::with_capacity(decoded.len());
        for slot in decoded {
            match slot {
                Some(result) => parts_in.push(result?),
                None => break,
            }
        }
        framing?;
        let store = assemble(&mut parts_in.into_iter())?;
        Ok(Restored {
            store,
            position: header.position,
        })
    }
}

/// A section being decoded; its payload buffer goes back to the reader
/// when the decoding is over, however it ends (the reader may be waiting
/// for a buffer).
struct GiveBack(std::sync::mpsc::Sender<Vec<u8>>, Section);

impl Drop for GiveBack {
    fn drop(&mut self) {
        // The reader may be gone (it stopped at a fault).
        let _ = self.0.send(std::mem::take(&mut self.1.payload));
    }
}

/// The store from its decoded sections, in the order of [`parts`].
fn assemble(parts: &mut impl Iterator<Item = Decoded>) -> Result<Store, SnapshotError> {
    let rows: Rows = take_part(parts)?;
    let cols = Columns::assemble(parts)?;
    let mut idx = Indexes::default();
    for slot in &mut idx.bitmaps {
        *slot = take_part(parts)?;
    }
    for slot in &mut idx.orders {
        *slot = take_part(parts)?;
    }
    for slot in &mut idx.substrings {
        *slot = take_part(parts)?;
    }
    idx.derived = Derived::assemble(parts)?;
    Ok(Store {
        cols,
        idx,
        live: rows.live,
        free: rows.free,
    })
}
