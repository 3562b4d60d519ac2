//! What `serve` hands the console from the rest of the appliance: the certificate's dates, and
//! the engine's DNS resolver for the dashboard's MX check (the console never depends on the
//! engine crate itself).

use std::path::Path;
use std::sync::Arc;

use postern_server::dns::{DnsError, HickoryResolver, Resolver};
use postern_web::CertificateInfo;
use postern_web::dns::{MxAnswer, MxFuture, MxLookup};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Reads the validity of the PEM certificate at `path`; `None` (logged) if it cannot.
pub fn certificate_info(path: &Path) -> Option<CertificateInfo> {
    let der = match CertificateDer::from_pem_file(path) {
        Ok(der) => der,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the certificate");
            return None;
        }
    };
    match x509_parser::parse_x509_certificate(der.as_ref()) {
        Ok((_, cert)) => Some(CertificateInfo {
            path: path.display().to_string(),
            not_after: cert.validity().not_after.timestamp(),
            self_signed: cert.issuer() == cert.subject(),
        }),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot parse the certificate");
            None
        }
    }
}

/// The engine's resolver, answering the console's MX questions.
pub struct ConsoleDns(HickoryResolver);

impl ConsoleDns {
    /// The engine's resolver, if it has one (the failure was logged when it was built).
    pub fn lookup(resolver: Option<HickoryResolver>) -> Option<Arc<dyn MxLookup>> {
        match resolver {
            Some(resolver) => Some(Arc::new(ConsoleDns(resolver))),
            None => {
                tracing::warn!("no DNS resolver: the dashboard's MX check is off");
                None
            }
        }
    }
}

impl MxLookup for ConsoleDns {
    fn mx<'a>(&'a self, domain: &'a str) -> MxFuture<'a> {
        Box::pin(async move {
            match self.0.mx(domain).await {
                Ok(records) => MxAnswer::Hosts(records.into_iter().map(|r| r.exchange).collect()),
                Err(DnsError::NxDomain { .. } | DnsError::NoData { .. }) => MxAnswer::None,
                Err(e) => MxAnswer::Failed(e.to_string()),
            }
        })
    }
}

/// The engine's DKIM checker, for the console's and the API's "check now".
pub struct ConsoleDkim(pub postern_server::mailauth::DkimChecker);

impl postern_web::dns::DkimCheck for ConsoleDkim {
    fn check<'a>(
        &'a self,
        actor: &'a str,
        domain: &'a postern_store::model::DomainName,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = postern_store::Result<Vec<postern_store::model::DkimKey>>,
                > + Send
                + 'a,
        >,
    > {
        let checker =
            postern_server::mailauth::DkimChecker { actor: actor.to_string(), ..self.0.clone() };
        Box::pin(async move { checker.check(Some(domain)).await })
    }
}

/// The engine's policy protocol client, for the policy services' live test.
pub struct ConsolePolicyProbe;

impl postern_web::policy_probe::PolicyProbe for ConsolePolicyProbe {
    fn probe<'a>(
        &'a self,
        service: &'a postern_store::model::PolicyService,
        request: &'a postern_web::policy_probe::ProbeRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + 'a>>
    {
        let query = postern_server::policy::delegate::Query {
            protocol_name: "ESMTP".into(),
            helo_name: request.helo.clone(),
            sender: request.sender.clone(),
            recipient: request.recipient.clone(),
            client: Some(std::net::SocketAddr::new(request.client, 0)),
            client_name: "unknown".into(),
            ..Default::default()
        };
        Box::pin(async move {
            postern_server::policy::delegate::probe(service, &query)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// The engine's DNS health report (`postern dns check`'s), for the console's DNS health page,
/// the domain list's summaries and `GET /api/v1/domains/{name}/dns`: the domain's keys from the
/// store, every lookup through the process's resolver (`[dns] servers`).
pub struct ConsoleHealth {
    pub store: postern_store::Store,
    pub resolver: Arc<dyn Resolver>,
    pub hostname: String,
}

impl postern_web::dns_health::HealthCheck for ConsoleHealth {
    fn check<'a>(
        &'a self,
        domain: &'a postern_store::model::DomainName,
    ) -> postern_web::dns_health::HealthFuture<'a> {
        Box::pin(async move {
            let keys = match self.store.list_dkim_keys(Some(domain)).await {
                Ok(keys) => keys,
                Err(e) => {
                    // The other rows are still worth having; the DKIM ones come back next time.
                    tracing::warn!(error = %e, %domain, "cannot read the DKIM keys for the DNS health report");
                    Vec::new()
                }
            };
            postern_server::mailauth::check_domain(
                self.resolver.as_ref(),
                &self.hostname,
                domain.as_str(),
                &keys,
            )
            .await
        })
    }
}
