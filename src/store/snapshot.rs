//! Snapshots: a store written as it is in memory — columns, dictionaries,
//! bitmaps, ordered and derived indexes — so that reading it back sorts,
//! parses and inserts nothing, plus a position of the caller's (a
//! replication LSN, say) handed back on reading.
//!
//! # Format (version 1)
//!
//! ```text
//! magic    8 bytes  "BDXSNAP\0"
//! version  u32 LE   1
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

use std::fmt;
use std::io::{self, Read, Write};

use roaring::RoaringBitmap;

use super::table::{Columns, Derived};
use super::{BitmapKey, Indexes, OrderKey, Store, TextField};
use crate::codec::{Decoder, Encoder, Malformed, Persist};
use crate::index::{BitmapIndex, SortedSeq, TrigramIndex};

/// The first eight bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"BDXSNAP\0";

/// The format version this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

/// The longest caller position a snapshot keeps.
pub const MAX_POSITION_BYTES: usize = 4096;

/// A payload longer than this is refused as absurd before reading it.
const MAX_SECTION_BYTES: u64 = 1 << 40;

/// Why a snapshot cannot be written or read. Offsets count bytes from the
/// start of the file.
#[derive(Debug)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The caller's reader or writer failed.
    Io(io::Error),
    /// The input does not start with [`SNAPSHOT_MAGIC`].
    NotASnapshot {
        /// The first bytes found (up to eight).
        found: Vec<u8>,
    },
    /// The snapshot was written in a format version this build cannot read.
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The input ends inside a section, or before a section that must come.
    Truncated {
        /// The section being read, or expected.
        section: String,
        /// Where the input ended.
        offset: u64,
    },
    /// A section other than the expected one, at this place.
    UnexpectedSection {
        /// The section the format puts here.
        expected: &'static str,
        /// The name found (lossily decoded).
        found: String,
        /// Where the section starts.
        offset: u64,
    },
    /// A section's bytes do not match its checksum.
    ChecksumMismatch {
        /// The section.
        section: String,
        /// Where the section starts.
        offset: u64,
    },
    /// A section's checksum matches but its content is not what the format
    /// allows.
    Malformed {
        /// The section.
        section: String,
        /// Where the problem was found.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Bytes follow the last section.
    TrailingBytes {
        /// Where they start.
        offset: u64,
    },
    /// The position given to [`Store::write_snapshot`] is too long.
    PositionTooLong {
        /// Its length.
        bytes: usize,
    },
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::Io(e) => write!(f, "snapshot I/O failed: {e}"),
            SnapshotError::NotASnapshot { found } => write!(
                f,
                "not a backdex snapshot: it starts with \"{}\" instead of \"{}\"",
                found.escape_ascii(),
                SNAPSHOT_MAGIC.escape_ascii()
            ),
            SnapshotError::UnsupportedVersion { found, supported } => write!(
                f,
                "snapshot format version {found} cannot be read by this build, which reads version {supported}"
            ),
            SnapshotError::Truncated { section, offset } => {
                write!(f, "snapshot truncated in section `{section}` at offset {offset}")
            }
            SnapshotError::UnexpectedSection {
                expected,
                found,
                offset,
            } => write!(
                f,
                "snapshot section at offset {offset} is {}, expected `{expected}`",
                crate::quote::Named(found)
            ),
            SnapshotError::ChecksumMismatch { section, offset } => write!(
                f,
                "snapshot section `{section}` at offset {offset} does not match its checksum (the file is damaged)"
            ),
            SnapshotError::Malformed {
                section,
                offset,
                reason,
            } => write!(f, "snapshot section `{section}` is malformed at offset {offset}: {reason}"),
            SnapshotError::TrailingBytes { offset } => {
                write!(f, "snapshot has bytes after its last section, from offset {offset}")
            }
            SnapshotError::PositionTooLong { bytes } => write!(
                f,
                "a snapshot position holds at most {MAX_POSITION_BYTES} bytes, this one {bytes}"
            ),
        }
    }
}

impl std::error::Error for SnapshotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SnapshotError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// A store read back from a snapshot, with the position it was written at.
#[derive(Debug)]
pub struct Restored {
    /// The store, as it was written.
    pub store: Store,
    /// The caller's position given to [`Store::write_snapshot`].
    pub position: Vec<u8>,
}

