//! Trusted networks: add, list, remove.

use ipnet::IpNet;
use sqlx::AnyConnection;

use super::rows;
use crate::error::{Result, StoreError};
use crate::model::{TrustedNetwork, is_open_relay_range, open_relay_warning};
use crate::store::{Store, now};

async fn get(conn: &mut AnyConnection, cidr: &IpNet) -> Result<Option<TrustedNetwork>> {
    sqlx::query("SELECT cidr, description, created_at FROM trusted_networks WHERE cidr = $1")
        .bind(cidr.to_string())
        .fetch_optional(conn)
        .await?
        .map(|row| rows::network(&row))
        .transpose()
}

impl Store {
    /// Trusts `cidr`; a range that would make this server an open relay
    /// ([`is_open_relay_range`]) is refused: use [`Store::add_network_with`] to confirm it.
    pub async fn add_network(
        &self,
        actor: &str,
        cidr: IpNet,
        description: &str,
    ) -> Result<TrustedNetwork> {
        self.add_network_with(actor, cidr, description, false).await
    }

    /// [`Store::add_network`]; `confirm_open_relay` accepts a range that reaches far beyond
    /// private space, after the person adding it was told what it means.
    pub async fn add_network_with(
        &self,
        actor: &str,
        cidr: IpNet,
        description: &str,
        confirm_open_relay: bool,
    ) -> Result<TrustedNetwork> {
        if is_open_relay_range(&cidr) && !confirm_open_relay {
            return Err(StoreError::invalid(
                "cidr",
                format!("{}; confirm to add it anyway", open_relay_warning(&cidr)),
            ));
        }
        if description.chars().count() > 200 || description.chars().any(char::is_control) {
            return Err(StoreError::invalid(
                "description",
                "must be one line of at most 200 characters",
            ));
        }
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            if get(change.conn(), &cidr).await?.is_some() {
                return Err(StoreError::Duplicate {
                    what: "trusted network",
                    name: cidr.to_string(),
                });
            }
            let network =
                TrustedNetwork { cidr, description: description.to_string(), created_at: now() };
            sqlx::query(
                "INSERT INTO trusted_networks (cidr, description, created_at) VALUES ($1, $2, $3)",
            )
            .bind(cidr.to_string())
            .bind(&network.description)
            .bind(network.created_at)
            .execute(change.conn())
            .await?;
            change
                .audit("network.add", &cidr.to_string(), None::<&TrustedNetwork>, Some(&network))
                .await?;
            Ok(network)
        }
        .await;
        change.finish(result).await
    }

    pub async fn list_networks(&self) -> Result<Vec<TrustedNetwork>> {
        let mut networks =
            sqlx::query("SELECT cidr, description, created_at FROM trusted_networks")
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(rows::network)
                .collect::<Result<Vec<_>>>()?;
        networks.sort_by_key(|n| n.cidr);
        Ok(networks)
    }

    pub async fn remove_network(&self, actor: &str, cidr: &IpNet) -> Result<TrustedNetwork> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let network = get(change.conn(), cidr).await?.ok_or_else(|| StoreError::NotFound {
                what: "trusted network",
                name: cidr.to_string(),
            })?;
            sqlx::query("DELETE FROM trusted_networks WHERE cidr = $1")
                .bind(cidr.to_string())
                .execute(change.conn())
                .await?;
            change
                .audit("network.remove", &cidr.to_string(), Some(&network), None::<&TrustedNetwork>)
                .await?;
            Ok(network)
        }
        .await;
        change.finish(result).await
    }
}
