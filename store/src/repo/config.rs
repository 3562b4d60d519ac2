//! Loading the whole configuration at once, for the engine's snapshot and for consistency checks.

use std::collections::BTreeMap;

use sqlx::AnyConnection;
use sqlx::Row;

use super::rows;
use crate::error::Result;
use crate::model::{Alias, AliasSource, Config};
use crate::secrets::SecretKey;

/// Reads every resource; sealed secrets are opened with `key`.
pub(crate) async fn load(conn: &mut AnyConnection, key: &SecretKey) -> Result<Config> {
    let revision: i64 = sqlx::query_scalar("SELECT revision FROM config_revision WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;

    let mut config = Config { revision, ..Config::default() };
    for row in
        sqlx::query("SELECT name, kind, created_at FROM domains").fetch_all(&mut *conn).await?
    {
        let domain = rows::domain(&row)?;
        config.domains.insert(domain.name.clone(), domain);
    }
    for row in sqlx::query(
        "SELECT address, password_hash, display_name, enabled, quota_bytes, send_as, created_at, updated_at \
         FROM mailboxes",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        let mailbox = rows::mailbox(&row)?;
        config.mailboxes.insert(mailbox.address.clone(), mailbox);
    }
    config.aliases = load_aliases(conn).await?;
    for row in sqlx::query(
        "SELECT pattern, transport, tls, auth_username, auth_password, updated_at FROM transports",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        config.transports.push(rows::transport(&row, key)?);
    }
    for row in sqlx::query("SELECT cidr, description, created_at FROM trusted_networks")
        .fetch_all(&mut *conn)
        .await?
    {
        config.networks.push(rows::network(&row)?);
    }
    config.policy = crate::model::Policy::new(super::policy::load(conn).await?);
    // Retired keys sign nothing and are no one's business but the key list's.
    config.dkim = super::dkim::load_all(conn, key)
        .await?
        .into_iter()
        .filter(|k| k.state != crate::model::DkimState::Retired)
        .collect();
    config.mail_auth = super::mail_auth::load(conn, &config.domains).await?;
    config.rate_limits = super::rate_limits::load(conn).await?;
    config.dnsbl = super::dnsbl::load(conn).await?;
    config.greylisting = super::greylist::load(conn, &config.domains).await?;
    config.milters = super::milters::load(conn).await?;
    config.content_checks =
        crate::model::ContentChecks::new(super::content_checks::load(conn).await?);
    config.policy_services = super::policy_services::load(conn).await?;
    config.dkim_settings = super::dkim::load_settings(conn).await?;
    config.directories = super::directories::load(conn, key).await?;
    Ok(config)
}

pub(crate) async fn load_aliases(conn: &mut AnyConnection) -> Result<BTreeMap<AliasSource, Alias>> {
    let mut aliases = BTreeMap::new();
    for row in sqlx::query("SELECT source, created_at FROM aliases").fetch_all(&mut *conn).await? {
        let source: AliasSource = rows::parse("aliases", &row.try_get::<String, _>("source")?)?;
        let alias = Alias {
            source: source.clone(),
            destinations: Vec::new(),
            created_at: row.try_get("created_at")?,
        };
        aliases.insert(source, alias);
    }
    for row in
        sqlx::query("SELECT source, destination FROM alias_destinations ORDER BY source, position")
            .fetch_all(&mut *conn)
            .await?
    {
        let source: AliasSource = rows::parse("aliases", &row.try_get::<String, _>("source")?)?;
        let destination =
            rows::parse("alias_destinations", &row.try_get::<String, _>("destination")?)?;
        if let Some(alias) = aliases.get_mut(&source) {
            alias.destinations.push(destination);
        }
    }
    Ok(aliases)
}
