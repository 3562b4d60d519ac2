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

#[cfg(test)]
mod tests {
    use super::*;

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
