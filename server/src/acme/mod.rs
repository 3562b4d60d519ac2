//! Certificates from an ACME CA (RFC 8555): the account, orders and their challenges
//! (HTTP-01 on `[acme] http_listen`, TLS-ALPN-01 on the console's HTTPS listener), renewal.

pub mod account;
pub mod challenge;
pub mod http01;
pub mod order;
pub mod schedule;
pub mod worker;

pub use challenge::{ACME_TLS_ALPN, AlpnChallenges, Http01Tokens, tls_alpn01_certificate};
pub use order::{Challenge, Issued, OrderError, Responders, order_certificate};
pub use worker::{WorkerOptions, run};
