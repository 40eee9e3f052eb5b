//! Why an operation on the file failed, before the file's path is attached.

use std::path::Path;

use crate::error::StoreError;

/// Why an operation failed, before the file's path is attached; lets transaction code use `?`
/// on every redb error type.
pub(super) enum Failure {
    Database(redb::Error),
    /// A record that does not decode.
    Corrupt(String),
    Store(StoreError),
}

impl Failure {
    pub(super) fn into_error(self, path: &Path) -> StoreError {
        let path = path.to_path_buf();
        match self {
            Failure::Store(error) => error,
            Failure::Corrupt(detail) => StoreError::Corrupt { path, detail },
            Failure::Database(redb::Error::Corrupted(detail)) => {
                StoreError::Corrupt { path, detail }
            }
            Failure::Database(source) => StoreError::Database { path, source },
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        Failure::Store(error)
    }
}

impl<E: Into<redb::Error>> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure::Database(error.into())
    }
}
