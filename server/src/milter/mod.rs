//! The milter client: Sendmail's and Postfix's mail filter protocol, version 6 (libmilter's
//! `mfdef.h`; Postfix's MILTER_README), spoken to every configured milter during each SMTP
//! session. `wire` is the packet codec, `negotiate` the option negotiation, `client` one
//! connection with its timeouts, `response` what a milter answers, `message` the header and
//! body changes, `chain` the session's milters in order with their default actions.

mod chain;
mod client;
mod message;
mod negotiate;
mod response;
#[cfg(test)]
pub(crate) mod tests;
mod wire;

use postern_store::model::{MilterAddress, MilterTimeouts};

pub use chain::{Chain, ConnectInfo, Verdict};
pub use client::MilterError;
pub use negotiate::Negotiated;

/// What a milter said about itself when we negotiated with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub version: u32,
    pub actions: Vec<&'static str>,
    pub protocol: Vec<&'static str>,
}

/// Connects to a milter, negotiates and says goodbye: the console's and the CLI's test.
pub async fn probe(
    address: &MilterAddress,
    timeouts: MilterTimeouts,
) -> Result<Probe, MilterError> {
    let mut client = client::Client::connect(address, timeouts).await?;
    let n = client.negotiated.clone();
    client.tell(wire::cmd::QUIT).await;
    Ok(Probe { version: n.version, actions: n.action_names(), protocol: n.protocol_names() })
}
