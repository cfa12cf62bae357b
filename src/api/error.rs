//! How the query boundary's errors answer over HTTP: a status, a code and
//! `{"error": {"code", "message"}}`.

use crate::query::QueryError;

impl QueryError {
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
