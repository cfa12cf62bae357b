//! Routes and query strings to a typed [`Query`] (SEMANTICS §2-§4, §9),
//! in four steps: the route ([`route`]), each parameter's name
//! ([`param`]), each value ([`apply`]), and the checks across parameters
//! (`query::cross_checks`, shared with typed queries).

use std::collections::HashSet;

use crate::query::{
    cross_checks, Api, Direction, EnterpriseProject, OwnType, Query, QueryError, Scope, Sort,
    SortKey, OFFSET_MAX,
};
use crate::quote::Quoted;
use crate::record::{ImageType, MemberStatus, Status};
use crate::timestamp::Timestamp;

/// The longest `sort` value accepted, in characters.
const SORT_MAX_CHARS: usize = 255;

/// The API of a raw path, and the route's project segment.
///
/// # Errors
///
/// [`QueryError::NotFound`] for anything but the four routes, matched
/// exactly (no trailing slash, no empty project, case-sensitive).
pub(crate) fn route(path: &str) -> Result<(Api, &str), QueryError> {
    let not_found = || QueryError::NotFound {
        path: path.to_owned(),
    };
    let parts: Vec<&str> = path.split('/').collect();
    let (api, project) = match parts.as_slice() {
        ["", "v1", p, "checkpoint_items"] => (Api::V1List, *p),
        ["", "v1", p, "checkpoint_items", "count"] => (Api::V1Count, *p),
        ["", "v3", p, "backups"] => (Api::V3List, *p),
        ["", "v2", p, "os-vendor-backup-sharing", "count"] => (Api::ShareCount, *p),
        _ => return Err(not_found()),
    };
    if project.is_empty() {
        return Err(not_found());
    }
    Ok((api, project))
}

/// What a parameter name means for one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Param {
    Status,
    Name,
    ResourceName,
    ResourceAz,
    ResourceId,
    CheckpointId,
    ResourceType,
    ImageType,
    PolicyId,
    VaultId,
    ParentId,
    EnterpriseProjectId,
    Dec,
    Ip,
    StartTime,
    EndTime,
    AllTenants,
    OwnType,
    MemberStatus,
    Sort,
    Marker,
    Limit,
    Offset,
    BackupId,
    FromProjectId,
    ToProjectId,
    ShareToMe,
    /// Accepted and ignored entirely (v1.count's paging parameters).
    Ignored,
    /// Known to the CBR SDK, but backdex holds no data to answer it.
    Unsupported,
}

fn param(api: Api, name: &str) -> Option<Param> {
    use Param as P;
    let common = |name: &str| -> Option<Param> {
        Some(match name {
            "status" => P::Status,
            "name" => P::Name,
            "resource_name" => P::ResourceName,
            "resource_id" => P::ResourceId,
            "checkpoint_id" => P::CheckpointId,
            "resource_type" => P::ResourceType,
            "image_type" => P::ImageType,
            "dec" => P::Dec,
            "start_time" => P::StartTime,
            "end_time" => P::EndTime,
            "all_tenants" => P::AllTenants,
            _ => return None,
        })
    };
    match api {
        Api::V1List | Api::V1Count => common(name).or(match (api, name) {
            (_, "az") => Some(P::ResourceAz),
            (_, "policy_id") => Some(P::PolicyId),
            (_, "ip") => Some(P::Ip),
            (Api::V1Count, "sort" | "marker" | "limit" | "offset") => Some(P::Ignored),
            (_, "sort") => Some(P::Sort),
            (_, "marker") => Some(P::Marker),
            (_, "limit") => Some(P::Limit),
            (_, "offset") => Some(P::Offset),
            _ => None,
        }),
        Api::V3List => common(name).or(match name {
            "resource_az" => Some(P::ResourceAz),
            "vault_id" => Some(P::VaultId),
            "parent_id" => Some(P::ParentId),
            "enterprise_project_id" => Some(P::EnterpriseProjectId),
            "own_type" => Some(P::OwnType),
            "member_status" => Some(P::MemberStatus),
            "sort" => Some(P::Sort),
            "marker" => Some(P::Marker),
            "limit" => Some(P::Limit),
            "offset" => Some(P::Offset),
            "used_percent" | "show_replication" | "incremental" => Some(P::Unsupported),
            _ => None,
        }),
        Api::ShareCount => Some(match name {
            "status" => P::Status,
            "name" => P::Name,
            "availability_zone" | "avalilability_zone" => P::ResourceAz,
            "volume_id" => P::ResourceId,
            "backup_id" => P::BackupId,
            "from_project_id" => P::FromProjectId,
            "to_project_id" => P::ToProjectId,
            "share_to_me" => P::ShareToMe,
            _ => return None,
        }),
    }
}

