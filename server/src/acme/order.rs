//! One certificate order against the CA (RFC 8555 §7.4): new order, one challenge per
//! authorization, wait for validation, finalize with a fresh key, download the chain.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    OrderStatus, Problem, RetryPolicy,
};

use super::challenge::{AlpnChallenges, Http01Tokens, tls_alpn01_certificate};

/// How often and how long to ask the CA whether validation or issuance is done. The crate's
/// default gives up after 30 s; a busy CA may take longer, and the order is then retried
/// later by the worker, which resumes nothing: it starts a new order (RFC 8555 lets the CA
/// reuse the valid authorizations).
pub fn poll_policy() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(Duration::from_secs(90))
}

/// How control over the names is proven (RFC 8555 §8.3, RFC 8737).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// A file over plain HTTP on port 80.
    Http01,
    /// A certificate over TLS on port 443, with ALPN `acme-tls/1`.
    TlsAlpn01,
}

impl Challenge {
    pub fn as_str(self) -> &'static str {
        match self {
            Challenge::Http01 => "http-01",
            Challenge::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// Where the challenges of an order are answered.
#[derive(Clone)]
pub struct Responders {
    pub http01: Arc<Http01Tokens>,
    /// `None` when nothing serves TLS on the validation port (no console HTTPS listener).
    pub tls_alpn01: Option<Arc<dyn AlpnChallenges>>,
    /// Whether the HTTP-01 responder runs (`[acme] http_listen` is not `""`).
    pub http01_listening: bool,
}

/// The chain (leaf first) and its private key, both PEM.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("chain_pem", &self.chain_pem).finish_non_exhaustive()
    }
}

/// Why an order did not end in a certificate: the CA's own words where it gave any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderError {
    pub message: String,
    /// A stale nonce the CA refused (RFC 8555 §6.5) more times in a row than the client
    /// retries by itself: nothing wrong with the order, so it is tried again at once.
    pub bad_nonce: bool,
    /// The problem type without its URN prefix (`connection`, `rejectedIdentifier`…), when
    /// the CA sent a problem document.
    pub kind: Option<String>,
}

impl std::fmt::Display for OrderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl OrderError {
    fn new(message: impl Into<String>) -> OrderError {
        OrderError { message: message.into(), bad_nonce: false, kind: None }
    }

    /// This appliance cannot answer the challenge as configured: a restart with another
    /// configuration (which orders anew) is needed, not a retry.
    fn configuration(message: impl Into<String>) -> OrderError {
        OrderError { kind: Some(CONFIGURATION.into()), ..OrderError::new(message) }
    }
}

impl From<instant_acme::Error> for OrderError {
    fn from(e: instant_acme::Error) -> OrderError {
        match e {
            instant_acme::Error::Api(problem) => OrderError {
                bad_nonce: problem.r#type.as_deref() == Some(BAD_NONCE),
                message: problem_text(&problem),
                kind: problem.r#type.as_deref().map(|t| short_type(t).to_string()),
            },
            instant_acme::Error::Timeout(_) => {
                OrderError::new("the CA did not finish in time; the order will be tried again")
            }
            other => OrderError::new(format!("talking to the CA: {other}")),
        }
    }
}

const BAD_NONCE: &str = "urn:ietf:params:acme:error:badNonce";
/// Our own kind for a challenge this appliance is not set up to answer.
const CONFIGURATION: &str = "configuration";

fn short_type(kind: &str) -> &str {
    kind.strip_prefix("urn:ietf:params:acme:error:").unwrap_or(kind)
}

impl OrderError {
    /// True when trying the same order again cannot help (RFC 8555 §6.7): the CA will not
    /// issue for the name, or the request itself is wrong. Everything else (a validation
    /// that failed, a rate limit, a CA that is down) may succeed later.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self.kind.as_deref(),
            Some(
                "rejectedIdentifier"
                    | "unsupportedIdentifier"
                    | "malformed"
                    | "badCSR"
                    | CONFIGURATION
            )
        )
    }

    /// True when the CA does not know the account (its database was reset): a new account
    /// is registered.
    pub fn unknown_account(&self) -> bool {
        self.kind.as_deref() == Some("accountDoesNotExist")
    }
}

/// A problem document (RFC 8555 §6.7) as the administrator should read it: the CA's detail,
/// its type without the URN prefix, and the detail of each subproblem.
pub fn problem_text(problem: &Problem) -> String {
    let mut text = problem.detail.clone().unwrap_or_else(|| "the CA refused".into());
    if let Some(kind) = &problem.r#type {
        text.push_str(&format!(" ({})", short_type(kind)));
    }
    for sub in &problem.subproblems {
        if let Some(detail) = &sub.detail {
            text.push_str(&format!("; {detail}"));
        }
    }
    text
}

/// What the worker is told as the order moves on.
pub trait Progress: Send {
    /// Challenges are set up and the CA has been told to validate them.
    fn validating(&mut self) -> impl std::future::Future<Output = ()> + Send;
}

/// No-one to tell.
pub struct Quiet;

impl Progress for Quiet {
    async fn validating(&mut self) {}
}

