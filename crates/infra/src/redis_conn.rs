//! Connecting to Redis and checking its health.
//!
//! The connection manager is created lazily: Assay starts even when Redis is down, every
//! Redis-backed facility falls back to in-process meanwhile, and the manager reconnects on
//! its own when Redis returns. Short timeouts keep a dead Redis from slowing requests.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::{Duration, Instant};

/// A Redis connection shared by every facility (cheap to clone; one multiplexed socket).
pub type RedisConn = ConnectionManager;

/// Create the shared connection without contacting Redis yet. Fails only when the URL is
/// unusable.
pub fn connect_lazy(url: &str) -> Result<RedisConn, redis::RedisError> {
    let client = client(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(1000)))
        .set_response_timeout(Some(Duration::from_millis(1000)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(2000));
    ConnectionManager::new_lazy_with_config(client, config)
}

/// A client for `url` whose connections send each command at once: TCP_NODELAY, which
/// redis-rs leaves off — the connection is multiplexed, so a command written while an earlier
/// one is unacknowledged would otherwise wait for that ACK.
pub fn client(url: &str) -> Result<redis::Client, redis::RedisError> {
    use redis::IntoConnectionInfo;
    let info = url
        .into_connection_info()?
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
    redis::Client::open(info)
}

/// One `PING` round trip with its latency, bounded by `timeout`.
pub async fn ping(conn: &RedisConn, timeout: Duration) -> Result<Duration, String> {
    let mut conn = conn.clone();
    let started = Instant::now();
    match tokio::time::timeout(timeout, redis::cmd("PING").query_async::<String>(&mut conn)).await {
        Ok(Ok(_)) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}
