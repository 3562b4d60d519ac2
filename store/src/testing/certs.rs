//! Certificates for tests: a CA made with rcgen that issues leaves with chosen names and
//! validity, as PEM (chain, key), the way an administrator would upload them.

use time::OffsetDateTime;

/// A test certificate authority.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

fn at(epoch: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(epoch).expect("a representable time")
}

impl TestCa {
    /// A new CA whose common name is `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        TestCa { issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap() }
    }

    /// The CA's own certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA's own certificate, DER.
    pub fn der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// A leaf for `names`, valid from `not_before` to `not_after` (epoch seconds): the chain
    /// (leaf, then this CA) and the leaf's key, both PEM.
    pub fn issue(&self, names: &[&str], not_before: i64, not_after: i64) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_before = at(not_before);
        params.not_after = at(not_after);
        let leaf = params.signed_by(&key, &self.issuer).unwrap();
        (format!("{}{}", leaf.pem(), self.issuer.pem()), key.serialize_pem())
    }

    /// A leaf for `names` valid from a day ago for 90 days.
    pub fn issue_now(&self, names: &[&str]) -> (String, String) {
        let now = crate::now();
        self.issue(names, now - 86_400, now + 90 * 86_400)
    }
}

/// A self-signed leaf (no CA) for `names`: certificate and key, PEM.
pub fn leaf(names: &[&str], not_before: i64, not_after: i64) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.not_before = at(not_before);
    params.not_after = at(not_after);
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}