/// Orders a certificate for `names` from the CA, proving control over each with `challenge`.
/// `replaces` names the certificate this one renews, for a CA with renewal information
/// (RFC 9773 §5); pass it only to such a CA.
pub async fn order_certificate(
    account: &Account,
    names: &[String],
    challenge: Challenge,
    replaces: Option<CertificateIdentifier<'static>>,
    responders: &Responders,
    progress: &mut impl Progress,
) -> Result<Issued, OrderError> {
    let kind = match challenge {
        Challenge::Http01 if !responders.http01_listening => {
            return Err(OrderError::configuration(
                "HTTP-01 needs the responder on port 80: set [acme] http_listen, or order with \
                 --challenge tls-alpn-01",
            ));
        }
        Challenge::TlsAlpn01 if responders.tls_alpn01.is_none() => {
            return Err(OrderError::configuration(
                "TLS-ALPN-01 is answered on the console's HTTPS listener: set [console] \
                 tls_listen (port 443), or order with --challenge http-01",
            ));
        }
        Challenge::Http01 => ChallengeType::Http01,
        Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
    };
    let identifiers: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut new = NewOrder::new(&identifiers);
    if let Some(replaces) = replaces {
        new = new.replaces(replaces);
    }
    let mut order = account.new_order(&new).await?;

    // Whatever happens next, the challenge responses go away with this guard.
    let mut cleanup = Cleanup { responders: responders.clone(), tokens: vec![], names: vec![] };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                let name = authz.identifier().to_string();
                return Err(OrderError::new(format!(
                    "the CA's authorization for {name} is {other:?}, not pending"
                )));
            }
        }
        let name = authz.identifier().to_string();
        let Some(mut handle) = authz.challenge(kind.clone()) else {
            return Err(OrderError::new(format!(
                "the CA offers no {} challenge for {name}",
                challenge.as_str()
            )));
        };
        let key_authorization = handle.key_authorization();
        match challenge {
            Challenge::Http01 => {
                responders.http01.insert(&handle.token, key_authorization.as_str());
                cleanup.tokens.push(handle.token.clone());
            }
            Challenge::TlsAlpn01 => {
                let digest = key_authorization.digest();
                let key = tls_alpn01_certificate(&name, digest.as_ref())
                    .map_err(|e| OrderError::new(format!("challenge certificate: {e}")))?;
                if let Some(alpn) = &responders.tls_alpn01 {
                    alpn.set(&name, key);
                }
                cleanup.names.push(name.clone());
            }
        }
        handle.set_ready().await?;
    }
    progress.validating().await;

    let policy = poll_policy();
    let status = order.poll_ready(&policy).await?;
    if status != OrderStatus::Ready {
        return Err(OrderError::new(validation_failure(&mut order).await));
    }
    drop(cleanup);
    // A new P-256 key for every certificate; the CSR names exactly the order's identifiers.
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&policy).await?;
    Ok(Issued { chain_pem, key_pem })
}

/// The CA's reason for an invalid order: the error of each failed challenge (RFC 8555 §7.1.5
/// puts it there, not on the order).
async fn validation_failure(order: &mut instant_acme::Order) -> String {
    let mut reasons = Vec::new();
    if let Some(error) = &order.state().error {
        reasons.push(problem_text(error));
    }
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let Ok(mut authz) = authz else { continue };
        let name = authz.identifier().to_string();
        let Ok(state) = authz.refresh().await else { continue };
        for challenge in &state.challenges {
            if let Some(error) = &challenge.error {
                reasons.push(format!("{name}: {}", problem_text(error)));
            }
        }
    }
    if reasons.is_empty() {
        "the CA found the order invalid and gave no reason".into()
    } else {
        reasons.join("; ")
    }
}

/// Takes the challenge responses down when the order stops needing them.
struct Cleanup {
    responders: Responders,
    tokens: Vec<String>,
    names: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for token in &self.tokens {
            self.responders.http01.remove(token);
        }
        if let Some(alpn) = &self.responders.tls_alpn01 {
            for name in &self.names {
                alpn.clear(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_read_as_the_ca_wrote_them() {
        let problem: Problem = serde_json::from_str(
            r#"{"type":"urn:ietf:params:acme:error:connection","detail":"Connection refused",
                "status":400}"#,
        )
        .unwrap();
        assert_eq!(problem_text(&problem), "Connection refused (connection)");
        let nonce: Problem = serde_json::from_str(
            r#"{"type":"urn:ietf:params:acme:error:badNonce","detail":"JWS has an invalid anti-replay nonce"}"#,
        )
        .unwrap();
        let error = OrderError::from(instant_acme::Error::Api(nonce));
        assert!(error.bad_nonce && !error.is_permanent(), "{error:?}");
        let refused: Problem = serde_json::from_str(
            r#"{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"no"}"#,
        )
        .unwrap();
        let error = OrderError::from(instant_acme::Error::Api(refused));
        assert_eq!(error.kind.as_deref(), Some("rejectedIdentifier"));
        assert!(error.is_permanent() && !error.unknown_account(), "{error:?}");
        assert!(OrderError::configuration("no responder").is_permanent());
        assert!(!OrderError::new("timed out").is_permanent());
    }
}