fn boolean(name: &str, value: &str) -> Result<bool, QueryError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(QueryError::invalid(name, value, "must be true or false"))
    }
}

/// An integer of §9's grammar: ASCII digits with an optional leading `-`.
/// Returns `(negative, magnitude)`, the magnitude saturating at `u64::MAX`.
fn integer(name: &str, value: &str) -> Result<(bool, u64), QueryError> {
    let (negative, digits) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QueryError::invalid(
            name,
            value,
            "must be an integer (ASCII digits, optional leading -)",
        ));
    }
    let magnitude = digits.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    });
    Ok((negative && magnitude != 0, magnitude))
}

fn timestamp(name: &str, value: &str) -> Result<Timestamp, QueryError> {
    Timestamp::parse(value)
        .map_err(|e| QueryError::invalid(name, value, format!("invalid timestamp: {e}")))
}

fn sort(value: &str) -> Result<Sort, QueryError> {
    let bad = |reason: String| QueryError::invalid("sort", value, reason);
    if value.chars().count() > SORT_MAX_CHARS {
        return Err(bad(format!("longer than {SORT_MAX_CHARS} characters")));
    }
    let mut keys: Vec<(SortKey, Direction)> = Vec::new();
    for item in value.split(',') {
        if item.is_empty() {
            return Err(bad("has an empty item".into()));
        }
        let (key_text, dir_text) = match item.split_once(':') {
            Some((k, d)) => (k, Some(d)),
            None => (item, None),
        };
        let key = SortKey::parse(key_text).ok_or_else(|| {
            bad(format!(
                "unknown sort key {}; keys are created_at, updated_at, name, status, protected_at, id",
                Quoted(key_text)
            ))
        })?;
        let dir = match dir_text {
            None => Direction::Desc,
            Some(d) if d.eq_ignore_ascii_case("asc") => Direction::Asc,
            Some(d) if d.eq_ignore_ascii_case("desc") => Direction::Desc,
            Some(d) => {
                return Err(bad(format!(
                    "unknown direction {} for {key_text}; use asc or desc",
                    Quoted(d)
                )))
            }
        };
        if keys.iter().any(|(k, _)| *k == key) {
            return Err(bad(format!("sort key {key_text} is given twice")));
        }
        keys.push((key, dir));
    }
    Ok(Sort::from_keys(keys))
}

/// Parses one request. `max_limit` caps `limit`.
///
/// # Errors
///
/// 404 for an unknown route, 403 for another project's route, a
/// non-admin `all_tenants=true` or an enterprise project outside
/// `granted_eps`, 400 for every parameter fault of §3, §4 and §9.
pub(crate) fn parse(
    path: &str,
    raw_query: &str,
    scope: &Scope,
    max_limit: usize,
) -> Result<Query, QueryError> {
    let (api, project) = route(path)?;
    if project != scope.project_id {
        return Err(QueryError::forbidden(
            "project_id",
            project,
            "the route's project is not the caller's project",
        ));
    }
    let mut q = Query::new(api);
    let mut seen: HashSet<Param> = HashSet::new();
    let mut own_type_given = false;
    for (name, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        let (name, value) = (name.as_ref(), value.as_ref());
        let Some(p) = known(api, name, value)? else {
            continue;
        };
        let repeatable = p == Param::Status && api == Api::V3List;
        if !seen.insert(p) && !repeatable {
            return Err(QueryError::invalid(name, value, "given more than once"));
        }
        if value.is_empty() {
            return Err(QueryError::invalid(name, value, "must not be empty"));
        }
        own_type_given |= p == Param::OwnType;
        apply(&mut q, p, name, value, max_limit)?;
    }
    cross_checks(&q, scope, own_type_given)?;
    Ok(q)
}

