//! What every handler shares: the store and the console's settings. Cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use postern_store::Store;

use crate::auth::throttle::LoginThrottle;

#[derive(Debug, Clone)]
pub struct Settings {
    /// The appliance's host name, shown in the page title and used for DNS checks.
    pub hostname: String,
    /// Served over HTTPS: the session cookie gets `Secure` and the `__Host-` prefix.
    pub https: bool,
    /// How long a console session lasts without a new login.
    pub session_lifetime: Duration,
    /// How long a change waits for the engine before the page says "pending".
    pub live_wait: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            hostname: "localhost".into(),
            https: false,
            session_lifetime: Duration::from_secs(12 * 3600),
            live_wait: Duration::from_millis(1500),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub(crate) logins: Arc<LoginThrottle>,
}

impl AppState {
    pub fn new(store: Store, settings: Settings) -> AppState {
        AppState { store, settings: Arc::new(settings), logins: Arc::default() }
    }
}
