//! The `[dns] servers` setting: the process's hickory resolver asks the configured server, here
//! `pebble-challtestsrv` on a loopback port (Debian package pebble).

mod support;

use postern_server::dns::{HickoryResolver, Resolver};
use support::peers::challtestsrv;

#[tokio::test]
async fn the_resolver_asks_the_configured_servers() {
    let Some(dns) = challtestsrv("the_resolver_asks_the_configured_servers") else { return };
    dns.set_txt("probe.example.test", "v=spf1 -all").await;
    let resolver = HickoryResolver::new(&[dns.dns]).unwrap();
    let found = resolver.txt("probe.example.test").await.unwrap();
    assert_eq!(found, vec!["v=spf1 -all".to_string()]);
    // mail-auth wraps the very same resolver.
    let auth = mail_auth::MessageAuthenticator(resolver.hickory().clone());
    let raw = auth.txt_raw_lookup("probe.example.test.").await.unwrap();
    assert_eq!(raw, b"v=spf1 -all");
}
