//! The policy services' live test: one request sent to a service, its answer shown. The protocol
//! client is the engine's (`postern_server::policy::delegate`), handed in by `postern serve`
//! through this trait, since the console never depends on the engine.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use postern_store::model::PolicyService;

/// What the test request says; the rest of the attributes are left empty.
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    pub client: IpAddr,
    pub helo: String,
    pub sender: String,
    pub recipient: String,
}

/// Sends one request to a service: `Ok` is its action as it answered it, `Err` why there is
/// no answer (refused, timed out, garbage).
pub trait PolicyProbe: Send + Sync {
    fn probe<'a>(
        &'a self,
        service: &'a PolicyService,
        request: &'a ProbeRequest,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;
}
