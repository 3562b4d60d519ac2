//! Fixed ports for peers that must be told a port before they start (pebble's validation ports,
//! Dovecot, slapd, a console that restarts on the same address).
//!
//! Such a port is chosen free and then bound later by another process, so something may take it
//! in between. Taking it from the kernel (`bind` to port 0) is what makes that likely: every other
//! port-0 listener and every outgoing connection in the parallel tests draws from the same
//! ephemeral range. So these ports come from below that range, where nothing is handed out on its
//! own, and one process never hands out the same port twice.

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

/// Where the kernel hands out ephemeral ports, read from
/// `/proc/sys/net/ipv4/ip_local_port_range` (Linux's default if unreadable).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|w| w.parse::<u16>());
            Some((it.next()?.ok()?, it.next()?.ok()?))
        })
        .unwrap_or((32768, 60999))
}

/// A loopback port free for both TCP and UDP now, outside the ephemeral range.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let (low, _) = ephemeral_range();
    // Below the ephemeral range, and above the well-known and commonly configured ports.
    let (from, to) = if low > 12000 { (10000, low - 1) } else { (1024, 65535) };
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let port = rand::random_range(from..=to);
        if given.contains(&port) {
            continue;
        }
        let tcp = TcpListener::bind(("127.0.0.1", port)).is_ok();
        let udp = UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if tcp && udp {
            given.insert(port);
            return port;
        }
    }
    panic!("no free loopback port between {from} and {to}")
}
