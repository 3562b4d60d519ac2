//! What every handler shares: the store and the console's settings. Cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use postern_store::Store;
use postern_store::auth::PasswordChecks;
use postern_store::boot::ConsoleOptions;

use crate::conn::ConnectionCap;
use crate::dns::{DkimCheck, DnsWatch, MxLookup};
use crate::dns_health::{HealthCache, HealthCheck};

/// The appliance's TLS certificate, as the dashboard shows it.
#[derive(Debug, Clone)]
pub struct CertificateInfo {
    /// Where it is on disk.
    pub path: String,
    /// Epoch seconds after which clients refuse it.
    pub not_after: i64,
    pub self_signed: bool,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The appliance's host name, shown in the page title and used for DNS checks.
    pub hostname: String,
    /// Served over HTTPS: the session cookie gets `Secure` and the `__Host-` prefix.
    pub https: bool,
    /// How long a change waits for the engine before the page says "pending".
    pub live_wait: Duration,
    pub certificate: Option<CertificateInfo>,
    /// The listeners' connection cap and timeouts, the Host names answered to, whether plain
    /// HTTP redirects to HTTPS, and the sessions' idle and absolute limits (`[console]` in
    /// postern.toml).
    pub options: ConsoleOptions,
    /// The HTTPS listener's port, when there is one: where plain HTTP redirects to.
    pub https_port: Option<u16>,
    /// Whether the boot configuration turns ACME on (`[acme]`): ordering a certificate is
    /// refused, saying how to turn it on, when it does not.
    pub acme: bool,
    /// The listeners that present the stored certificates (`smtp 0.0.0.0:25`, …), as the
    /// Certificates page lists them.
    pub tls_listeners: Vec<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            hostname: "localhost".into(),
            https: false,
            live_wait: Duration::from_millis(1500),
            certificate: None,
            options: ConsoleOptions::default(),
            https_port: None,
            acme: false,
            tls_listeners: Vec::new(),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    /// Login attempts and password hashing, shared with SMTP AUTH when both run in one process.
    pub(crate) passwords: PasswordChecks,
    /// Looks up MX records for the dashboard's DNS check; `None` turns the check off.
    pub(crate) dns: Option<Arc<dyn MxLookup>>,
    pub(crate) dns_watch: Arc<DnsWatch>,
    /// Looks up DKIM records on demand (the API's and the console's "check now"); `None`
    /// when this process has no resolver.
    pub(crate) dkim_check: Option<Arc<dyn DkimCheck>>,
    /// Connections held over every listener of this console.
    pub(crate) connections: Arc<ConnectionCap>,
    /// Asks the DNS blocklists for the Blocklists page's and the API's live test; `None` when
    /// this process has no resolver.
    pub(crate) dnsbl_check: Option<Arc<dyn crate::screening::DnsblCheck>>,
    /// Tests a milter on demand; `None` when this process has no milter client.
    pub(crate) milter_probe: Option<Arc<dyn crate::milters::MilterProbe>>,
    /// Sends a policy service one test request; `None` when this process has no engine code.
    pub(crate) policy_probe: Option<Arc<dyn crate::policy_probe::PolicyProbe>>,
    /// Tests a domain's directory and looks addresses up in it; `None` when this process has no
    /// LDAP client.
    pub(crate) directory_probe: Option<Arc<dyn crate::directory::DirectoryProbe>>,
    /// Makes a domain's DNS health report; `None` when this process has no resolver.
    pub(crate) health: Option<Arc<dyn HealthCheck>>,
    /// The last DNS health report of each domain.
    pub(crate) health_cache: Arc<HealthCache>,
    /// Good API tokens, so that a request does not read the store for its token.
    pub(crate) tokens: Arc<crate::auth::token_cache::TokenCache>,
    /// The API's answers to reads of domains, mailboxes and aliases, at the current revision.
    pub(crate) responses: Arc<crate::api::response_cache::ResponseCache>,
    /// Who may scrape `/metrics`; `None` (no `[metrics]`) answers 404 there.
    pub(crate) metrics: Option<crate::metrics::MetricsAccess>,
}

impl AppState {
    pub fn new(store: Store, settings: Settings) -> AppState {
        let options = &settings.options;
        let connections =
            ConnectionCap::new(options.max_connections, options.max_connections_per_address);
        let tokens = Arc::new(crate::auth::token_cache::TokenCache::new(store.subscribe()));
        let responses = Arc::new(crate::api::response_cache::ResponseCache::new(store.subscribe()));
        let passwords = PasswordChecks::default().on_clock(store.clock());
        AppState {
            connections,
            store,
            settings: Arc::new(settings),
            passwords,
            dns: None,
            dns_watch: Arc::default(),
            dkim_check: None,
            dnsbl_check: None,
            milter_probe: None,
            policy_probe: None,
            directory_probe: None,
            health: None,
            health_cache: Arc::default(),
            tokens,
            responses,
            metrics: None,
        }
    }

    /// Serves `/metrics` to the scrapers `access` admits.
    pub fn with_metrics(mut self, access: crate::metrics::MetricsAccess) -> AppState {
        self.metrics = Some(access);
        self
    }

    /// Lets the Milters page and API test a milter now, with this client.
    pub fn with_milter_probe(mut self, probe: Arc<dyn crate::milters::MilterProbe>) -> AppState {
        self.milter_probe = Some(probe);
        self
    }

    /// Lets the Directory page and API test a domain's directory and look addresses up.
    pub fn with_directory_probe(
        mut self,
        probe: Arc<dyn crate::directory::DirectoryProbe>,
    ) -> AppState {
        self.directory_probe = Some(probe);
        self
    }

    /// Lets the policy services' page and API send a service a test request.
    pub fn with_policy_probe(
        mut self,
        probe: Arc<dyn crate::policy_probe::PolicyProbe>,
    ) -> AppState {
        self.policy_probe = Some(probe);
        self
    }

    /// Turns on the DNS health pages, the API's report and the domain list's summaries.
    pub fn with_health_check(mut self, check: Arc<dyn HealthCheck>) -> AppState {
        self.health = Some(check);
        self
    }

    /// Counts login failures and bounds password hashing with these, shared with the SMTP
    /// engine, instead of the console's own.
    pub fn with_passwords(mut self, passwords: PasswordChecks) -> AppState {
        self.passwords = passwords;
        self
    }

    /// Lets the DKIM pages and API check records now, with this checker.
    pub fn with_dkim_check(mut self, check: Arc<dyn DkimCheck>) -> AppState {
        self.dkim_check = Some(check);
        self
    }

    /// Lets the blocklists' live test ask the lists, with this checker.
    pub fn with_dnsbl_check(mut self, check: Arc<dyn crate::screening::DnsblCheck>) -> AppState {
        self.dnsbl_check = Some(check);
        self
    }

    /// Turns on the dashboard's DNS check with this lookup.
    pub fn with_dns(mut self, lookup: Arc<dyn MxLookup>) -> AppState {
        self.dns = Some(lookup);
        self
    }
}
