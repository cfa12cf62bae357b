//! A record's place in every list order, held apart from the store it
//! came from: the values of the six sort keys. A marker resolved on one
//! store is compared with the rows of another through it, so every store
//! can answer "the page after this record" with its own access paths.

use std::cmp::Ordering;

use super::field::{Enumerated, FieldColumn, NULL_TIME};
use super::table::Columns;
use super::{OrderKey, Store};
use crate::record::Status;
use crate::timestamp::Timestamp;

/// A record's place in every list order: the values of its six sort keys
/// (`created_at`, `updated_at`, `name`, `status`, `protected_at`, `id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    pub(crate) name: String,
    pub(crate) status: Status,
    pub(crate) protected_at: Option<Timestamp>,
    pub(crate) id: String,
}

impl Position {
    /// Whether a position holds `key`: the six sort keys.
    #[cfg(test)]
    pub(crate) fn holds(key: OrderKey) -> bool {
        !matches!(
            key,
            OrderKey::CheckpointId | OrderKey::ResourceId | OrderKey::ResourceName
        )
    }

    /// Microseconds of a timestamp key (a null `protected_at` as
    /// [`NULL_TIME`], before every date); `None` for other keys.
    pub(crate) fn micros(&self, key: OrderKey) -> Option<i64> {
        match key {
            OrderKey::CreatedAt => Some(self.created_at.as_micros()),
            OrderKey::UpdatedAt => Some(self.updated_at.as_micros()),
            OrderKey::ProtectedAt => {
                Some(self.protected_at.map_or(NULL_TIME, Timestamp::as_micros))
            }
            _ => None,
        }
    }
}

impl Store {
    /// The position of a live row.
    pub(crate) fn position(&self, row: u32) -> Position {
        // The six columns alone: a whole row's view reads every column.
        let (c, row) = (&self.cols, row as usize);
        Position {
            created_at: FieldColumn::<Timestamp>::view(&c.created_at, row),
            updated_at: FieldColumn::<Timestamp>::view(&c.updated_at, row),
            name: c.name.str(row).to_owned(),
            status: c.status.view(row),
            protected_at: c.protected_at.read(row),
            id: c.id.view(row).to_string(),
        }
    }
}

impl Store {
    /// Compares a live row of this store with a live row of `other` by
    /// `key` alone, as [`Store::cmp_key`] compares two rows of one store
    /// (the values, not the stores' own codes). Keys a position does not
    /// hold compare equal.
    #[inline]
    pub(crate) fn cmp_key_across(
        &self,
        key: OrderKey,
        row: u32,
        other: &Store,
        other_row: u32,
    ) -> Ordering {
        let (a, b) = (&self.cols, &other.cols);
        let (ra, rb) = (row as usize, other_row as usize);
        match key {
            OrderKey::CreatedAt => a.created_at.micros(ra).cmp(&b.created_at.micros(rb)),
            OrderKey::UpdatedAt => a.updated_at.micros(ra).cmp(&b.updated_at.micros(rb)),
            OrderKey::ProtectedAt => a.protected_at.micros(ra).cmp(&b.protected_at.micros(rb)),
            OrderKey::Name => a.name.str(ra).as_bytes().cmp(b.name.str(rb).as_bytes()),
            OrderKey::Id => a.id.id(ra).cmp(&b.id.id(rb)),
            OrderKey::Status => a.status.get(ra).code().cmp(&b.status.get(rb).code()),
            OrderKey::CheckpointId | OrderKey::ResourceId | OrderKey::ResourceName => {
                Ordering::Equal
            }
        }
    }
}

impl Columns {
    /// Compares a live row with a position by `key` alone, as
    /// [`Columns::cmp_key`] compares two rows. Keys a position does not
    /// hold ([`Position::holds`]) compare equal.
    #[inline]
    pub(crate) fn cmp_key_at(&self, key: OrderKey, row: usize, at: &Position) -> Ordering {
        match key {
            OrderKey::Name | OrderKey::Id => self.cmp_key_text(key, row, key_text(at, key)),
            OrderKey::Status => self.status.get(row).code().cmp(&at.status.code()),
            OrderKey::CreatedAt => self.created_at.micros(row).cmp(&at.created_at.as_micros()),
            OrderKey::UpdatedAt => self.updated_at.micros(row).cmp(&at.updated_at.as_micros()),
            OrderKey::ProtectedAt => {
                let at = at.protected_at.map_or(NULL_TIME, Timestamp::as_micros);
                self.protected_at.micros(row).cmp(&at)
            }
            OrderKey::CheckpointId | OrderKey::ResourceId | OrderKey::ResourceName => {
                Ordering::Equal
            }
        }
    }

    /// Compares a live row with a position in the total order of `key`'s
    /// ordered index (`key`, then `created_at`, then `id`), as
    /// [`Columns::cmp_rows`] compares two rows.
    #[inline]
    pub(crate) fn cmp_rows_at(&self, key: OrderKey, row: usize, at: &Position) -> Ordering {
        let ord = self.cmp_key_at(key, row, at);
        if ord != Ordering::Equal || key == OrderKey::Id {
            return ord;
        }
        self.cmp_key_at(OrderKey::CreatedAt, row, at)
            .then_with(|| self.cmp_key_at(OrderKey::Id, row, at))
    }
}

fn key_text(at: &Position, key: OrderKey) -> &str {
    if key == OrderKey::Name {
        &at.name
    } else {
        &at.id
    }
}
