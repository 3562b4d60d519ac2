//! Mail authentication: DKIM signing (RFC 6376, RFC 8463) of what our users and trusted networks
//! send, the DKIM key rollout's DNS checks, and the SPF/DKIM/ARC/DMARC checks of inbound mail
//! (`verify.rs`).
//!
//! Signing's place in the pipeline (RFC 6376 §5): a message is signed once, as it is queued,
//! after every header we add: every delivery attempt and every next hop then carries the same
//! bytes and the same signature, and nothing later in the pipeline may change the message (the
//! outbound writer only dot-stuffs, see `delivery::wire`).

mod disposition;
mod health;
mod rollout;
mod sign;
mod verify;

pub use disposition::{Disposition, TAG_FIELD, decide};
pub use health::{Health, HealthRow, check_domain, check_reverse};
pub use rollout::{CHECK_EVERY, DkimChecker, check_key, run_schedule};
pub use sign::DkimSigner;
pub use verify::{DmarcVerdict, PublishedPolicy, Verdict, Verifier, strip_ours};

/// Signs submitted messages.
pub trait Signer: Send + Sync {
    /// Header fields, each ending in CRLF, to put at the top of the message made of `parts` in
    /// order, whose `From:` names `domain` (RFC 7489's author domain, which DMARC aligns the
    /// signature with); empty for none. Parts let the fields we add be signed in front of a
    /// message without copying it; a header field never straddles two parts, and the body is
    /// the last part's.
    fn sign(&self, domain: &str, parts: &[&[u8]]) -> String;
}

/// Signs nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unsigned;

impl Signer for Unsigned {
    fn sign(&self, _domain: &str, _parts: &[&[u8]]) -> String {
        String::new()
    }
}
