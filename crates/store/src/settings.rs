//! Connection settings for the primary database and its read replicas.

use crate::url::DatabaseUrl;
use std::time::Duration;

/// Pool and engine settings; `assay-config` fills these from configuration.
#[derive(Clone, Debug)]
pub struct DbSettings {
    pub url: DatabaseUrl,
    /// Read replicas (PostgreSQL only); reads that tolerate lag go there.
    pub read_urls: Vec<DatabaseUrl>,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout: Duration,
    pub idle_timeout: Duration,
    /// SQLite only: how long a writer waits for the file lock before giving up.
    pub sqlite_busy_timeout: Duration,
}

impl DbSettings {
    /// Defaults suited to a laptop or a small server.
    pub fn new(url: DatabaseUrl) -> Self {
        Self {
            url,
            read_urls: Vec::new(),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
}