/// Writes sections one at a time: each is encoded, framed and written
/// before the next, so writing holds one section's bytes at a time.
pub(crate) struct Sections<'w> {
    out: &'w mut dyn Write,
    written: u64,
    buffer: Encoder,
}

impl Sections<'_> {
    /// Writes `value` as the section `name`.
    pub(crate) fn put<T: Persist>(&mut self, name: &str, value: &T) -> Result<(), SnapshotError> {
        self.buffer.bytes.clear();
        value.save(&mut self.buffer);
        let payload = &self.buffer.bytes;
        let mut head = Vec::with_capacity(1 + name.len() + 8);
        head.push(name.len() as u8);
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.update(payload);
        self.out.write_all(&head).map_err(SnapshotError::Io)?;
        self.out.write_all(payload).map_err(SnapshotError::Io)?;
        self.out
            .write_all(&crc.finalize().to_le_bytes())
            .map_err(SnapshotError::Io)?;
        self.written += (head.len() + payload.len() + 4) as u64;
        Ok(())
    }
}

/// One section's payload as read, checksum verified.
struct Section {
    name: &'static str,
    /// Where the payload starts in the file.
    offset: u64,
    payload: Vec<u8>,
}

/// The sections of a snapshot being read, in the format's order.
pub(crate) struct Loaded<'a> {
    sections: std::slice::Iter<'a, Section>,
}

impl Loaded<'_> {
    /// Decodes the next section, which must be `name`, and checks the
    /// decoded value with `fits`.
    pub(crate) fn get_where<T: Persist>(
        &mut self,
        name: &'static str,
        fits: impl FnOnce(&T) -> Result<(), &'static str>,
    ) -> Result<T, SnapshotError> {
        let section = self
            .sections
            .next()
            .filter(|s| s.name == name)
            .ok_or_else(|| malformed(name, 0, "the section is missing (a bug of the reader)"))?;
        let at = |m: Malformed| malformed(name, section.offset + m.offset as u64, m.reason);
        let mut input = Decoder::new(&section.payload);
        let value = T::load(&mut input).map_err(at)?;
        input.finish().map_err(at)?;
        fits(&value).map_err(|reason| malformed(name, section.offset, reason))?;
        Ok(value)
    }

    pub(crate) fn get<T: Persist>(&mut self, name: &'static str) -> Result<T, SnapshotError> {
        self.get_where(name, |_| Ok(()))
    }
}

fn malformed(section: &str, offset: u64, reason: impl Into<String>) -> SnapshotError {
    SnapshotError::Malformed {
        section: section.to_owned(),
        offset,
        reason: reason.into(),
    }
}

/// The section names of the format, in order.
fn section_names() -> Vec<&'static str> {
    let mut names = vec!["header", "rows"];
    names.extend(Columns::SECTIONS);
    names.extend(BitmapKey::ALL.iter().map(|k| k.section()));
    names.extend(OrderKey::ALL.iter().map(|k| k.section()));
    names.extend(TextField::ALL.iter().map(|k| k.section()));
    names.extend(Derived::SECTIONS);
    names
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

