//! Counts the sessions each client holds, per service, by address and by network (a /24 for
//! IPv4, a /64 for IPv6), as Postfix's anvil does for `smtpd_client_connection_count_limit`:
//! so that one client cannot take every session slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::ListenerKind;

/// What a client is counted under: its address, and the network around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Address(ListenerKind, IpAddr),
    Network(ListenerKind, IpAddr),
}

/// Which limit a refused client reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Address,
    Network,
}

/// Session counts by client, shared by every listener.
pub struct Anvil {
    per_address: usize,
    per_network: usize,
    counts: Mutex<HashMap<Key, usize>>,
}

/// One admitted session; its counts go down when it is dropped.
pub struct Admission {
    anvil: Arc<Anvil>,
    keys: [Key; 2],
}

impl Anvil {
    /// Limits of 0 are off.
    pub fn new(per_address: usize, per_network: usize) -> Arc<Anvil> {
        Arc::new(Anvil { per_address, per_network, counts: Mutex::default() })
    }

    /// Counts a new session from `ip` on `kind`, or says which limit it would exceed.
    pub fn admit(self: &Arc<Anvil>, kind: ListenerKind, ip: IpAddr) -> Result<Admission, Exceeded> {
        // A v4 client on a dual-stack socket shows as ::ffff:a.b.c.d: count it as IPv4.
        let ip = ip.to_canonical();
        let keys = [Key::Address(kind, ip), Key::Network(kind, network(ip))];
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = |key| counts.get(&key).copied().unwrap_or(0);
        if self.per_address > 0 && count(keys[0]) >= self.per_address {
            return Err(Exceeded::Address);
        }
        if self.per_network > 0 && count(keys[1]) >= self.per_network {
            return Err(Exceeded::Network);
        }
        for key in keys {
            *counts.entry(key).or_insert(0) += 1;
        }
        Ok(Admission { anvil: self.clone(), keys })
    }

    /// Clients with a session now (for tests: entries do not outlive their sessions).
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = self.anvil.counts.lock().unwrap_or_else(|e| e.into_inner());
        for key in self.keys {
            if let Some(n) = counts.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&key);
                }
            }
        }
    }
}

/// The /24 around an IPv4 address, the /64 around an IPv6 one.
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & 0xffff_ff00).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn counts_by_address_and_network_per_service() {
        let anvil = Anvil::new(2, 3);
        let smtp = ListenerKind::Smtp;
        let a = [
            anvil.admit(smtp, ip("192.0.2.1")).unwrap(),
            anvil.admit(smtp, ip("192.0.2.1")).unwrap(),
        ];
        assert_eq!(anvil.admit(smtp, ip("192.0.2.1")).err(), Some(Exceeded::Address));
        // Another service counts on its own, as anvil counts per service.
        let _sub = anvil.admit(ListenerKind::Submission, ip("192.0.2.1")).unwrap();
        let _b = anvil.admit(smtp, ip("::ffff:192.0.2.2")).unwrap();
        assert_eq!(anvil.admit(smtp, ip("192.0.2.3")).err(), Some(Exceeded::Network));
        let _other = anvil.admit(smtp, ip("192.0.3.1")).unwrap();
        drop(a);
        let _again = anvil.admit(smtp, ip("192.0.2.1")).unwrap();
    }

    #[test]
    fn an_ipv6_network_is_a_slash_64() {
        let anvil = Anvil::new(0, 2);
        let k = ListenerKind::Smtp;
        let held = [
            anvil.admit(k, ip("2001:db8::1")).unwrap(),
            anvil.admit(k, ip("2001:db8::ffff:2")).unwrap(),
        ];
        assert_eq!(anvil.admit(k, ip("2001:db8::3")).err(), Some(Exceeded::Network));
        let elsewhere = anvil.admit(k, ip("2001:db8:0:1::1")).unwrap();
        drop((held, elsewhere));
        assert_eq!(anvil.tracked(), 0, "nothing is kept for clients that left");
    }

    #[test]
    fn zero_turns_the_limits_off() {
        let anvil = Anvil::new(0, 0);
        let held: Vec<_> =
            (0..100).map(|_| anvil.admit(ListenerKind::Smtp, ip("10.0.0.1")).unwrap()).collect();
        assert_eq!(held.len(), 100);
    }
}
