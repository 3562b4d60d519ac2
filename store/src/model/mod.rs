//! Plain types for everything the appliance manages, with their parsing and validation rules.

mod admin;
mod advice;
mod alias;
mod audit;
mod certificate;
mod config;
mod content_check;
mod directory;
mod dkim;
mod dkim_settings;
mod dns_health;
mod dnsbl;
mod domain;
mod greylist;
mod mail_auth;
mod mailbox;
mod milter;
mod mta_sts;
mod name;
mod network;
mod password;
mod policy;
mod policy_service;
mod postmaster;
mod queue;
mod rate_limit;
mod send_as;
mod transport;

pub(crate) use admin::join_domains;
pub use admin::{Access, Admin, AdminName, ApiToken, IssuedToken, Role, parse_domain_list};
pub use alias::{Alias, AliasSource, MAX_DESTINATIONS};
pub use audit::AuditEntry;
pub use certificate::{
    AcmeOrder, CertificateError, CertificateInfo, CertificateSource, Challenge, OrderState,
    ParsedCertificate, PrivateKeyPem, ServingCertificate, choose_certificate, name_matches,
    parse_certificate,
};
pub use config::{
    Config, Destination, MAX_ALIAS_DEPTH, MAX_EXPANSION, Problem, ResolveError, Summary,
};
pub use content_check::{
    BODY_PART_LIMIT, BODY_SCAN_LIMIT, CheckAction, CheckPart, CheckPattern, ContentCheck,
    ContentChecks, ContentDecision, ContentHit, ContentVerdict, NewContentCheck,
    check_header_field,
};
pub use directory::{
    DEFAULT_DIRECTORY_CACHE_TTL_SECS, DEFAULT_DIRECTORY_TIMEOUT_MS, DirectoryPassword,
    DirectorySettings, DirectoryUpdate, DirectoryUrl, EntryAddress, MAX_DIRECTORY_CACHE_TTL_SECS,
    MAX_DIRECTORY_TIMEOUT_MS, escape_filter_value, parse_address_value, parse_attributes,
    parse_directory_url,
};
pub use dkim::generate as dkim_generate;
pub use dkim::{
    DEFAULT_RSA_BITS, DkimAlgorithm, DkimKey, DkimPrivateKey, DkimState, DnsCheck, GeneratedKey,
    RSA_BITS, TXT_STRING_MAX, check_bits, check_selector, dated_selector, is_dkim_record,
    record_name, split_txt,
};
pub use dkim_settings::{
    DkimSettings, MAX_ROTATE_DAYS, MIN_ROTATE_DAYS, check_rotate_days, parse_rotate_every,
};
pub use dns_health::{Health, HealthRow, health_summary};
pub use dnsbl::{
    Blocklist, Dnsbl, DnsblFailure, DnsblHit, DnsblReport, ListKind, NewBlocklist, ReturnCodes,
    WhitelistEntry, check_weight, domain_query, ip_query,
};
pub use domain::{Domain, DomainKind};
pub use greylist::{
    GreylistRecord, GreylistSettings, GreylistVerdict, Greylisting, Judgement, Triplet, judge,
};
pub use mail_auth::{
    DmarcQuarantineAction, DmarcRejectAction, MailAuthPolicies, MailAuthPolicy, SpfFailAction,
    TempErrorAction,
};
pub(crate) use mailbox::check_display_name;
pub use mailbox::{Mailbox, MailboxUpdate, NewMailbox};
pub use milter::{
    MAX_MILTER_TIMEOUT_MS, Milter, MilterAddress, MilterDefault, MilterListeners, MilterTimeouts,
    NewMilter, check_name as check_milter_name, parse_timeout as parse_milter_timeout,
};
pub use mta_sts::{
    DEFAULT_STS_AGE, MAX_STS_AGE, MtaStsPolicy, StsMode, check_report_to, check_sts_age,
    parse_sts_mx, sts_policy_id,
};
pub use name::{Address, DomainName};
pub use network::{TrustedNetwork, is_open_relay_range, open_relay_warning, parse_cidr};
pub use password::{MEMORY_BLOCKS, MIN_PASSWORD_LEN, PasswordHash, check_new_password};
pub use policy::{
    Matcher, NewPolicyRule, Policy, PolicyAction, PolicyEnvelope, PolicyHit, PolicyMatch,
    PolicyReply, PolicyRule, PolicyRuleText, PolicyStage, PolicyStep,
};
pub use policy_service::{
    DEFAULT_SERVICE_TIMEOUT, MAX_SERVICE_TIMEOUT, NewPolicyService, OnFailure, PolicyService,
    ServiceAddress, ServiceStage, check_service_name, parse_service_timeout,
};
pub use postmaster::Postmaster;
pub use queue::{
    BOUNCE_REPORTED, BOUNCED_BY_ADMIN, BadQueueId, DamagedEntry, DeliveryResult, DsnRet,
    NewMessage, NewRecipient, Notify, Outcome, Page, QueueAction, QueueActor, QueueEvent,
    QueueFilter, QueueId, QueuePage, QueuedMessage, QueuedRecipient, RecipientStatus, Selection,
    WorkSet,
};
pub use rate_limit::{
    MAX_RATE_THRESHOLD, MAX_RATE_WINDOW, NewRateLimit, RateKey, RateLimit, RateMeasure,
    format_window, parse_window,
};
pub use send_as::{MAX_SEND_AS, SendAs, parse_send_as};
pub(crate) use send_as::{check_send_as, join_send_as};
pub use transport::{
    Host, LmtpTarget, SmtpCredentials, TlsPolicy, Transport, TransportPattern, TransportRule,
};
