//! The typed form of a request: which API, who asks, which records it
//! narrows to, in which order, which page. Parsed from a route and a query
//! string by `api`, or built directly by library users.

// Input reaches this module: no indexing that could panic on it.
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

mod error;
mod validate;

use std::cmp::Ordering;
use std::net::IpAddr;

use crate::record::{ImageType, MemberStatus, Status};
use crate::timestamp::Timestamp;

pub use error::QueryError;
pub(crate) use validate::{cross_checks, validate, OFFSET_MAX};

/// Who asks: set by the server that authenticated the request (§2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Scope {
    /// The caller's project; the route's project must equal it.
    pub project_id: String,
    /// Whether the caller may use `all_tenants=true`.
    #[serde(default)]
    pub admin: bool,
    /// `None`: project-wide permission. `Some(list)`: only records whose
    /// `enterprise_project_id` is in the list are ever visible.
    #[serde(default)]
    pub granted_eps: Option<Vec<String>>,
}

impl Scope {
    /// A project-wide, non-admin scope.
    pub fn project(project_id: impl Into<String>) -> Scope {
        Scope {
            project_id: project_id.into(),
            admin: false,
            granted_eps: None,
        }
    }
}

/// The four read APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `GET /v1/{project_id}/checkpoint_items`
    V1List,
    /// `GET /v1/{project_id}/checkpoint_items/count`
    V1Count,
    /// `GET /v3/{project_id}/backups`
    V3List,
    /// `GET /v2/{project_id}/os-vendor-backup-sharing/count`
    ShareCount,
}

/// v3 `own_type`: whose records a v3 list sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OwnType {
    /// The caller's own records (the default).
    #[default]
    Private,
    /// Other projects' records shared to the caller.
    Shared,
    /// Both.
    AllGranted,
}

/// v3 `enterprise_project_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnterpriseProject {
    /// Exactly this enterprise project (must be granted when the scope is
    /// restricted).
    Id(String),
    /// `all_granted_eps`: every granted enterprise project.
    AllGranted,
}

/// The filters of a request; every one narrows, and they combine with AND
/// (§3). `None` / empty means "not given". Start from [`Filter::default`]
/// (or [`Query::new`]) and set fields: new filters may be added.
///
/// ```
/// use backdex::{Api, Query, Status};
/// let mut q = Query::new(Api::V1Count);
/// q.filter.status = vec![Status::Error];
/// q.filter.resource_az = Some("az1".into());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Filter {
    /// Status is one of these (v1 and share take one; v3 may repeat).
    pub status: Vec<Status>,
    /// `name` contains this (bytes, case-sensitive).
    pub name: Option<String>,
    /// `resource_name` contains this.
    pub resource_name: Option<String>,
    /// `resource_az` equals (`az`, `resource_az`, `availability_zone`).
    pub resource_az: Option<String>,
    /// `resource_id` equals (`resource_id`, share's `volume_id`).
    pub resource_id: Option<String>,
    /// `checkpoint_id` equals.
    pub checkpoint_id: Option<String>,
    /// `resource_type` equals.
    pub resource_type: Option<String>,
    /// `image_type` equals.
    pub image_type: Option<ImageType>,
    /// `policy_id` equals (v1).
    pub policy_id: Option<String>,
    /// `vault_id` equals (v3).
    pub vault_id: Option<String>,
    /// `parent_id` equals (v3).
    pub parent_id: Option<String>,
    /// `dec` equals.
    pub dec: Option<bool>,
    /// One of the record's addresses equals (v1).
    pub ip: Option<IpAddr>,
    /// `created_at` at or after.
    pub start_time: Option<Timestamp>,
    /// `created_at` at or before.
    pub end_time: Option<Timestamp>,
    /// The shared part only has members in this status (v3).
    pub member_status: Option<MemberStatus>,
    /// v3 `enterprise_project_id`.
    pub enterprise_project: Option<EnterpriseProject>,
    /// The backup's `id` equals (share's `backup_id`).
    pub backup_id: Option<String>,
    /// The backup's owner equals (share's `from_project_id`).
    pub from_project_id: Option<String>,
    /// The member's destination equals (share's `to_project_id`).
    pub to_project_id: Option<String>,
}

/// A sort key (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortKey {
    /// `created_at`
    CreatedAt,
    /// `updated_at`
    UpdatedAt,
    /// `name` (bytes)
    Name,
    /// `status` (by its name)
    Status,
    /// `protected_at` (null smallest)
    ProtectedAt,
    /// `id` (bytes; unique, so it ends every order)
    Id,
}

