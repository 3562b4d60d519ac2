//! Couriers: what carries one message to the recipients of one route. The scheduler decides
//! when, to whom and in what order; a courier only delivers and says what became of each
//! recipient. So the scheduler's own rules (hold, release, retry, give up) are tested with a
//! fake courier, and each real delivery agent on its own against real peers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use postern_store::model::{Config, SmtpCredentials, TlsPolicy};

use super::local;
use super::route::Route;
use super::scheduler::SchedulerConfig;
use crate::delivery::{self, ClientOptions, Delivery, Handoff, Maildir, Outcome, Pool, Protocol};

/// What a delivery may need besides the message itself.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The configuration current at this attempt: local mailboxes are looked up in it.
    pub config: &'a Config,
    /// The message was found in the queue at start-up: an earlier attempt may have delivered
    /// some of it already (see `Maildir::deliver`).
    pub recovered: bool,
}

/// Carries a message to the recipients of one route: one outcome per recipient, in order.
/// The scheduler settles `Route::Discard` and `Route::Refuse` itself ([`settled`]).
pub trait Courier: Send + Sync + 'static {
    fn deliver<'a>(
        &'a self,
        route: &'a Route,
        delivery: &'a Delivery<'a>,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Vec<Outcome>> + Send + 'a>>;
}

/// The real couriers: Maildir for local mailboxes, SMTP or LMTP to a fixed next hop through the
/// connection cache, and SMTP to a domain's MX hosts (with MTA-STS where the route asks).
pub struct Couriers {
    config: Arc<SchedulerConfig>,
    maildir: Maildir,
    pool: Arc<Pool>,
}

impl Couriers {
    pub fn new(config: Arc<SchedulerConfig>, maildir: Maildir, pool: Arc<Pool>) -> Couriers {
        Couriers { config, maildir, pool }
    }
}

/// The client settings for a fixed next hop: the scheduler needs them to wait for the
/// destination's turn (they are part of the connection cache's key), the courier to deliver.
pub(super) fn next_hop_options(
    config: &SchedulerConfig,
    protocol: Protocol,
    tls: TlsPolicy,
    credentials: Option<&SmtpCredentials>,
) -> ClientOptions {
    let mut options = ClientOptions::new(protocol, config.hostname.clone());
    options.tls = tls;
    options.credentials = credentials.cloned();
    options.extra_roots = config.extra_roots.clone();
    options
}

impl Courier for Couriers {
    fn deliver<'a>(
        &'a self,
        route: &'a Route,
        delivery: &'a Delivery<'a>,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Vec<Outcome>> + Send + 'a>> {
        Box::pin(async move {
            let config = &*self.config;
            match route {
                Route::Local => {
                    local::deliver(
                        context.config,
                        &self.maildir,
                        context.recovered,
                        delivery.recipients,
                        *delivery,
                    )
                    .await
                }
                Route::Next { protocol, target, tls, credentials } => {
                    let options = next_hop_options(config, *protocol, *tls, credentials.as_ref());
                    self.pool.deliver(config.connector.as_ref(), target, &options, delivery).await
                }
                Route::Mx { domain, port, tls, mta_sts } => {
                    let options = next_hop_options(config, Protocol::Smtp, *tls, None);
                    let (resolver, connector) = (&*config.resolver, &*config.connector);
                    let pool = Some(self.pool.as_ref());
                    match config.mta_sts.as_ref().filter(|_| *mta_sts) {
                        Some(sts) => {
                            let policy = sts.policy(domain.as_str()).await;
                            delivery::mx::deliver_mx_sts(
                                resolver,
                                connector,
                                pool,
                                domain,
                                policy.as_deref(),
                                &options,
                                delivery,
                            )
                            .await
                        }
                        None => {
                            delivery::mx::deliver_mx_on(
                                resolver, connector, pool, domain, *port, &options, delivery,
                            )
                            .await
                        }
                    }
                }
                Route::Discard | Route::Refuse(_) => {
                    settled(route, delivery.recipients.len()).unwrap_or_default()
                }
            }
        })
    }
}

/// The outcomes of a route that carries nothing (discarded, or refused by configuration),
/// which the scheduler settles without a courier.
pub(super) fn settled(route: &Route, n: usize) -> Option<Vec<Outcome>> {
    match route {
        Route::Discard => {
            let discarded =
                Outcome::Delivered { detail: "discarded".into(), handoff: Handoff::Discarded };
            Some(vec![discarded; n])
        }
        Route::Refuse(reply) => Some(vec![Outcome::failed(reply.clone()); n]),
        _ => None,
    }
}
