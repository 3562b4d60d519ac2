//! The ACME account (RFC 8555 §7.3): made once per directory, its credentials (the account
//! URL and private key, as instant-acme's JSON) kept sealed in the store and used again after
//! a restart.

use instant_acme::{Account, AccountBuilder, AccountCredentials, ExternalAccountKey, NewAccount};
use postern_store::boot::AcmeConfig;

/// An HTTP client for the CA: the system's roots, or only `ca_file` when one is configured
/// (a private CA, tests).
pub fn builder(config: &AcmeConfig) -> Result<AccountBuilder, String> {
    match &config.ca_file {
        Some(path) => Account::builder_with_root(path)
            .map_err(|e| format!("acme.ca_file {}: {e}", path.display())),
        None => Account::builder().map_err(|e| format!("the system's root certificates: {e}")),
    }
}

/// Registers a new account (agreeing to the CA's terms, RFC 8555 §7.3) and returns it with its
/// credentials as JSON, to be stored. The JSON holds the account's private key: it is a
/// secret, stored sealed and never logged.
pub async fn create(config: &AcmeConfig) -> Result<(Account, String), String> {
    let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contact,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let eab = config
        .eab
        .as_ref()
        .map(|eab| ExternalAccountKey::new(eab.kid.clone(), eab.hmac_key.bytes()));
    let (account, credentials) =
        builder(config)?.create(&new, config.directory.clone(), eab.as_ref()).await.map_err(
            |e| format!("registering an account at {}: {}", config.directory, error_text(e)),
        )?;
    let json = serde_json::to_string(&credentials).map_err(|e| e.to_string())?;
    Ok((account, json))
}

/// The account whose credentials were stored.
pub async fn restore(config: &AcmeConfig, credentials_json: &str) -> Result<Account, String> {
    let credentials: AccountCredentials = serde_json::from_str(credentials_json)
        .map_err(|e| format!("the stored ACME account cannot be read: {e}"))?;
    builder(config)?
        .from_credentials(credentials)
        .await
        .map_err(|e| format!("reaching {}: {}", config.directory, error_text(e)))
}

fn error_text(e: instant_acme::Error) -> String {
    match e {
        instant_acme::Error::Api(problem) => super::order::problem_text(&problem),
        other => other.to_string(),
    }
}