impl SortKey {
    /// Parses a key name exactly (case-sensitive).
    pub fn parse(text: &str) -> Option<SortKey> {
        Some(match text {
            "created_at" => SortKey::CreatedAt,
            "updated_at" => SortKey::UpdatedAt,
            "name" => SortKey::Name,
            "status" => SortKey::Status,
            "protected_at" => SortKey::ProtectedAt,
            "id" => SortKey::Id,
            _ => return None,
        })
    }

    /// The key's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::CreatedAt => "created_at",
            SortKey::UpdatedAt => "updated_at",
            SortKey::Name => "name",
            SortKey::Status => "status",
            SortKey::ProtectedAt => "protected_at",
            SortKey::Id => "id",
        }
    }
}

/// A sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Smallest first.
    Asc,
    /// Largest first (the default).
    #[default]
    Desc,
}

impl Direction {
    /// The direction's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Asc => "asc",
            Direction::Desc => "desc",
        }
    }

    /// Applies the direction to an ascending comparison.
    #[inline]
    pub fn apply(self, ord: Ordering) -> Ordering {
        match self {
            Direction::Asc => ord,
            Direction::Desc => ord.reverse(),
        }
    }
}

/// The order of a list: the given keys with their directions (§4). The
/// total order appends `created_at` and `id` in the first key's direction
/// where they are not given ([`Sort::effective`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    keys: Vec<(SortKey, Direction)>,
}

impl Default for Sort {
    /// `created_at:desc`.
    fn default() -> Self {
        Sort {
            keys: vec![(SortKey::CreatedAt, Direction::Desc)],
        }
    }
}

impl Sort {
    /// Sorts by one key.
    pub fn by(key: SortKey, direction: Direction) -> Sort {
        Sort {
            keys: vec![(key, direction)],
        }
    }

    /// Adds a further key; a key given twice is ignored the second time
    /// (the URL form rejects it instead).
    pub fn then(mut self, key: SortKey, direction: Direction) -> Sort {
        if !self.keys.iter().any(|(k, _)| *k == key) {
            self.keys.push((key, direction));
        }
        self
    }

    pub(crate) fn from_keys(keys: Vec<(SortKey, Direction)>) -> Sort {
        Sort { keys }
    }

    /// The keys as given.
    pub fn keys(&self) -> &[(SortKey, Direction)] {
        &self.keys
    }

    /// The total order: the given keys up to `id`, then `created_at` and
    /// `id` where not given, in the first key's direction.
    pub fn effective(&self) -> Vec<(SortKey, Direction)> {
        let first = self.keys.first().map_or(Direction::Desc, |k| k.1);
        let mut out = Vec::with_capacity(self.keys.len() + 2);
        for &(key, dir) in &self.keys {
            out.push((key, dir));
            if key == SortKey::Id {
                return out;
            }
        }
        if !out.iter().any(|(k, _)| *k == SortKey::CreatedAt) {
            out.push((SortKey::CreatedAt, first));
        }
        out.push((SortKey::Id, first));
        out
    }
}

/// The most entries a page holds by default, and the cap on `limit`.
pub const DEFAULT_MAX_LIMIT: usize = 1000;

/// Which part of the order a list returns (§4): [`Page::default`] is the
/// first 1,000 entries; fields may be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page {
    /// Start strictly after the record with this id.
    pub marker: Option<String>,
    /// Skip this many entries after the marker position.
    pub offset: usize,
    /// At most this many entries.
    pub limit: usize,
}

impl Default for Page {
    fn default() -> Self {
        Page::first(DEFAULT_MAX_LIMIT)
    }
}

impl Page {
    /// The first `limit` entries.
    pub fn first(limit: usize) -> Page {
        Page {
            marker: None,
            offset: 0,
            limit,
        }
    }

    /// `limit` entries strictly after the record with id `marker`.
    pub fn after(marker: impl Into<String>, limit: usize) -> Page {
        Page {
            marker: Some(marker.into()),
            ..Page::first(limit)
        }
    }

    /// Skips `offset` entries after the marker position.
    pub fn with_offset(self, offset: usize) -> Page {
        Page { offset, ..self }
    }
}

/// One request, typed: build it with [`Query::new`] and set fields (new
/// fields may be added).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Query {
    /// Which API answers.
    pub api: Api,
    /// `all_tenants=true` (admin only).
    pub all_tenants: bool,
    /// v3 `own_type`.
    pub own_type: OwnType,
    /// share.count `share_to_me`.
    pub share_to_me: bool,
    /// The filters.
    pub filter: Filter,
    /// The order (lists).
    pub sort: Sort,
    /// The page (lists).
    pub page: Page,
}

impl Query {
    /// A request of `api` with no parameters.
    pub fn new(api: Api) -> Query {
        Query {
            api,
            all_tenants: false,
            own_type: OwnType::Private,
            share_to_me: false,
            filter: Filter::default(),
            sort: Sort::default(),
            page: Page::default(),
        }
    }
}
