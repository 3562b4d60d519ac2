//! The DKIM key rollout's DNS side: look up each key's record through the process's resolver,
//! record what was found (published and matching, missing, or different), and let the store
//! move the states on — a pending key whose record is seen becomes active (and the key it
//! replaces starts retiring), a retiring key whose grace period is over is retired, and a domain
//! that rotates automatically gets the next key of an active one that has signed for its period.
//! Run on a schedule by the engine and on demand by `postern dkim check` and the API.

use std::sync::Arc;
use std::time::Duration;

use postern_store::model::{DkimKey, DkimState, DnsCheck, DomainName, is_dkim_record};
use postern_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::dns::{DnsError, Resolver};

/// What DNS shows at `key`'s record name (RFC 6376 §3.6.2.2: the TXT record's strings joined).
pub async fn check_key(resolver: &dyn Resolver, key: &DkimKey) -> DnsCheck {
    match resolver.txt(&key.record_name()).await {
        Ok(texts) if texts.iter().any(|t| key.matches(t)) => DnsCheck::Published,
        Ok(texts) => {
            let found: Vec<&String> = texts.iter().filter(|t| is_dkim_record(t)).collect();
            if found.is_empty() {
                DnsCheck::Missing
            } else {
                DnsCheck::Different(
                    found.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(" | "),
                )
            }
        }
        Err(DnsError::NxDomain { .. } | DnsError::NoData { .. }) => DnsCheck::Missing,
        // Says nothing about the record: a pending key stays pending, an active one signs on.
        Err(e) => DnsCheck::Failed(e.to_string()),
    }
}

/// Checks keys and moves their states on.
#[derive(Clone)]
pub struct DkimChecker {
    pub store: Store,
    pub resolver: Arc<dyn Resolver>,
    /// Who the audit trail says activated or retired a key (`engine:<host>`, `cli:alice`).
    pub actor: String,
}

impl DkimChecker {
    /// Retires what is due, then checks every key of `domain` (or of every domain) that is not
    /// retired, in one pass; returns the keys as they are afterwards.
    pub async fn check(&self, domain: Option<&DomainName>) -> Result<Vec<DkimKey>, StoreError> {
        self.check_at(domain, self.store.clock().now()).await
    }

    /// [`DkimChecker::check`] as of `at` (epoch seconds): tests move time on with it.
    pub async fn check_at(
        &self,
        domain: Option<&DomainName>,
        at: i64,
    ) -> Result<Vec<DkimKey>, StoreError> {
        self.store.retire_due_dkim_keys(&self.actor, at).await?;
        // Automatic rotation (every domain's: the check of one domain is cheap either way, and
        // the next key is pending, signing nothing until its record is seen).
        for key in self.store.auto_rotate_dkim_keys(&self.actor, at).await? {
            tracing::info!(
                record = %key.record_name(),
                "DKIM key rotated automatically: publish the new record; signing switches once \
                 it is seen"
            );
        }
        let keys = self.store.list_dkim_keys(domain).await?;
        for key in keys {
            if key.state == DkimState::Retired {
                continue;
            }
            let found = check_key(self.resolver.as_ref(), &key).await;
            if key.state == DkimState::Active && found != DnsCheck::Published {
                tracing::warn!(
                    record = %key.record_name(),
                    found = found.status(),
                    "the record of an active DKIM key is not published as it should be: \
                     receivers cannot verify its signatures"
                );
            }
            let after = self
                .store
                .record_dkim_check(&self.actor, &key.domain, &key.selector, &found)
                .await?;
            if key.state == DkimState::Pending && after.state == DkimState::Active {
                tracing::info!(record = %after.record_name(), "DKIM record seen: the key signs from now on");
            }
        }
        // Read again: activating one key moves the one it replaces too.
        self.store.list_dkim_keys(domain).await
    }
}

/// How often the engine looks at DKIM records.
pub const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// Checks every `every` (the first one at once) until `shutdown`, on the store's clock (a
/// simulated one in tests).
pub async fn run_schedule(checker: DkimChecker, every: Duration, shutdown: CancellationToken) {
    let clock = checker.store.clock();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        if let Err(e) = checker.check(None).await {
            tracing::warn!(error = %e, "DKIM record check failed; trying again at the next one");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = clock.sleep(every) => {}
        }
    }
}
