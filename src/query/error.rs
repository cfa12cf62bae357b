//! Why a request was not answered with data: the one error of the query
//! boundary, for requests parsed from a route and a query string and for
//! typed queries alike. How each kind maps to HTTP (status, code, body) is
//! the API layer's business (`api::error`).

use std::fmt;

use crate::quote::{Named, Quoted};

/// Why a request was not answered with data. Every message names the
/// parameter (or route, or marker) and the value at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryError {
    /// 400 `InvalidParameter`: unknown, repeated, empty, malformed or
    /// out-of-range parameter, or parameters that contradict each other.
    InvalidParameter {
        /// The parameter as given in the query string.
        name: String,
        /// Its value (messages show at most 256 bytes of it).
        value: String,
        /// What is wrong, and what is accepted.
        reason: String,
    },
    /// 403 `Forbidden`: the scope may not ask this.
    Forbidden {
        /// The parameter (or `project_id` for the route's project).
        name: String,
        /// Its value.
        value: String,
        /// Why the scope may not.
        reason: String,
    },
    /// 404 `MarkerNotFound`: the marker names no record the caller can
    /// see; worded the same whether the record does not exist or is not
    /// visible.
    MarkerNotFound {
        /// The marker as given.
        marker: String,
    },
    /// 404 `NotFound`: no such route.
    NotFound {
        /// The path as given.
        path: String,
    },
}

impl QueryError {
    pub(crate) fn invalid(name: &str, value: &str, reason: impl Into<String>) -> QueryError {
        QueryError::InvalidParameter {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn forbidden(name: &str, value: &str, reason: impl Into<String>) -> QueryError {
        QueryError::Forbidden {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::InvalidParameter {
                name,
                value,
                reason,
            } => {
                write!(
                    f,
                    "invalid parameter {} = {}: {reason}",
                    Named(name),
                    Quoted(value)
                )
            }
            QueryError::Forbidden {
                name,
                value,
                reason,
            } => {
                write!(
                    f,
                    "forbidden: {} = {}: {reason}",
                    Named(name),
                    Quoted(value)
                )
            }
            QueryError::MarkerNotFound { marker } => {
                write!(
                    f,
                    "marker {} not found: no visible record has this id",
                    Quoted(marker)
                )
            }
            QueryError::NotFound { path } => write!(f, "no route matches {}", Quoted(path)),
        }
    }
}

impl std::error::Error for QueryError {}
