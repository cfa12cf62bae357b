//! The pieces of the snapshot format that each stored part uses: its
//! constants, [`SnapshotError`], the section writer, and the decoders
//! that check a section against the store's size. `snapshot.rs` frames,
//! reads and assembles the sections; the column and index tables
//! (`table.rs`) name their sections here.

use std::any::Any;
use std::fmt;
use std::io::{self, Write};

use super::field::FieldColumn;
use crate::batch::CheckValue;
use crate::codec::{Decoder, Encoder, Malformed, Persist};
use crate::index::RowBound;

/// The first eight bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"BDXSNAP\0";

/// The format version this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 3;

/// The longest caller position a snapshot keeps.
pub const MAX_POSITION_BYTES: usize = 4096;

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

/// Writes sections one at a time: each is encoded, framed and written
/// before the next, so writing holds one section's bytes at a time.
pub(crate) struct Sections<'w> {
    out: &'w mut dyn Write,
    written: u64,
    buffer: Encoder,
}

impl<'w> Sections<'w> {
    /// A writer of sections to `out`, which already holds `written` bytes.
    pub(crate) fn after(out: &'w mut dyn Write, written: u64) -> Sections<'w> {
        Sections {
            out,
            written,
            buffer: Encoder::default(),
        }
    }

    /// The bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

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

/// The store's size, known from the header before the other sections are
/// decoded: what each decoder checks its section against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Rows, live or free.
    pub(crate) rows: usize,
    /// Live rows.
    pub(crate) live: u64,
}

/// A decoded section; the part that assembles it knows its type.
pub(crate) type Decoded = Box<dyn Any + Send>;

/// A section of the format: its name and how its payload decodes.
#[derive(Clone, Copy)]
pub(crate) struct Part {
    pub(crate) name: &'static str,
    pub(crate) decode: fn(&mut Decoder<'_>, Bounds) -> Result<Decoded, Malformed>,
}

/// Decodes a column and checks that it has the store's rows.
pub(crate) fn decode_column<C, V>(
    input: &mut Decoder<'_>,
    bounds: Bounds,
) -> Result<Decoded, Malformed>
where
    C: FieldColumn<V> + Persist + Send + 'static,
    V: CheckValue,
{
    let column = C::load(input)?;
    if !column.fits(bounds.rows) {
        return Err(Malformed {
            offset: 0,
            reason: format!("the column does not have the store's {} rows", bounds.rows),
        });
    }
    Ok(Box::new(column))
}

/// Decodes an index and checks that it names only rows the store has.
pub(crate) fn decode_index<I>(input: &mut Decoder<'_>, bounds: Bounds) -> Result<Decoded, Malformed>
where
    I: Persist + RowBound + Send + 'static,
{
    let index = I::load(input)?;
    if index.max_row().is_some_and(|r| r as usize >= bounds.rows) {
        return Err(Malformed {
            offset: 0,
            reason: format!(
                "the index names a row past the store's {} rows",
                bounds.rows
            ),
        });
    }
    Ok(Box::new(index))
}

/// The next decoded part, as the type its place in the format gives.
pub(crate) fn take_part<T: 'static>(
    parts: &mut impl Iterator<Item = Decoded>,
) -> Result<T, SnapshotError> {
    parts
        .next()
        .and_then(|part| part.downcast::<T>().ok())
        .map(|part| *part)
        .ok_or_else(|| malformed("?", 0, "the sections do not assemble (a bug of the reader)"))
}

pub(crate) fn malformed(section: &str, offset: u64, reason: impl Into<String>) -> SnapshotError {
    SnapshotError::Malformed {
        section: section.to_owned(),
        offset,
        reason: reason.into(),
    }
}
