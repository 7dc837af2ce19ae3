//! The shared Redis connection sends each command at once (`TCP_NODELAY`). In a file of its
//! own, so this process holds no other Redis connection that could be mistaken for it.

use std::net::ToSocketAddrs;

/// TCP_NODELAY of every socket of this process connected to one of `peers`.
fn nodelay_of_sockets_to(peers: &[std::net::SocketAddr]) -> Vec<bool> {
    use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};
    let me = pidfd_open(getpid(), PidfdFlags::empty()).expect("pidfd of this process");
    std::fs::read_dir("/proc/self/fd")
        .expect("fd list")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        // A duplicate of each descriptor: safe to use whatever it is, closed on drop.
        .filter_map(|fd| pidfd_getfd(&me, fd, PidfdGetfdFlags::empty()).ok())
        .filter(|fd| {
            rustix::net::getpeername(fd)
                .ok()
                .flatten()
                .and_then(|a| std::net::SocketAddr::try_from(a).ok())
                .is_some_and(|a| peers.contains(&a))
        })
        .map(|fd| rustix::net::sockopt::tcp_nodelay(&fd).expect("a TCP socket"))
        .collect()
}

#[tokio::test]
async fn the_shared_connection_sends_commands_at_once() {
    let Some(url) = assay_store::testing::service_url("ASSAY_TEST_REDIS_URL") else {
        return;
    };
    let parsed = url::Url::parse(&url).expect("Redis URL");
    let peers: Vec<_> = (
        parsed.host_str().expect("host"),
        parsed.port().unwrap_or(6379),
    )
        .to_socket_addrs()
        .expect("Redis address")
        .collect();
    let conn = assay_infra::redis_conn::connect_lazy(&url).expect("connection");
    assay_infra::redis_conn::ping(&conn, std::time::Duration::from_secs(5))
        .await
        .expect("Redis answers");
    assert_eq!(nodelay_of_sockets_to(&peers), vec![true]);
}
