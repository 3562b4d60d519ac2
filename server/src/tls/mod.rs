//! TLS material: the certificate the appliance presents. For now the self-signed one made on
//! first start; the SNI resolver and ACME build on it.

mod self_signed;

pub use self_signed::{CertificateFiles, ensure_self_signed};
