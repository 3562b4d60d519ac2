//! What to do with inbound mail whose SPF or DMARC checks fail or cannot be made: a global
//! policy, and per-domain overrides (the recipients' domain decides).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::DomainName;

macro_rules! action {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "{other:?} is not one of {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

action!(
    /// A DMARC failure of a domain that publishes `p=reject` (RFC 7489 §6.3).
    DmarcRejectAction { Reject = "reject", Quarantine = "quarantine", Record = "record" }
);
action!(
    /// A DMARC failure of a domain that publishes `p=quarantine`: hold the message in the queue
    /// for an administrator, or deliver it with an `X-Postern-Quarantine:` field.
    DmarcQuarantineAction { Hold = "hold", Tag = "tag", Record = "record" }
);
action!(
    /// An SPF `fail` (the sender's record ends in `-all` and the client is not listed,
    /// RFC 7208 §8.4).
    SpfFailAction { Reject = "reject", Tag = "tag", Record = "record" }
);
action!(
    /// A DNS failure during SPF or DMARC (`temperror`): ask the client to try later
    /// (`451 4.7.x`), or accept the message with a tag. Never a permanent refusal.
    TempErrorAction { Defer = "defer", Accept = "accept" }
);

/// One policy: the global one or a domain's override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailAuthPolicy {
    pub dmarc_reject: DmarcRejectAction,
    pub dmarc_quarantine: DmarcQuarantineAction,
    pub spf_fail: SpfFailAction,
    pub temperror: TempErrorAction,
}

impl Default for MailAuthPolicy {
    /// Honour what domain owners publish, record SPF failures (DMARC decides alignment), and
    /// accept on DNS failures with a tag.
    fn default() -> Self {
        MailAuthPolicy {
            dmarc_reject: DmarcRejectAction::Reject,
            dmarc_quarantine: DmarcQuarantineAction::Tag,
            spf_fail: SpfFailAction::Record,
            temperror: TempErrorAction::Accept,
        }
    }
}

/// The global policy and the overrides, as the engine's snapshot holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailAuthPolicies {
    pub global: MailAuthPolicy,
    pub domains: BTreeMap<DomainName, MailAuthPolicy>,
}

impl MailAuthPolicies {
    /// The policy for a message to `domains` (its recipients' domains): a domain's override
    /// when all recipients share that domain, the global policy otherwise.
    pub fn for_recipients<'a>(&self, mut domains: impl Iterator<Item = &'a str>) -> MailAuthPolicy {
        let Some(first) = domains.next() else { return self.global };
        if domains.any(|d| !d.eq_ignore_ascii_case(first)) {
            return self.global;
        }
        self.domains
            .iter()
            .find(|(name, _)| name.as_str().eq_ignore_ascii_case(first))
            .map_or(self.global, |(_, p)| *p)
    }
}
