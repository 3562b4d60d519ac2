//! Turning rows into model types. A row that does not parse is reported as corrupt, naming the
//! table, rather than silently skipped.

use std::str::FromStr;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Result, StoreError};
use crate::model::{
    Domain, Mailbox, PasswordHash, SmtpCredentials, TransportRule, TrustedNetwork, parse_cidr,
};
use crate::secrets::{SecretKey, transport_password_context};

pub(crate) fn parse<T: FromStr>(table: &'static str, value: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| StoreError::Corrupt { table, message: format!("{value:?}: {e}") })
}

pub(crate) fn domain(row: &AnyRow) -> Result<Domain> {
    Ok(Domain {
        name: parse("domains", &row.try_get::<String, _>("name")?)?,
        kind: parse("domains", &row.try_get::<String, _>("kind")?)?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) fn mailbox(row: &AnyRow) -> Result<Mailbox> {
    let quota: Option<i64> = row.try_get("quota_bytes")?;
    Ok(Mailbox {
        address: parse("mailboxes", &row.try_get::<String, _>("address")?)?,
        display_name: row.try_get("display_name")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        quota_bytes: quota.map(|q| q as u64),
        password_hash: PasswordHash::from_phc(row.try_get("password_hash")?)?,
        send_as: row
            .try_get::<String, _>("send_as")?
            .split_ascii_whitespace()
            .map(|s| parse("mailboxes", s))
            .collect::<Result<_>>()?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A transport rule, its smarthost password opened with `key`.
pub(crate) fn transport(row: &AnyRow, key: &SecretKey) -> Result<TransportRule> {
    let pattern: String = row.try_get("pattern")?;
    let username: Option<String> = row.try_get("auth_username")?;
    let password = match row.try_get::<Option<String>, _>("auth_password")? {
        Some(stored) => key.open_text(&transport_password_context(&pattern), &stored)?,
        None => String::new(),
    };
    Ok(TransportRule {
        pattern: parse("transports", &pattern)?,
        transport: parse("transports", &row.try_get::<String, _>("transport")?)?,
        tls: parse("transports", &row.try_get::<String, _>("tls")?)?,
        auth: username.map(|username| SmtpCredentials { username, password }),
        updated_at: row.try_get("updated_at")?,
    })
}

pub(crate) fn network(row: &AnyRow) -> Result<TrustedNetwork> {
    let cidr: String = row.try_get("cidr")?;
    Ok(TrustedNetwork {
        cidr: parse_cidr(&cidr).map_err(|e| StoreError::Corrupt {
            table: "trusted_networks",
            message: e.to_string(),
        })?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
    })
}
