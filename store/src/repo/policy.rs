//! Access rules: add, list, remove, move. Every change is a [`crate::store::Change`], so the
//! engines pick up the new order at once; the rules are parsed (patterns compiled) when the
//! configuration is loaded, once per snapshot.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::{Result, StoreError};
use crate::model::{
    Matcher, NewPolicyRule, PolicyAction, PolicyMatch, PolicyRule, PolicyStage, parse_cidr,
};
use crate::store::{Store, now};

const COLUMNS: &str = "id, position, stage, client, rdns, helo, sender, recipient, authenticated, \
                       action, description, created_at";

fn bad(field: &'static str, e: StoreError) -> StoreError {
    StoreError::invalid(field, format!("stored policy rule does not parse: {e}"))
}

fn rule(row: &AnyRow) -> Result<PolicyRule> {
    let text = |name: &'static str| -> Result<Option<Matcher>> {
        row.try_get::<Option<String>, _>(name)?
            .map(|t| Matcher::parse(name, &t).map_err(|e| bad(name, e)))
            .transpose()
    };
    let stage: String = row.try_get("stage")?;
    let action: String = row.try_get("action")?;
    Ok(PolicyRule {
        id: row.try_get("id")?,
        position: row.try_get("position")?,
        stage: stage.parse::<PolicyStage>().map_err(|e| bad("stage", e))?,
        matches: PolicyMatch {
            client: row
                .try_get::<Option<String>, _>("client")?
                .map(|c| parse_cidr(&c).map_err(|e| bad("client", e)))
                .transpose()?,
            rdns: text("rdns")?,
            helo: text("helo")?,
            sender: text("sender")?,
            recipient: text("recipient")?,
            authenticated: row.try_get::<Option<i64>, _>("authenticated")?.map(|a| a != 0),
        },
        action: action.parse::<PolicyAction>().map_err(|e| bad("action", e))?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Every rule, in order.
pub(crate) async fn load(conn: &mut AnyConnection) -> Result<Vec<PolicyRule>> {
    let sql = format!("SELECT {COLUMNS} FROM policy_rules ORDER BY position, id");
    sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(conn).await?.iter().map(rule).collect()
}

/// Renumbers `ids` as positions 1, 2, 3…
async fn renumber(conn: &mut AnyConnection, ids: &[i64]) -> Result<()> {
    for (i, id) in ids.iter().enumerate() {
        sqlx::query("UPDATE policy_rules SET position = $1 WHERE id = $2")
            .bind(i as i64 + 1)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

fn not_found(id: i64) -> StoreError {
    StoreError::NotFound { what: "policy rule", name: id.to_string() }
}

/// Clamps a wanted position (1-based) to 1..=len+extra.
fn slot(position: Option<i64>, len: usize) -> usize {
    match position {
        Some(p) if p >= 1 => (p as usize - 1).min(len),
        _ => len,
    }
}

impl Store {
    /// Adds a rule at `position` (1 is evaluated first; `None` puts it last).
    pub async fn add_policy_rule(
        &self,
        actor: &str,
        new: NewPolicyRule,
        position: Option<i64>,
    ) -> Result<PolicyRule> {
        new.check()?;
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let rules = load(change.conn()).await?;
            let id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM policy_rules")
                .fetch_one(change.conn())
                .await?;
            let m = &new.matches;
            let created_at = now();
            sqlx::query(
                "INSERT INTO policy_rules (id, position, stage, client, rdns, helo, sender, \
                 recipient, authenticated, action, description, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(id)
            .bind(0_i64)
            .bind(new.stage.as_str())
            .bind(m.client.map(|c| c.to_string()))
            .bind(m.rdns.as_ref().map(ToString::to_string))
            .bind(m.helo.as_ref().map(ToString::to_string))
            .bind(m.sender.as_ref().map(ToString::to_string))
            .bind(m.recipient.as_ref().map(ToString::to_string))
            .bind(m.authenticated.map(i64::from))
            .bind(new.action.to_string())
            .bind(&new.description)
            .bind(created_at)
            .execute(change.conn())
            .await?;
            let mut ids: Vec<i64> = rules.iter().map(|r| r.id).collect();
            let at = slot(position, ids.len());
            ids.insert(at, id);
            renumber(change.conn(), &ids).await?;
            let rule = PolicyRule {
                id,
                position: at as i64 + 1,
                stage: new.stage,
                matches: new.matches.clone(),
                action: new.action.clone(),
                description: new.description.clone(),
                created_at,
            };
            change
                .audit("policy.rule.add", &id.to_string(), None::<&PolicyRule>, Some(&rule))
                .await?;
            Ok(rule)
        }
        .await;
        change.finish(result).await
    }

    /// Every rule, in the order they are evaluated.
    pub async fn list_policy_rules(&self) -> Result<Vec<PolicyRule>> {
        let mut conn = self.pool().acquire().await?;
        load(&mut conn).await
    }

    pub async fn remove_policy_rule(&self, actor: &str, id: i64) -> Result<PolicyRule> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let rules = load(change.conn()).await?;
            let rule = rules.iter().find(|r| r.id == id).cloned().ok_or_else(|| not_found(id))?;
            sqlx::query("DELETE FROM policy_rules WHERE id = $1")
                .bind(id)
                .execute(change.conn())
                .await?;
            let ids: Vec<i64> = rules.iter().map(|r| r.id).filter(|&r| r != id).collect();
            renumber(change.conn(), &ids).await?;
            change
                .audit("policy.rule.remove", &id.to_string(), Some(&rule), None::<&PolicyRule>)
                .await?;
            Ok(rule)
        }
        .await;
        change.finish(result).await
    }

    /// Moves a rule to `position` (1 is evaluated first; past the end is last).
    pub async fn move_policy_rule(
        &self,
        actor: &str,
        id: i64,
        position: i64,
    ) -> Result<PolicyRule> {
        if position < 1 {
            return Err(StoreError::invalid("position", "positions start at 1"));
        }
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let rules = load(change.conn()).await?;
            let before = rules.iter().find(|r| r.id == id).cloned().ok_or_else(|| not_found(id))?;
            let mut ids: Vec<i64> = rules.iter().map(|r| r.id).filter(|&r| r != id).collect();
            let at = slot(Some(position), ids.len());
            ids.insert(at, id);
            renumber(change.conn(), &ids).await?;
            let after = PolicyRule { position: at as i64 + 1, ..before.clone() };
            change.audit("policy.rule.move", &id.to_string(), Some(&before), Some(&after)).await?;
            Ok(after)
        }
        .await;
        change.finish(result).await
    }
}