/// What a parameter name means for this API: `None` for one that is
/// accepted and ignored.
///
/// # Errors
///
/// 400 for an unknown parameter and for one backdex cannot answer.
fn known(api: Api, name: &str, value: &str) -> Result<Option<Param>, QueryError> {
    match param(api, name) {
        None => Err(QueryError::invalid(name, value, "unknown parameter")),
        Some(Param::Ignored) => Ok(None),
        Some(Param::Unsupported) => Err(QueryError::invalid(
            name,
            value,
            "not supported: backdex holds no data to answer it",
        )),
        Some(p) => Ok(Some(p)),
    }
}

/// An enum value given by its wire name.
fn named<T>(
    name: &str,
    value: &str,
    parse: impl Fn(&str) -> Option<T>,
    choices: &str,
) -> Result<T, QueryError> {
    parse(value)
        .ok_or_else(|| QueryError::invalid(name, value, format!("must be one of {choices}")))
}

/// Sets what one parameter's value says on the query.
///
/// # Errors
///
/// 400 for a value its parameter does not accept.
fn apply(
    q: &mut Query,
    p: Param,
    name: &str,
    value: &str,
    max_limit: usize,
) -> Result<(), QueryError> {
    let text = || Some(value.to_owned());
    let f = &mut q.filter;
    match p {
        Param::Status => {
            let status = named(name, value, Status::parse, &Status::choices())?;
            if !f.status.contains(&status) {
                f.status.push(status);
            }
        }
        Param::Name => f.name = text(),
        Param::ResourceName => f.resource_name = text(),
        Param::ResourceAz => f.resource_az = text(),
        Param::ResourceId => f.resource_id = text(),
        Param::CheckpointId => f.checkpoint_id = text(),
        Param::ResourceType => f.resource_type = text(),
        Param::ImageType => {
            f.image_type = Some(named(name, value, ImageType::parse, &ImageType::choices())?)
        }
        Param::PolicyId => f.policy_id = text(),
        Param::VaultId => f.vault_id = text(),
        Param::ParentId => f.parent_id = text(),
        Param::EnterpriseProjectId => {
            f.enterprise_project = Some(if value == "all_granted_eps" {
                EnterpriseProject::AllGranted
            } else {
                EnterpriseProject::Id(value.to_owned())
            })
        }
        Param::Dec => f.dec = Some(boolean(name, value)?),
        Param::Ip => {
            f.ip =
                Some(value.parse().map_err(|_| {
                    QueryError::invalid(name, value, "must be an IPv4 or IPv6 address")
                })?)
        }
        Param::StartTime => f.start_time = Some(timestamp(name, value)?),
        Param::EndTime => f.end_time = Some(timestamp(name, value)?),
        Param::AllTenants => q.all_tenants = boolean(name, value)?,
        Param::OwnType => {
            q.own_type = named(
                name,
                value,
                |v| match v {
                    "private" => Some(OwnType::Private),
                    "shared" => Some(OwnType::Shared),
                    "all_granted" => Some(OwnType::AllGranted),
                    _ => None,
                },
                "private, shared, all_granted",
            )?
        }
        Param::MemberStatus => {
            f.member_status = Some(named(
                name,
                value,
                |v| match v {
                    "pending" => Some(MemberStatus::Pending),
                    "accept" | "accepted" => Some(MemberStatus::Accept),
                    "reject" | "rejected" => Some(MemberStatus::Reject),
                    _ => None,
                },
                "pending, accept, reject (or accepted, rejected)",
            )?)
        }
        Param::Sort => q.sort = sort(value)?,
        Param::Marker => q.page.marker = text(),
        Param::Limit => {
            let (negative, n) = integer(name, value)?;
            if negative || n == 0 {
                return Err(QueryError::invalid(name, value, "must be at least 1"));
            }
            q.page.limit = usize::try_from(n).unwrap_or(usize::MAX).min(max_limit);
        }
        Param::Offset => {
            let (negative, n) = integer(name, value)?;
            if negative || n > OFFSET_MAX {
                return Err(QueryError::invalid(
                    name,
                    value,
                    format!("must be from 0 to {OFFSET_MAX}"),
                ));
            }
            q.page.offset = n as usize;
        }
        Param::BackupId => f.backup_id = text(),
        Param::FromProjectId => f.from_project_id = text(),
        Param::ToProjectId => f.to_project_id = text(),
        Param::ShareToMe => q.share_to_me = boolean(name, value)?,
        // `known` keeps these away.
        Param::Ignored | Param::Unsupported => {}
    }
    Ok(())
}
