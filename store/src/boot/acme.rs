//! The `[acme]` section: certificates from an ACME CA (RFC 8555), Let's Encrypt by default.
//! The section's presence turns ACME on; without it the appliance keeps its self-signed and
//! uploaded certificates.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use super::BootError;
use super::delivery::Scalar;
use super::{format_duration, parse_duration};

/// Let's Encrypt's production directory: the default.
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (untrusted certificates, generous rate limits), named
/// `directory = "letsencrypt-staging"` for short.
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The HTTP-01 responder's address when none is given: port 80 is where the CA looks
/// (RFC 8555 §8.3).
pub const DEFAULT_HTTP_LISTEN: &str = "0.0.0.0:80";

/// The section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAcme {
    directory: Option<String>,
    contact: Option<String>,
    ca_file: Option<PathBuf>,
    eab_kid: Option<String>,
    eab_hmac: Option<String>,
    http_listen: Option<String>,
    retry_first: Option<Scalar>,
    retry_max: Option<Scalar>,
}

impl RawAcme {
    /// Takes a `POSTERN_ACME_*` variable; false when `key` is not one of them.
    pub(super) fn set_from_env(&mut self, key: &str, value: String) -> bool {
        match key {
            "POSTERN_ACME_DIRECTORY" => self.directory = Some(value),
            "POSTERN_ACME_CONTACT" => self.contact = Some(value),
            "POSTERN_ACME_CA_FILE" => self.ca_file = Some(value.into()),
            "POSTERN_ACME_EAB_KID" => self.eab_kid = Some(value),
            "POSTERN_ACME_EAB_HMAC" => self.eab_hmac = Some(value),
            "POSTERN_ACME_HTTP_LISTEN" => self.http_listen = Some(value),
            "POSTERN_ACME_RETRY_FIRST" => self.retry_first = Some(Scalar::Text(value)),
            "POSTERN_ACME_RETRY_MAX" => self.retry_max = Some(Scalar::Text(value)),
            _ => return false,
        }
        true
    }
}

/// True for the environment variables of this section (any of them turns ACME on).
pub(super) fn is_acme_var(key: &str) -> bool {
    key.starts_with("POSTERN_ACME_")
}

/// The validated `[acme]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// The ACME directory URL (https).
    pub directory: String,
    /// `mailto:` address the CA writes to about expiring certificates and account problems.
    pub contact: Option<String>,
    /// An extra root to trust for the ACME server's own HTTPS (a private CA, tests): the file
    /// and its PEM text, read at start-up so that a bad file is a boot error.
    pub ca_file: Option<PathBuf>,
    pub ca_pem: Option<String>,
    /// External Account Binding (RFC 8555 §7.3.4), for CAs that require an account elsewhere.
    pub eab: Option<ExternalAccount>,
    /// The HTTP-01 responder; `None` when configured as `""` (TLS-ALPN-01 only).
    pub http_listen: Option<SocketAddr>,
    /// The wait after an order's first failed attempt; each later wait doubles, up to
    /// `retry_max`.
    pub retry_first: Duration,
    pub retry_max: Duration,
}

/// One minute, doubling up to six hours: quick enough to fix a DNS or firewall mistake and
/// see it work, slow enough to stay far below a CA's rate limits (Let's Encrypt allows 5
/// failed validations per name per hour).
pub const DEFAULT_RETRY_FIRST: Duration = Duration::from_secs(60);
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(6 * 3600);

/// The key identifier and MAC key the CA issued for External Account Binding.
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalAccount {
    pub kid: String,
    /// The MAC key, decoded from the base64url the CA hands out. A secret.
    pub hmac_key: EabKey,
}

/// The EAB MAC key: its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct EabKey(Vec<u8>);

impl EabKey {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for EabKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EabKey(<redacted>)")
    }
}

impl fmt::Debug for ExternalAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalAccount")
            .field("kid", &self.kid)
            .field("hmac_key", &self.hmac_key)
            .finish()
    }
}

impl AcmeConfig {
    /// Validates the section. `base` is the config file's folder, for a relative `ca_file`.
    pub(super) fn build(
        raw: RawAcme,
        base: Option<&Path>,
        origin: &str,
    ) -> Result<AcmeConfig, BootError> {
        let invalid = |field: &str, value: &str, message: &str| BootError::Invalid {
            origin: origin.to_string(),
            field: format!("acme.{field}"),
            value: value.to_string(),
            message: message.to_string(),
        };

        let directory = match raw.directory.as_deref().map(str::trim) {
            None | Some("letsencrypt") => LETSENCRYPT.to_string(),
            Some("letsencrypt-staging") => LETSENCRYPT_STAGING.to_string(),
            Some(url) => {
                // RFC 8555 §6.1: ACME runs over HTTPS only.
                let rest = url.strip_prefix("https://").ok_or_else(|| {
                    invalid(
                        "directory",
                        url,
                        "must be an https:// URL, \"letsencrypt\" or \"letsencrypt-staging\"",
                    )
                })?;
                if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
                    return Err(invalid("directory", url, "is not a URL with a host name"));
                }
                url.to_string()
            }
        };

