//! The ACME worker: takes the orders that are due from the store, runs them against the CA,
//! records their progress, stores what is issued, and asks for renewals. It wakes on the
//! revision feed (a new order is a configuration change) and at the next time something is
//! due: an order's retry, a certificate's renewal.
//!
//! Progress is bookkeeping (`update_acme_order`, no revision): `pending`, then `validating`
//! while the CA checks the challenges, then `issued` with the certificate, or back to
//! `pending` with the CA's error text and a later `next_attempt_at` (exponential back-off),
//! or `failed` when trying again cannot help (the CA refuses the name).

use std::collections::HashMap;
use std::time::Duration;

use instant_acme::{Account, CertificateIdentifier};
use postern_store::Store;
use postern_store::boot::AcmeConfig;
use postern_store::model::{
    AcmeOrder, CertificateInfo, CertificateSource, Challenge as OrderChallenge, DomainName,
    OrderState,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_util::sync::CancellationToken;

use super::order::{Challenge, OrderError, Progress, Responders, order_certificate};
use super::schedule::{NONCE_RETRIES, ari_renew_at, backoff, expiring_soon, renew_at};
use super::{account, schedule};

/// Who the audit trail names for what the worker asks for.
const ACTOR: &str = "acme";

/// An order in progress is claimed for this long: if the process dies mid-order, the order is
/// taken up again after it (and another engine on the same store leaves it alone meanwhile).
const LEASE: i64 = 600;

/// The longest the worker sleeps without looking at the store (the revision feed and the
/// computed due times normally wake it long before).
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// How soon, and how late, a certificate's renewal information is asked for again.
const ARI_MIN_WAIT: Duration = Duration::from_secs(3600);
const ARI_MAX_WAIT: Duration = Duration::from_secs(86_400);

/// What the worker needs besides the store.
pub struct WorkerOptions {
    pub config: AcmeConfig,
    /// The name ordered at start-up when no valid certificate covers it; `None` when the host
    /// name is a fallback no CA would issue for (`localhost.localdomain`).
    pub hostname: Option<DomainName>,
    pub responders: Responders,
}

/// Runs until `shutdown`.
pub async fn run(store: Store, options: WorkerOptions, shutdown: CancellationToken) {
    let mut worker = Worker {
        store,
        config: options.config,
        responders: options.responders,
        account: None,
        ari: Ari::Unknown,
        windows: HashMap::new(),
        warned: HashMap::new(),
        shutdown: shutdown.clone(),
    };
    let mut changes = worker.store.subscribe();
    if let Some(hostname) = &options.hostname
        && let Err(e) = worker.order_hostname(hostname).await
    {
        tracing::warn!(error = %e, "cannot order a certificate for the host name");
    }
    loop {
        // An order in progress is dropped at shutdown; its lease makes it due again later.
        let round = tokio::select! {
            _ = shutdown.cancelled() => return,
            round = worker.round() => round,
        };
        let sleep = match round {
            Ok(sleep) => sleep,
            Err(e) => {
                tracing::warn!(error = %e, "ACME: cannot read the store; trying again in a minute");
                Duration::from_secs(60)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
            _ = worker.store.clock().sleep(sleep) => {}
        }
    }
}

/// Whether the CA offers renewal information (RFC 9773), learnt from the first question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ari {
    Unknown,
    Offered,
    NotOffered,
}

struct Worker {
    store: Store,
    config: AcmeConfig,
    responders: Responders,
    account: Option<Account>,
    ari: Ari,
    /// Certificate id -> its ARI window (if the CA gave one) and when to ask again: the CA's
    /// Retry-After, kept between an hour and a day (RFC 9773 §4.3), so that the frequent
    /// rounds (every configuration change) do not each ask the CA.
    windows: HashMap<i64, (Option<(i64, i64)>, i64)>,
    /// Certificate id -> the day (epoch days) its expiry was last warned about.
    warned: HashMap<i64, i64>,
    shutdown: CancellationToken,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

impl Worker {
    /// Orders a certificate for the host name unless a valid one covers it or one is on order.
    async fn order_hostname(&mut self, hostname: &DomainName) -> Result<(), Error> {
        let now = self.store.clock().now();
        let certificates = self.store.list_certificates().await?;
        if certificates.iter().any(|c| c.covers(hostname.as_str()) && c.is_valid_at(now)) {
            return Ok(());
        }
        let orders = self.store.list_acme_orders().await?;
        let names = vec![hostname.as_str().to_ascii_lowercase()];
        if orders.iter().any(|o| o.state.is_open() && o.names == names) {
            return Ok(());
        }
        let challenge = self.default_challenge();
        let order = self
            .store
            .request_acme_order(ACTOR, std::slice::from_ref(hostname), challenge, None)
            .await?;
        tracing::info!(
            order = order.id,
            name = %hostname,
            challenge = challenge.as_str(),
            "ordering a certificate for the host name from the ACME CA"
        );
        Ok(())
    }

    /// HTTP-01 when the responder runs, else TLS-ALPN-01.
    fn default_challenge(&self) -> OrderChallenge {
        if self.responders.http01_listening || self.responders.tls_alpn01.is_none() {
            OrderChallenge::Http01
        } else {
            OrderChallenge::TlsAlpn01
        }
    }

    /// Runs the due orders, asks for the renewals that are due, and says how long to sleep.
    async fn round(&mut self) -> Result<Duration, Error> {
        for order in self.store.due_acme_orders(self.store.clock().now()).await? {
            if self.shutdown.is_cancelled() {
                return Ok(Duration::ZERO);
            }
            self.process(order).await?;
        }
        let now = self.store.clock().now();
        let certificates = self.store.list_certificates().await?;
        let orders = self.store.list_acme_orders().await?;
        let mut next = now + MAX_SLEEP.as_secs() as i64;
        for order in orders.iter().filter(|o| o.state.is_open()) {
            next = next.min(order.next_attempt_at);
        }
        for cert in certificates.iter().filter(|c| c.source == CertificateSource::Acme) {
            if superseded(cert, &certificates) {
                continue;
            }
            self.warn_if_expiring(cert, now);
            let due = self.renewal_time(cert).await;
            if due > now {
                next = next.min(due);
                continue;
            }
            if renewal_pending(cert, &orders, now) {
                continue;
            }
            self.request_renewal(cert, &orders).await?;
        }
        Ok(Duration::from_secs(
            (next - self.store.clock().now()).clamp(1, MAX_SLEEP.as_secs() as i64) as u64,
        ))
    }

    /// Asks for a certificate with `cert`'s names, replacing it, with the challenge that got it.
    async fn request_renewal(
        &mut self,
        cert: &CertificateInfo,
        orders: &[AcmeOrder],
    ) -> Result<(), Error> {
        let Ok(names) =
            cert.names.iter().map(|n| n.parse()).collect::<Result<Vec<DomainName>, _>>()
        else {
            // A wildcard needs DNS-01, which is not offered here: renewing fewer names would
            // silently drop some.
            tracing::warn!(
                certificate = cert.id,
                names = %cert.names.join(" "),
                "cannot renew a certificate with a name ACME here cannot validate"
            );
            return Ok(());
        };
        let challenge = orders
            .iter()
            .find(|o| o.certificate_id == Some(cert.id))
            .map_or_else(|| self.default_challenge(), |o| o.challenge);
        let order = self.store.request_acme_order(ACTOR, &names, challenge, Some(cert.id)).await?;
        tracing::info!(
            order = order.id,
            certificate = cert.id,
            names = %cert.names.join(" "),
            not_after = cert.not_after,
            "renewing a certificate from the ACME CA"
        );
        Ok(())
    }

    /// When `cert` is renewed: a third of its lifetime before expiry, or earlier inside the
    /// CA's renewal window when it publishes one (ARI).
    async fn renewal_time(&mut self, cert: &CertificateInfo) -> i64 {
        let plain = renew_at(cert.not_before, cert.not_after);
        if self.ari == Ari::NotOffered {
            return plain;
        }
        match self.ari_window(cert).await {
            Some((start, end)) => {
                // A stable point in the window per certificate, so that repeated rounds agree.
                let fraction = (cert.id.unsigned_abs() % 97) as f64 / 97.0;
                plain.min(ari_renew_at(start, end, fraction, self.store.clock().now()))
            }
            None => plain,
        }
    }

    /// The CA's suggested renewal window for `cert`, if it offers ARI: asked again only when
    /// the last answer says so.
    async fn ari_window(&mut self, cert: &CertificateInfo) -> Option<(i64, i64)> {
        let now = self.store.clock().now();
        if let Some((window, again)) = self.windows.get(&cert.id)
            && *again > now
        {
            return *window;
        }
        let (window, wait) = self.ask_ari(cert).await;
        let wait = wait.clamp(ARI_MIN_WAIT, ARI_MAX_WAIT);
        self.windows.insert(cert.id, (window, now + wait.as_secs() as i64));
        window
    }

    async fn ask_ari(&mut self, cert: &CertificateInfo) -> (Option<(i64, i64)>, Duration) {
        let Ok(account) = self.account().await else { return (None, ARI_MIN_WAIT) };
        let Some(id) = self.certificate_identifier(cert.id).await else {
            return (None, ARI_MAX_WAIT);
        };
        match account.renewal_info(&id).await {
            Ok((info, retry_after)) => {
                self.ari = Ari::Offered;
                let window = info.suggested_window;
                (Some((window.start.unix_timestamp(), window.end.unix_timestamp())), retry_after)
            }
            Err(instant_acme::Error::Unsupported(_)) => {
                // pebble 2.4, and CAs before RFC 9773: the lifetime rule alone.
                tracing::debug!("the ACME CA offers no renewal information (ARI)");
                self.ari = Ari::NotOffered;
                (None, ARI_MAX_WAIT)
            }
            Err(e) => {
                tracing::debug!(error = %e, certificate = cert.id, "no ARI answer");
                (None, ARI_MIN_WAIT)
            }
        }
    }

    /// The ARI identifier of a stored certificate (RFC 9773 §4.1), from its leaf.
    async fn certificate_identifier(&self, id: i64) -> Option<CertificateIdentifier<'static>> {
        let serving = self.store.serving_certificates().await.ok()?;
        let cert = serving.into_iter().find(|c| c.info.id == id)?;
        let leaf = CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes()).next()?.ok()?;
        CertificateIdentifier::try_from(&leaf).ok().map(CertificateIdentifier::into_owned)
    }

    fn warn_if_expiring(&mut self, cert: &CertificateInfo, now: i64) {
        if !expiring_soon(cert.not_after, now) {
            return;
        }
        let today = now / 86_400;
        if self.warned.get(&cert.id) == Some(&today) {
            return;
        }
        self.warned.insert(cert.id, today);
        let days = (cert.not_after - now).max(0) / 86_400;
        tracing::warn!(
            certificate = cert.id,
            names = %cert.names.join(" "),
            not_after = cert.not_after,
            days_left = days,
            "an ACME certificate expires within {} days and is not renewed yet; see `postern cert list`",
            schedule::WARN_BEFORE / 86_400
        );
    }

    /// The account for this directory: the stored one, else a new one (then stored).
    async fn account(&mut self) -> Result<Account, String> {
        if let Some(account) = &self.account {
            return Ok(account.clone());
        }
        let directory = &self.config.directory;
        let stored = self.store.acme_account(directory).await.map_err(|e| e.to_string())?;
        let account = match stored {
            Some(credentials) => {
                let account = account::restore(&self.config, &credentials).await?;
                tracing::info!(directory = %directory, account = account.id(), "ACME account loaded");
                account
            }
            None => self.register().await?,
        };
        self.account = Some(account.clone());
        Ok(account)
    }

    async fn register(&mut self) -> Result<Account, String> {
        let directory = &self.config.directory;
        let (account, credentials) = account::create(&self.config).await?;
        self.store
            .save_acme_account(directory, self.config.contact.as_deref(), &credentials)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(directory = %directory, account = account.id(), "ACME account registered");
        Ok(account)
    }

    /// One attempt at `order`, with its outcome recorded.
    async fn process(&mut self, order: AcmeOrder) -> Result<(), Error> {
        let now = self.store.clock().now();
        let attempts = order.attempts + 1;
        // Claimed: another round (or engine) leaves it alone while it runs.
        self.store
            .update_acme_order(
                order.id,
                OrderState::Pending,
                order.error.as_deref(),
                order.attempts,
                now + LEASE,
                None,
            )
            .await?;
        let outcome = self.attempt(&order).await;
        let now = self.store.clock().now();
        match outcome {
            Ok(certificate) => {
                self.store
                    .update_acme_order(
                        order.id,
                        OrderState::Issued,
                        None,
                        attempts,
                        now,
                        Some(certificate.id),
                    )
                    .await?;
                tracing::info!(
                    order = order.id,
                    certificate = certificate.id,
                    names = %certificate.names.join(" "),
                    not_after = certificate.not_after,
                    "certificate issued by the ACME CA"
                );
                if let Some(old) = order.replaces {
                    // Renewed: the old one would only clutter the list (the resolver already
                    // prefers the newer).
                    if let Err(e) = self.store.remove_certificate(ACTOR, old).await {
                        tracing::debug!(error = %e, certificate = old, "the replaced certificate is gone");
                    }
                }
            }
            Err(error) => {
                let (state, next) = if error.is_permanent() {
                    (OrderState::Failed, now)
                } else {
                    let wait = backoff(attempts, self.config.retry_first, self.config.retry_max);
                    (OrderState::Pending, now + wait.as_secs() as i64)
                };
                self.store
                    .update_acme_order(order.id, state, Some(&error.message), attempts, next, None)
                    .await?;
                tracing::warn!(
                    order = order.id,
                    names = %order.names.join(" "),
                    attempts,
                    error = %error.message,
                    retry_in_seconds = (state == OrderState::Pending).then_some(next - now),
                    "an ACME order failed{}",
                    if state == OrderState::Failed { "; it is not tried again" } else { "; it is tried again later" }
                );
            }
        }
        Ok(())
    }

    /// Talks to the CA until the order is issued or fails for a reason other than a nonce.
    async fn attempt(&mut self, order: &AcmeOrder) -> Result<CertificateInfo, OrderError> {
        let challenge = match order.challenge {
            OrderChallenge::Http01 => Challenge::Http01,
            OrderChallenge::TlsAlpn01 => Challenge::TlsAlpn01,
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let account = self.account().await.map_err(|message| OrderError {
                message,
                bad_nonce: false,
                kind: None,
            })?;
            let replaces = match (self.ari, order.replaces) {
                (Ari::Offered, Some(id)) => self.certificate_identifier(id).await,
                _ => None,
            };
            let mut progress = StoreProgress { store: &self.store, order };
            let result = order_certificate(
                &account,
                &order.names,
                challenge,
                replaces,
                &self.responders,
                &mut progress,
            )
            .await;
            match result {
                Ok(issued) => {
                    return self
                        .store
                        .import_certificate(
                            ACTOR,
                            &issued.chain_pem,
                            &issued.key_pem,
                            CertificateSource::Acme,
                            Some(&self.config.directory),
                        )
                        .await
                        .map_err(|e| OrderError {
                            message: format!("the issued certificate was refused: {e}"),
                            bad_nonce: false,
                            kind: None,
                        });
                }
                Err(e) if e.bad_nonce && tries < NONCE_RETRIES => {
                    tracing::debug!(order = order.id, "the CA refused a nonce again; retrying");
                }
                Err(e) if e.unknown_account() && tries < 2 => {
                    tracing::warn!(
                        directory = %self.config.directory,
                        "the ACME CA no longer knows the stored account; registering a new one"
                    );
                    self.account = Some(self.register().await.map_err(|message| OrderError {
                        message,
                        bad_nonce: false,
                        kind: None,
                    })?);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Writes `validating` when the CA has been asked to check the challenges.
struct StoreProgress<'a> {
    store: &'a Store,
    order: &'a AcmeOrder,
}

impl Progress for StoreProgress<'_> {
    async fn validating(&mut self) {
        let o = self.order;
        let lease = self.store.clock().now() + LEASE;
        let result = self
            .store
            .update_acme_order(
                o.id,
                OrderState::Validating,
                o.error.as_deref(),
                o.attempts,
                lease,
                None,
            )
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, order = o.id, "cannot record an ACME order's progress");
        }
    }
}

/// True when another stored certificate covers every name of `cert` and lasts longer: then
/// `cert` is no longer served, and not renewed.
fn superseded(cert: &CertificateInfo, all: &[CertificateInfo]) -> bool {
    all.iter().any(|other| {
        other.id != cert.id
            && other.not_after > cert.not_after
            && cert.names.iter().all(|n| other.names.iter().any(|o| o.eq_ignore_ascii_case(n)))
    })
}

/// True when a renewal of `cert` is on order, or one failed for good within the day (asking
/// again at once would fail the same way).
fn renewal_pending(cert: &CertificateInfo, orders: &[AcmeOrder], now: i64) -> bool {
    let mut names = cert.names.clone();
    names.sort();
    orders.iter().any(|o| {
        let mut theirs = o.names.clone();
        theirs.sort();
        let same = o.replaces == Some(cert.id) || theirs == names;
        same && (o.state.is_open()
            || (o.state == OrderState::Failed && now - o.updated_at < 86_400)
            || (o.state == OrderState::Issued && o.replaces == Some(cert.id)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(id: i64, names: &[&str], not_after: i64) -> CertificateInfo {
        CertificateInfo {
            id,
            names: names.iter().map(|n| n.to_string()).collect(),
            issuer: "CN=test".into(),
            not_before: 0,
            not_after,
            source: CertificateSource::Acme,
            acme_directory: None,
            created_at: 0,
        }
    }

    fn order(id: i64, names: &[&str], state: OrderState, replaces: Option<i64>) -> AcmeOrder {
        AcmeOrder {
            id,
            names: names.iter().map(|n| n.to_string()).collect(),
            challenge: OrderChallenge::Http01,
            state,
            error: None,
            attempts: 0,
            next_attempt_at: 0,
            certificate_id: None,
            replaces,
            created_at: 0,
            updated_at: 1000,
        }
    }

    #[test]
    fn a_longer_certificate_for_the_same_names_supersedes() {
        let old = cert(1, &["a.example", "b.example"], 100);
        let new = cert(2, &["b.example", "a.example", "c.example"], 200);
        let other = cert(3, &["a.example"], 300);
        assert!(superseded(&old, &[old.clone(), new.clone()]));
        assert!(!superseded(&new, &[old.clone(), new.clone()]));
        assert!(!superseded(&old, &[old.clone(), other]), "b.example is not covered");
    }

    #[test]
    fn a_renewal_is_asked_for_once() {
        let c = cert(1, &["a.example"], 100);
        assert!(!renewal_pending(&c, &[], 2000));
        let open = order(5, &["a.example"], OrderState::Pending, Some(1));
        assert!(renewal_pending(&c, &[open], 2000));
        let other_names = order(5, &["b.example"], OrderState::Pending, None);
        assert!(!renewal_pending(&c, &[other_names], 2000));
        let failed = order(6, &["a.example"], OrderState::Failed, Some(1));
        assert!(renewal_pending(&c, std::slice::from_ref(&failed), 2000));
        assert!(!renewal_pending(&c, &[failed], 1000 + 86_400), "a day later it is asked again");
        let done = order(7, &["a.example"], OrderState::Issued, Some(1));
        assert!(renewal_pending(&c, &[done], 2000));
    }
}
