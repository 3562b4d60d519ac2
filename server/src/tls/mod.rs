//! TLS material: the certificates the appliance presents and the rustls configuration that
//! presents them. The self-signed one made on first start is the fallback; the stored ones
//! (uploaded, or issued by ACME) are chosen by SNI through one resolver (`resolver.rs`).

mod acceptor;
mod resolver;
mod self_signed;

pub use acceptor::{acceptor_from_files, acceptor_from_pem};
pub use resolver::{
    ACME_TLS_ALPN, CertResolver, certified_key, certified_key_from_files, follow, server_config,
};
pub use self_signed::{CertificateFiles, ensure_self_signed};