        let contact = match raw.contact.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let address = text.strip_prefix("mailto:").unwrap_or(text);
                let valid = address.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty()
                        && domain.contains('.')
                        && !address.contains(|c: char| c.is_whitespace() || c == ',')
                });
                if !valid {
                    return Err(invalid(
                        "contact",
                        text,
                        "must be an email address, like \"mailto:postmaster@example.com\"",
                    ));
                }
                Some(format!("mailto:{address}"))
            }
        };

        let (ca_file, ca_pem) = match raw.ca_file {
            None => (None, None),
            Some(path) if path.as_os_str().is_empty() => {
                return Err(invalid("ca_file", "", "is empty"));
            }
            Some(path) => {
                let path = match (path.is_relative(), base) {
                    (true, Some(dir)) => dir.join(path),
                    _ => path,
                };
                let shown = path.display().to_string();
                let pem = std::fs::read_to_string(&path)
                    .map_err(|e| invalid("ca_file", &shown, &format!("cannot be read: {e}")))?;
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(invalid("ca_file", &shown, "holds no PEM certificate"));
                }
                (Some(path), Some(pem))
            }
        };

        let eab = match (raw.eab_kid, raw.eab_hmac) {
            (None, None) => None,
            (Some(kid), Some(hmac)) => {
                if kid.trim().is_empty() {
                    return Err(invalid("eab_kid", &kid, "is empty"));
                }
                // The value is a secret: errors about it never show it.
                let text = hmac.trim().trim_end_matches('=');
                let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).map_err(
                    |_| invalid("eab_hmac", "<redacted>", "is not base64url (as the CA gives it)"),
                )?;
                if key.is_empty() {
                    return Err(invalid("eab_hmac", "", "is empty"));
                }
                Some(ExternalAccount { kid: kid.trim().to_string(), hmac_key: EabKey(key) })
            }
            (Some(kid), None) => {
                return Err(invalid(
                    "eab_hmac",
                    "",
                    &format!("is missing: eab_kid = {kid:?} needs it"),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid("eab_kid", "", "is missing: eab_hmac needs it"));
            }
        };

        let http_listen = match raw.http_listen.as_deref().map(str::trim) {
            None => Some(DEFAULT_HTTP_LISTEN.parse().expect("constant is an address")),
            Some("") => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "http_listen",
                    text,
                    "is not a socket address (like 0.0.0.0:80), or \"\" for no HTTP-01 responder",
                )
            })?),
        };

        let duration = |field: &str, given: Option<Scalar>, default: Duration| {
            let Some(value) = given else { return Ok(default) };
            let shown = value.shown();
            let d = match &value {
                Scalar::Text(t) => parse_duration(t).map_err(|m| invalid(field, &shown, &m))?,
                Scalar::Number(_) => {
                    return Err(invalid(
                        field,
                        &shown,
                        "must be a whole number and a unit, like \"1m\"",
                    ));
                }
            };
            if d.is_zero() {
                return Err(invalid(field, &shown, "must be at least 1s"));
            }
            Ok(d)
        };
        let retry_first = duration("retry_first", raw.retry_first, DEFAULT_RETRY_FIRST)?;
        let retry_max = duration("retry_max", raw.retry_max, DEFAULT_RETRY_MAX)?;
        if retry_max < retry_first {
            let message =
                format!("must not be shorter than retry_first ({})", format_duration(retry_first));
            return Err(invalid("retry_max", &format_duration(retry_max), &message));
        }

        Ok(AcmeConfig {
            directory,
            contact,
            ca_file,
            ca_pem,
            eab,
            http_listen,
            retry_first,
            retry_max,
        })
    }

    /// True when the directory is one of Let's Encrypt's.
    pub fn is_letsencrypt(&self) -> bool {
        self.directory == LETSENCRYPT || self.directory == LETSENCRYPT_STAGING
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BootConfig, Profile};
    use super::*;

    fn acme(text: &str) -> Result<Option<AcmeConfig>, String> {
        BootConfig::from_toml(text, Profile::Standard).map(|c| c.acme).map_err(|e| e.to_string())
    }

    #[test]
    fn absent_means_off_and_an_empty_section_means_lets_encrypt() {
        assert_eq!(acme("").unwrap(), None);
        let c = acme("[acme]").unwrap().unwrap();
        assert_eq!(c.directory, LETSENCRYPT);
        assert_eq!(c.contact, None);
        assert_eq!(c.eab, None);
        assert_eq!(c.http_listen, Some("0.0.0.0:80".parse().unwrap()));
        assert_eq!((c.retry_first, c.retry_max), (DEFAULT_RETRY_FIRST, DEFAULT_RETRY_MAX));
        assert!(c.is_letsencrypt());
    }

    #[test]
    fn the_section_is_read() {
        let c = acme(
            "[acme]\ndirectory = \"letsencrypt-staging\"\ncontact = \"postmaster@example.com\"\n\
             http_listen = \"127.0.0.1:8081\"\neab_kid = \"kid-1\"\neab_hmac = \"c2VjcmV0LWtleQ\"",
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.directory, LETSENCRYPT_STAGING);
        assert_eq!(c.contact.as_deref(), Some("mailto:postmaster@example.com"));
        assert_eq!(c.http_listen, Some("127.0.0.1:8081".parse().unwrap()));
        let eab = c.eab.as_ref().unwrap();
        assert_eq!((eab.kid.as_str(), eab.hmac_key.bytes()), ("kid-1", &b"secret-key"[..]));
        let shown = format!("{c:?}");
        assert!(!shown.contains("c2VjcmV0") && !shown.contains("115, 101"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");

        let c = acme(
            "[acme]\ndirectory = \"https://127.0.0.1:14000/dir\"\nhttp_listen = \"\"\n\
             retry_first = \"2s\"\nretry_max = \"1m\"",
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.directory, "https://127.0.0.1:14000/dir");
        assert_eq!(c.http_listen, None);
        assert_eq!((c.retry_first, c.retry_max), (Duration::from_secs(2), Duration::from_secs(60)));
        assert!(!c.is_letsencrypt());
    }

    #[test]
    fn the_ca_file_is_read_at_start_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\nAA\n").unwrap();
        std::fs::write(dir.path().join("junk.pem"), "hello").unwrap();
        let path = dir.path().join("postern.toml");
        std::fs::write(&path, "[acme]\nca_file = \"ca.pem\"").unwrap();
        let c = BootConfig::load(Some(&path), Profile::Standard, Vec::new()).unwrap();
        let acme = c.acme.unwrap();
        assert_eq!(acme.ca_file, Some(dir.path().join("ca.pem")));
        assert!(acme.ca_pem.unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
        std::fs::write(&path, "[acme]\nca_file = \"junk.pem\"").unwrap();
        let err = BootConfig::load(Some(&path), Profile::Standard, Vec::new()).unwrap_err();
        assert!(err.to_string().contains("junk.pem\": holds no PEM certificate"), "{err}");
    }

    #[test]
    fn errors_name_the_field_and_hide_the_mac_key() {
        let cases = [
            (
                "directory = \"http://ca.example/dir\"",
                "acme.directory = \"http://ca.example/dir\": must be an https://",
            ),
            ("directory = \"https://\"", "acme.directory = \"https://\": is not a URL"),
            ("contact = \"mailto:nobody\"", "acme.contact = \"mailto:nobody\": must be an email"),
            ("http_listen = \"80\"", "acme.http_listen = \"80\": is not a socket address"),
            (
                "ca_file = \"/nonexistent/ca.pem\"",
                "acme.ca_file = \"/nonexistent/ca.pem\": cannot be read",
            ),
            ("eab_kid = \"k\"", "acme.eab_hmac = \"\": is missing"),
            ("eab_hmac = \"c2VjcmV0\"", "acme.eab_kid = \"\": is missing"),
            (
                "eab_kid = \"k\"\neab_hmac = \"not base64!\"",
                "acme.eab_hmac = \"<redacted>\": is not base64url",
            ),
            ("directory = \"x\"\nhttp_lsten = \"\"", "unknown field `http_lsten`"),
            ("retry_first = \"0s\"", "acme.retry_first = \"0s\": must be at least 1s"),
            ("retry_first = 60", "acme.retry_first = \"60\": must be a whole number and a unit"),
            (
                "retry_first = \"1h\"\nretry_max = \"1m\"",
                "acme.retry_max = \"1m\": must not be shorter",
            ),
        ];
        for (text, expected) in cases {
            let err = acme(&format!("[acme]\n{text}")).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains("c2VjcmV0") && !err.contains("not base64!"), "{err}");
        }
    }

    #[test]
    fn the_environment_turns_it_on_and_overrides_it() {
        let c = BootConfig::load(
            None,
            Profile::Standard,
            [
                ("POSTERN_ACME_CONTACT".to_string(), "mailto:a@example.com".to_string()),
                ("POSTERN_ACME_HTTP_LISTEN".to_string(), "127.0.0.1:0".to_string()),
            ],
        )
        .unwrap();
        let acme = c.acme.unwrap();
        assert_eq!(acme.directory, LETSENCRYPT);
        assert_eq!(acme.contact.as_deref(), Some("mailto:a@example.com"));
        assert_eq!(acme.http_listen, Some("127.0.0.1:0".parse().unwrap()));
    }

    #[test]
    fn the_responder_must_not_share_another_listener_s_address() {
        let err =
            acme("[console]\nlisten = [\"127.0.0.1:80\"]\n[acme]\nhttp_listen = \"127.0.0.1:80\"")
                .unwrap_err();
        assert!(err.contains("acme.http_listen = \"127.0.0.1:80\": is also the console"), "{err}");
    }
}
