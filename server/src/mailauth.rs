//! DKIM signing's place in the pipeline (RFC 6376 §5). A message an authenticated user submits
//! is signed once, as it is queued, after the headers we add: every delivery attempt and every
//! next hop then carries the same bytes and the same signature, and nothing later in the
//! pipeline may change the message (the outbound writer only dot-stuffs, see
//! `delivery::wire`). The signing itself arrives with the DKIM issue; until then the appliance
//! runs with [`Unsigned`].

/// Signs submitted messages.
pub trait Signer: Send + Sync {
    /// Header fields, each ending in CRLF, to put at the top of `message`, which an
    /// authenticated user sends from the envelope sender's `domain`; empty for none.
    fn sign(&self, domain: &str, message: &[u8]) -> String;
}

/// Signs nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unsigned;

impl Signer for Unsigned {
    fn sign(&self, _domain: &str, _message: &[u8]) -> String {
        String::new()
    }
}
