//! Shared infrastructure that runs in-process by default and on Redis when `REDIS_URL` is
//! configured, so a single binary works alone and a cluster of API nodes shares state.
//! Each facility is one type with two backends (Memory | Redis); none of them fails a
//! request because Redis is down — they fall back to in-process and recover.

pub mod background;
pub mod cache;
pub mod invalidation;
pub mod rate_limit;
pub mod redis_conn;
pub mod refresh;
pub mod revocation;
pub mod secret;