/// Reads and checks one section's frame, which must be `expected`.
fn read_section(
    input: &mut impl Read,
    expected: &'static str,
    at: &mut u64,
) -> Result<Section, SnapshotError> {
    let start = *at;
    let truncated = |offset| SnapshotError::Truncated {
        section: expected.to_owned(),
        offset,
    };
    let mut len = [0u8; 1];
    read_full(input, &mut len, expected, start)?;
    let mut name = vec![0u8; len[0] as usize];
    read_full(input, &mut name, expected, start + 1)?;
    if name != expected.as_bytes() {
        return Err(SnapshotError::UnexpectedSection {
            expected,
            found: String::from_utf8_lossy(&name).into_owned(),
            offset: start,
        });
    }
    let mut size = [0u8; 8];
    read_full(input, &mut size, expected, start + 1 + name.len() as u64)?;
    let payload_len = u64::from_le_bytes(size);
    let payload_at = start + 1 + name.len() as u64 + 8;
    if payload_len > MAX_SECTION_BYTES {
        return Err(malformed(
            expected,
            payload_at - 8,
            format!("a section length of {payload_len} bytes is absurd"),
        ));
    }
    // Read what is there, not what the length claims: a damaged length
    // costs no more memory than the file holds.
    let mut payload = Vec::new();
    let got = input
        .by_ref()
        .take(payload_len)
        .read_to_end(&mut payload)
        .map_err(SnapshotError::Io)?;
    if (got as u64) < payload_len {
        return Err(truncated(payload_at + got as u64));
    }
    let mut crc = [0u8; 4];
    read_full(input, &mut crc, expected, payload_at + payload_len)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(&name);
    hasher.update(&size);
    hasher.update(&payload);
    if hasher.finalize() != u32::from_le_bytes(crc) {
        return Err(SnapshotError::ChecksumMismatch {
            section: expected.to_owned(),
            offset: start,
        });
    }
    *at = payload_at + payload_len + 4;
    Ok(Section {
        name: expected,
        offset: payload_at,
        payload,
    })
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
        let mut sections = Sections {
            out,
            written: 12,
            buffer: Encoder::default(),
        };
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
        Ok(sections.written)
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
        let sections = section_names()
            .into_iter()
            .map(|name| read_section(&mut input, name, &mut at))
            .collect::<Result<Vec<Section>, _>>()?;
        let mut rest = [0u8; 1];
        match input.read(&mut rest) {
            Ok(0) => {}
            Ok(_) => return Err(SnapshotError::TrailingBytes { offset: at }),
            Err(e) => return Err(SnapshotError::Io(e)),
        }
        let (header, store) = decode(&sections)?;
        Ok(Restored {
            store,
            position: header.position,
        })
    }
}

/// Decodes the sections and checks the bounds across them. The columns
/// and the indexes decode on two threads.
fn decode(sections: &[Section]) -> Result<(Header, Store), SnapshotError> {
    let columns_end = 2 + Columns::SECTIONS.len();
    let mut loaded = Loaded {
        sections: sections[..2].iter(),
    };
    let header: Header = loaded.get("header")?;
    let rows_count = header.rows;
    let rows: Rows = loaded.get_where("rows", |r: &Rows| {
        let all = r.live.len() + r.free.len();
        if !r.live.is_disjoint(&r.free) || all != rows_count {
            return Err("live and free rows do not partition the rows");
        }
        if r.live.len() != header.records {
            return Err("the live rows are not the header's number of records");
        }
        Ok(())
    })?;
    let n = usize::try_from(rows_count).map_err(|_| malformed("header", 12, "too many rows"))?;
    if rows
        .live
        .max()
        .max(rows.free.max())
        .is_some_and(|m| m as usize >= n)
    {
        return Err(malformed("rows", 12, "a row lies past the number of rows"));
    }
    let (cols, idx) = rayon::join(
        || {
            Columns::load_sections(
                &mut Loaded {
                    sections: sections[2..columns_end].iter(),
                },
                n,
            )
        },
        || {
            load_indexes(
                &mut Loaded {
                    sections: sections[columns_end..].iter(),
                },
                n,
                rows.live.len(),
            )
        },
    );
    let store = Store {
        cols: cols?,
        idx: idx?,
        live: rows.live,
        free: rows.free,
    };
    Ok((header, store))
}

/// The indexes, each checked to name only rows below `rows`; each ordered
/// index holds every live row.
fn load_indexes(input: &mut Loaded<'_>, rows: usize, live: u64) -> Result<Indexes, SnapshotError> {
    let below = |max: Option<u32>| max.is_none_or(|m| (m as usize) < rows);
    let mut idx = Indexes::default();
    for (key, slot) in BitmapKey::ALL.iter().zip(&mut idx.bitmaps) {
        *slot = input.get_where(key.section(), |b: &BitmapIndex| {
            below(b.max_row())
                .then_some(())
                .ok_or("a bitmap names a row past the last")
        })?;
    }
    for (key, slot) in OrderKey::ALL.iter().zip(&mut idx.orders) {
        *slot = input.get_where(key.section(), |seq: &SortedSeq<u32>| {
            if seq.len() as u64 != live {
                return Err("the ordered index does not hold every live row");
            }
            below(seq.iter().copied().max())
                .then_some(())
                .ok_or("the ordered index names a row past the last")
        })?;
    }
    for (field, slot) in TextField::ALL.iter().zip(&mut idx.substrings) {
        *slot = input.get::<TrigramIndex>(field.section())?;
    }
    idx.derived = Derived::load_sections(input, rows)?;
    Ok(idx)
}
