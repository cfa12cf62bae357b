//! The error of the request boundary: what a server answers with an HTTP
//! status and `{"error": {"code", "message"}}`.

use std::fmt;

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
        /// Its value (cut to 256 bytes in messages).
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

/// Values echoed in messages are cut to this many bytes, so that a 10 MB
/// query string does not make a 10 MB error.
const ECHO_MAX: usize = 256;

fn echo(value: &str) -> String {
    if value.len() <= ECHO_MAX {
        return format!("{value:?}");
    }
    let mut end = ECHO_MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &value[..end], value.len())
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

    /// The HTTP status: 400, 403 or 404.
    pub fn status(&self) -> u16 {
        match self {
            QueryError::InvalidParameter { .. } => 400,
            QueryError::Forbidden { .. } => 403,
            QueryError::MarkerNotFound { .. } | QueryError::NotFound { .. } => 404,
        }
    }

    /// The error code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::InvalidParameter { .. } => "InvalidParameter",
            QueryError::Forbidden { .. } => "Forbidden",
            QueryError::MarkerNotFound { .. } => "MarkerNotFound",
            QueryError::NotFound { .. } => "NotFound",
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
                write!(f, "invalid parameter `{name}` = {}: {reason}", echo(value))
            }
            QueryError::Forbidden {
                name,
                value,
                reason,
            } => {
                write!(f, "forbidden: `{name}` = {}: {reason}", echo(value))
            }
            QueryError::MarkerNotFound { marker } => {
                write!(
                    f,
                    "marker {} not found: no visible record has this id",
                    echo(marker)
                )
            }
            QueryError::NotFound { path } => write!(f, "no route matches {}", echo(path)),
        }
    }
}

impl std::error::Error for QueryError {}
