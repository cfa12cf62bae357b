//! The checks across the parameters of a typed query (SEMANTICS §2-§4),
//! which a parsed request and a query built in code both pass.

use super::{EnterpriseProject, OwnType, Query, QueryError, Scope};

/// The largest `offset` accepted.
pub(crate) const OFFSET_MAX: u64 = 2_147_483_647;

/// The checks across parameters, which typed queries need too.
///
/// # Errors
///
/// `limit` 0 or `offset` above [`OFFSET_MAX`], and the cross checks of
/// [`cross_checks`].
pub(crate) fn validate(q: &Query, scope: &Scope) -> Result<(), QueryError> {
    if q.page.limit == 0 {
        return Err(QueryError::invalid("limit", "0", "must be at least 1"));
    }
    if q.page.offset as u64 > OFFSET_MAX {
        return Err(QueryError::invalid(
            "offset",
            &q.page.offset.to_string(),
            format!("must be from 0 to {OFFSET_MAX}"),
        ));
    }
    cross_checks(q, scope, q.own_type != OwnType::Private)
}

/// A non-admin `all_tenants`, `member_status` with private records, an
/// ungranted enterprise project, `start_time` after `end_time`.
/// `own_type_given` words the `member_status` error.
///
/// # Errors
///
/// The first of those faults.
pub(crate) fn cross_checks(
    q: &Query,
    scope: &Scope,
    own_type_given: bool,
) -> Result<(), QueryError> {
    if q.all_tenants && !scope.admin {
        return Err(QueryError::forbidden(
            "all_tenants",
            "true",
            "only an admin scope may see all tenants",
        ));
    }
    if let Some(status) = q.filter.member_status {
        if q.own_type == OwnType::Private && !q.all_tenants {
            let reason = if own_type_given {
                "applies to shared records only; own_type=private has none"
            } else {
                "needs own_type=shared or own_type=all_granted (the default own_type is private)"
            };
            return Err(QueryError::invalid(
                "member_status",
                status.as_str(),
                reason,
            ));
        }
    }
    if let (Some(EnterpriseProject::Id(ep)), Some(granted)) =
        (&q.filter.enterprise_project, &scope.granted_eps)
    {
        if !granted.contains(ep) {
            return Err(QueryError::forbidden(
                "enterprise_project_id",
                ep,
                "the enterprise project is not among the caller's granted ones",
            ));
        }
    }
    if let (Some(start), Some(end)) = (q.filter.start_time, q.filter.end_time) {
        if start > end {
            return Err(QueryError::invalid(
                "start_time",
                &start.to_string(),
                format!("is after end_time {end}"),
            ));
        }
    }
    Ok(())
}
