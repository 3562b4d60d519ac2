//! Policy services: add, list, remove. Every change is a [`crate::store::Change`], so the
//! engines use the new set for the next request.

use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::{Result, StoreError};
use crate::model::{NewPolicyService, OnFailure, PolicyService, ServiceAddress, ServiceStage};
use crate::store::{Store, now};

const COLUMNS: &str =
    "name, address, stage, timeout_ms, on_failure, enabled, description, created_at";

fn bad(field: &'static str, e: StoreError) -> StoreError {
    StoreError::invalid(field, format!("stored policy service does not parse: {e}"))
}

fn service(row: &AnyRow) -> Result<PolicyService> {
    let address: String = row.try_get("address")?;
    let stage: String = row.try_get("stage")?;
    let on_failure: String = row.try_get("on_failure")?;
    let timeout: i64 = row.try_get("timeout_ms")?;
    Ok(PolicyService {
        name: row.try_get("name")?,
        address: address.parse::<ServiceAddress>().map_err(|e| bad("address", e))?,
        stage: stage.parse::<ServiceStage>().map_err(|e| bad("stage", e))?,
        timeout: Duration::from_millis(timeout.max(1) as u64),
        on_failure: on_failure.parse::<OnFailure>().map_err(|e| bad("on_failure", e))?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Every service, in name order (the order they are asked in).
pub(crate) async fn load(conn: &mut AnyConnection) -> Result<Vec<PolicyService>> {
    let sql = format!("SELECT {COLUMNS} FROM policy_services ORDER BY name");
    sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(conn).await?.iter().map(service).collect()
}

impl Store {
    pub async fn add_policy_service(
        &self,
        actor: &str,
        new: NewPolicyService,
    ) -> Result<PolicyService> {
        new.check()?;
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let exists: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM policy_services WHERE name = $1")
                    .bind(&new.name)
                    .fetch_one(change.conn())
                    .await?;
            if exists > 0 {
                return Err(StoreError::Duplicate { what: "policy service", name: new.name });
            }
            let created_at = now();
            sqlx::query(
                "INSERT INTO policy_services (name, address, stage, timeout_ms, on_failure, \
                 enabled, description, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&new.name)
            .bind(new.address.to_string())
            .bind(new.stage.as_str())
            .bind(new.timeout.as_millis() as i64)
            .bind(new.on_failure.as_str())
            .bind(i64::from(new.enabled))
            .bind(&new.description)
            .bind(created_at)
            .execute(change.conn())
            .await?;
            let service = PolicyService {
                name: new.name,
                address: new.address,
                stage: new.stage,
                timeout: new.timeout,
                on_failure: new.on_failure,
                enabled: new.enabled,
                description: new.description,
                created_at,
            };
            change
                .audit("policy_service.add", &service.name, None::<&PolicyService>, Some(&service))
                .await?;
            Ok(service)
        }
        .await;
        change.finish(result).await
    }

    /// Every service, in the order they are asked.
    pub async fn list_policy_services(&self) -> Result<Vec<PolicyService>> {
        let mut conn = self.pool().acquire().await?;
        load(&mut conn).await
    }

    pub async fn remove_policy_service(&self, actor: &str, name: &str) -> Result<PolicyService> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let services = load(change.conn()).await?;
            let service = services.into_iter().find(|s| s.name == name).ok_or_else(|| {
                StoreError::NotFound { what: "policy service", name: name.to_string() }
            })?;
            sqlx::query("DELETE FROM policy_services WHERE name = $1")
                .bind(name)
                .execute(change.conn())
                .await?;
            change
                .audit("policy_service.remove", name, Some(&service), None::<&PolicyService>)
                .await?;
            Ok(service)
        }
        .await;
        change.finish(result).await
    }
}
