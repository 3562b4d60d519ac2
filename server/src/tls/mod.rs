//! TLS material: the certificate the appliance presents, and the rustls configuration that
//! presents it. For now the self-signed one made on first start; ACME builds on it.

mod acceptor;
mod self_signed;

pub use acceptor::{acceptor_from_files, acceptor_from_pem};
pub use self_signed::{CertificateFiles, ensure_self_signed};
