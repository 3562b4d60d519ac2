//! Trusted networks: clients there may relay without authenticating (Postfix's `mynetworks`).

use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedNetwork {
    pub cidr: IpNet,
    pub description: String,
    pub created_at: i64,
}

/// Parses `192.0.2.0/24`, `2001:db8::/32`, or a bare address (taken as one host). Host bits set
/// in a prefix are refused rather than silently masked: `10.1.2.3/8` is more often a typo for
/// `/32` than a way to write `10.0.0.0/8`.
pub fn parse_cidr(input: &str) -> Result<IpNet, StoreError> {
    let input = input.trim();
    let net = match IpNet::from_str(input) {
        Ok(net) => net,
        Err(_) => match std::net::IpAddr::from_str(input) {
            Ok(ip) => IpNet::from(ip),
            Err(_) => {
                return Err(StoreError::invalid(
                    "cidr",
                    format!("{input:?} is not an IP network (like 192.0.2.0/24 or 2001:db8::/32)"),
                ));
            }
        },
    };
    if net.trunc() != net {
        return Err(StoreError::invalid(
            "cidr",
            format!(
                "{input:?} has host bits set: did you mean {} or {}/{}?",
                net.trunc(),
                net.addr(),
                net.max_prefix_len()
            ),
        ));
    }
    Ok(net)
}

/// Private, loopback, link-local and shared address space: trusting it lets no stranger on the
/// Internet relay.
const PRIVATE: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "100.64.0.0/10", // shared address space, RFC 6598
    "fc00::/7",      // unique local, RFC 4193
    "fe80::/10",
    "::1/128",
];

/// The widest public range a trusted network may take in without a confirmation: a /16 of IPv4
/// (65,536 addresses, a large organisation), a /32 of IPv6 (one provider's allocation).
fn open_threshold(net: &IpNet) -> u8 {
    match net {
        IpNet::V4(_) => 16,
        IpNet::V6(_) => 32,
    }
}

/// Whether trusting `net` lets more public addresses relay than a /16 (IPv4) or /32 (IPv6)
/// holds: `0.0.0.0/0`, `::/0`, a public /8 turn the server into an open relay, whereas
/// `10.0.0.0/8` or a provider's /24 do not.
pub fn is_open_relay_range(net: &IpNet) -> bool {
    let threshold = open_threshold(net);
    if net.prefix_len() >= threshold {
        return false;
    }
    // Count in blocks of the threshold's size; private blocks smaller than one count as none.
    let blocks =
        |prefix: u8| -> u64 { if prefix <= threshold { 1u64 << (threshold - prefix) } else { 0 } };
    let private: u64 = PRIVATE
        .iter()
        .filter_map(|p| p.parse::<IpNet>().ok())
        .filter(|p| net.contains(p))
        .map(|p| blocks(p.prefix_len()))
        .sum();
    // Private space that contains `net` whole leaves nothing public.
    let inside_private =
        PRIVATE.iter().filter_map(|p| p.parse::<IpNet>().ok()).any(|p| p.contains(net));
    !inside_private && blocks(net.prefix_len()).saturating_sub(private) > 1
}

/// Why [`is_open_relay_range`] holds for `net`, in words for a warning.
pub fn open_relay_warning(net: &IpNet) -> String {
    format!(
        "{net} reaches beyond private address space by more than a /{}: every client in it may \
         send mail anywhere without signing in, which makes this server an open relay",
        open_threshold(net)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_relay_ranges() {
        for open in ["0.0.0.0/0", "::/0", "8.0.0.0/8", "0.0.0.0/1", "192.0.0.0/8", "2000::/3"] {
            assert!(is_open_relay_range(&parse_cidr(open).unwrap()), "{open}");
        }
        for closed in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "127.0.0.0/8",
            "198.51.100.0/24",
            "203.0.0.0/16",
            "2001:db8::/32",
            "fc00::/7",
            "::1/128",
        ] {
            assert!(!is_open_relay_range(&parse_cidr(closed).unwrap()), "{closed}");
        }
    }

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr("192.0.2.0/24").unwrap().to_string(), "192.0.2.0/24");
        assert_eq!(parse_cidr("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert_eq!(parse_cidr("::1").unwrap().to_string(), "::1/128");
        let err = parse_cidr("10.1.2.3/8").unwrap_err().to_string();
        assert!(err.contains("10.0.0.0/8") && err.contains("10.1.2.3/32"), "{err}");
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("example.com").is_err());
    }
}
