//! The store's side of backups: a consistent copy of a SQLite database (`VACUUM INTO`), a dump of
//! every table as JSON lines read in one `REPEATABLE READ` transaction (Postgres, where the
//! database is not a file), loading such a dump into an empty store of either backend, and the
//! scheduled backups' settings and last result.
//!
//! The dump's format, one JSON value a line: `{"table":NAME,"columns":[…]}` starts a table, and
//! each following array is one of its rows, in the columns' order. A value is `null`, a number,
//! a string, or `{"b64":"…"}` for bytes. Tables come parents first (by their foreign keys), so
//! that loading them in that order never breaks a reference.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AssertSqlSafe, Row, ValueRef};

use crate::error::{Result, StoreError};
use crate::store::Store;

/// Tables the dump leaves out: the migrations' own record (the target's migrations write it).
const SKIPPED_TABLES: &[&str] = &["_sqlx_migrations"];

/// Tables whose rows mean a store is in use: a restore refuses a store holding any.
const IN_USE_TABLES: &[&str] =
    &["domains", "mailboxes", "aliases", "admins", "api_tokens", "queue_messages"];

fn valid_identifier(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError::Corrupt { table: "backup dump", message: message.into() }
}

/// The scheduled backups: where, how often, how many to keep. Off when `directory` is empty or
/// `interval` is 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BackupSettings {
    pub directory: String,
    /// Seconds between two backups.
    pub interval: i64,
    /// How many backup files to keep in `directory`; older ones are removed.
    pub retention: i64,
    pub with_spool: bool,
    pub with_maildirs: bool,
}

impl BackupSettings {
    pub fn enabled(&self) -> bool {
        !self.directory.is_empty() && self.interval > 0
    }

    pub fn check(self) -> Result<BackupSettings> {
        if !self.directory.is_empty() && !self.directory.starts_with('/') {
            return Err(StoreError::invalid("directory", "must be an absolute path"));
        }
        if self.interval != 0 && !(300..=30 * 86_400).contains(&self.interval) {
            return Err(StoreError::invalid(
                "interval",
                "must be 0 (off) or between 300 seconds and 30 days",
            ));
        }
        if !(1..=1000).contains(&self.retention) {
            return Err(StoreError::invalid("retention", "must keep between 1 and 1000 backups"));
        }
        Ok(self)
    }
}

/// What the last scheduled backup did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BackupResult {
    /// When it ended (epoch seconds).
    pub at: i64,
    pub file: Option<String>,
    pub size: Option<i64>,
    pub error: Option<String>,
}

impl Store {
    /// The newest migration applied: what a backup's manifest records as its schema version.
    pub async fn schema_version(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
            .fetch_one(self.pool())
            .await?)
    }

    /// Writes a consistent copy of the SQLite database to `dest` (which must not exist), while
    /// other connections go on writing: `VACUUM INTO` reads one snapshot.
    pub async fn sqlite_snapshot(&self, dest: &Path) -> Result<()> {
        if self.is_postgres() {
            return Err(StoreError::invalid("backup", "a file copy needs SQLite"));
        }
        let dest = dest
            .to_str()
            .ok_or_else(|| StoreError::invalid("backup", "the temporary path is not UTF-8"))?;
        sqlx::query("VACUUM INTO $1").bind(dest).execute(self.pool()).await?;
        Ok(())
    }

    /// The number of rows of `tables` (those that exist), for a backup's manifest.
    pub async fn row_counts(&self, tables: &[&str]) -> Result<BTreeMap<String, i64>> {
        let existing = self.table_names(&mut *self.pool().acquire().await?).await?;
        let mut counts = BTreeMap::new();
        for table in tables.iter().filter(|t| existing.contains(**t)) {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(self.pool()).await?;
            counts.insert(table.to_string(), n);
        }
        Ok(counts)
    }

    /// The first table that shows the store is in use (domains, mailboxes, queued mail…), if any.
    pub async fn in_use(&self) -> Result<Option<String>> {
        let counts = self.row_counts(IN_USE_TABLES).await?;
        Ok(counts.into_iter().find(|(_, n)| *n > 0).map(|(t, n)| format!("{t} ({n} rows)")))
    }

    async fn table_names(&self, conn: &mut AnyConnection) -> Result<BTreeSet<String>> {
        let names: Vec<String> = if self.is_postgres() {
            sqlx::query_scalar(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
            )
            .fetch_all(&mut *conn)
            .await?
        } else {
            sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .fetch_all(&mut *conn)
            .await?
        };
        Ok(names.into_iter().filter(|n| !SKIPPED_TABLES.contains(&n.as_str())).collect())
    }

    /// The tables, parents before the tables that reference them.
    async fn tables_in_order(&self, conn: &mut AnyConnection) -> Result<Vec<String>> {
        let names = self.table_names(conn).await?;
        let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for name in &names {
            let refs: Vec<String> = if self.is_postgres() {
                sqlx::query_scalar(
                    "SELECT DISTINCT p.relname::text FROM pg_constraint c \
                     JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class p ON p.oid = c.confrelid \
                     JOIN pg_namespace n ON n.oid = t.relnamespace \
                     WHERE c.contype = 'f' AND n.nspname = current_schema() AND t.relname = $1",
                )
                .bind(name)
                .fetch_all(&mut *conn)
                .await?
            } else {
                sqlx::query_scalar("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list($1)")
                    .bind(name)
                    .fetch_all(&mut *conn)
                    .await?
            };
            parents.insert(name.clone(), refs.into_iter().filter(|p| p != name).collect());
        }
        let mut order = Vec::new();
        let mut placed = BTreeSet::new();
        while placed.len() < names.len() {
            let before = placed.len();
            for name in &names {
                if !placed.contains(name)
                    && parents[name].iter().all(|p| placed.contains(p) || !names.contains(p))
                {
                    placed.insert(name.clone());
                    order.push(name.clone());
                }
            }
            if placed.len() == before {
                // A cycle: the rest in name order (none exists in Postern's schema).
                for name in &names {
                    if placed.insert(name.clone()) {
                        order.push(name.clone());
                    }
                }
            }
        }
        Ok(order)
    }

    /// Writes every table (but the migrations' record) to `out` as JSON lines, all read in one
    /// transaction (`REPEATABLE READ` on Postgres), and returns the rows written per table.
    pub async fn dump_tables(&self, out: &mut (dyn Write + Send)) -> Result<BTreeMap<String, i64>> {
        let io = |e: std::io::Error| corrupt(format!("cannot write the dump: {e}"));
        let mut tx = self.pool().begin().await?;
        if self.is_postgres() {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let tables = self.tables_in_order(&mut tx).await?;
        let mut counts = BTreeMap::new();
        for table in tables {
            if !valid_identifier(&table) {
                continue;
            }
            let columns: Vec<String> = if self.is_postgres() {
                sqlx::query_scalar(
                    "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 \
                     ORDER BY ordinal_position",
                )
                .bind(&table)
                .fetch_all(&mut *tx)
                .await?
            } else {
                sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
                    .bind(&table)
                    .fetch_all(&mut *tx)
                    .await?
            };
            let header = serde_json::json!({ "table": table, "columns": columns });
            writeln!(out, "{header}").map_err(io)?;
            let sql = format!("SELECT * FROM {table}");
            let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(&mut *tx).await?;
            for row in &rows {
                let mut values = Vec::with_capacity(columns.len());
                for column in &columns {
                    values.push(value_of(row, column)?);
                }
                writeln!(out, "{}", serde_json::Value::Array(values)).map_err(io)?;
            }
            counts.insert(table, rows.len() as i64);
        }
        tx.rollback().await?;
        Ok(counts)
    }

    /// Loads a dump made by [`Store::dump_tables`] (of the same schema version) into this store,
    /// which must not be in use ([`Store::in_use`]): the rows the migrations seeded are replaced.
    /// One transaction: a dump that fails to load leaves nothing behind.
    pub async fn load_tables(&self, input: &mut dyn BufRead) -> Result<BTreeMap<String, i64>> {
        if let Some(table) = self.in_use().await? {
            return Err(StoreError::Conflict(format!(
                "the database is not empty ({table}): restore into an empty one"
            )));
        }
        let mut tx = self.pool().begin().await?;
        let known = self.table_names(&mut tx).await?;
        let mut counts = BTreeMap::new();
        let mut current: Option<(String, Vec<String>)> = None;
        let mut line = String::new();
        loop {
            line.clear();
            let n = input
                .read_line(&mut line)
                .map_err(|e| corrupt(format!("cannot read the dump: {e}")))?;
            if n == 0 {
                break;
            }
            let value: serde_json::Value = serde_json::from_str(line.trim_end())
                .map_err(|e| corrupt(format!("a line is not JSON: {e}")))?;
            match value {
                serde_json::Value::Object(header) => {
                    let table = header
                        .get("table")
                        .and_then(|t| t.as_str())
                        .filter(|t| valid_identifier(t) && known.contains(*t))
                        .ok_or_else(|| corrupt(format!("unknown table in {header:?}")))?
                        .to_string();
                    let columns: Vec<String> = header
                        .get("columns")
                        .and_then(|c| c.as_array())
                        .map(|c| c.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                        .unwrap_or_default();
                    if columns.is_empty() || !columns.iter().all(|c| valid_identifier(c)) {
                        return Err(corrupt(format!("bad columns for {table}")));
                    }
                    sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
                        .execute(&mut *tx)
                        .await?;
                    counts.insert(table.clone(), 0);
                    current = Some((table, columns));
                }
                serde_json::Value::Array(values) => {
                    let Some((table, columns)) = &current else {
                        return Err(corrupt("a row before any table"));
                    };
                    if values.len() != columns.len() {
                        return Err(corrupt(format!("a row of {table} has the wrong length")));
                    }
                    insert_row(&mut tx, self.is_postgres(), table, columns, values).await?;
                    *counts.entry(table.clone()).or_default() += 1;
                }
                _ => return Err(corrupt("a line is neither a table nor a row")),
            }
        }
        if self.is_postgres() {
            // Identity columns were given their values: their sequences must go on after them.
            let identities: Vec<(String, String)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND is_identity = 'YES'",
            )
            .fetch_all(&mut *tx)
            .await?;
            for (table, column) in identities {
                if !valid_identifier(&table) || !valid_identifier(&column) {
                    continue;
                }
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
                     COALESCE(MAX({column}), 0) + 1, false)::bigint FROM {table}"
                );
                sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        // The loaded configuration is a new revision for every engine that follows this store.
        let revision = crate::store::read_revision(self.pool()).await?;
        self.inner.advance(revision);
        Ok(counts)
    }

    /// The scheduled backups' settings.
    pub async fn backup_settings(&self) -> Result<BackupSettings> {
        let row = sqlx::query(
            "SELECT directory, interval_seconds, retention, with_spool, with_maildirs \
             FROM backup_settings WHERE id = 1",
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(row) => BackupSettings {
                directory: row.try_get("directory")?,
                interval: row.try_get("interval_seconds")?,
                retention: row.try_get("retention")?,
                with_spool: row.try_get::<i64, _>("with_spool")? != 0,
                with_maildirs: row.try_get::<i64, _>("with_maildirs")? != 0,
            },
            None => BackupSettings { retention: 7, with_spool: true, ..Default::default() },
        })
    }

    /// Changes the scheduled backups' settings (audited, like every configuration change).
    pub async fn set_backup_settings(
        &self,
        actor: &str,
        new: BackupSettings,
    ) -> Result<BackupSettings> {
        let new = new.check()?;
        let before = self.backup_settings().await?;
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            sqlx::query(
                "UPDATE backup_settings SET directory = $1, interval_seconds = $2, retention = $3, \
                 with_spool = $4, with_maildirs = $5 WHERE id = 1",
            )
            .bind(&new.directory)
            .bind(new.interval)
            .bind(new.retention)
            .bind(new.with_spool as i64)
            .bind(new.with_maildirs as i64)
            .execute(change.conn())
            .await?;
            change.audit("backup.settings", "backup", Some(&before), Some(&new)).await?;
            Ok(new)
        }
        .await;
        change.finish(result).await
    }

    /// The last scheduled backup's result, if one ran.
    pub async fn last_backup(&self) -> Result<Option<BackupResult>> {
        let row = sqlx::query(
            "SELECT last_at, last_file, last_size, last_error FROM backup_settings \
             WHERE id = 1 AND last_at IS NOT NULL",
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(row) => Some(BackupResult {
                at: row.try_get("last_at")?,
                file: row.try_get("last_file")?,
                size: row.try_get("last_size")?,
                error: row.try_get("last_error")?,
            }),
            None => None,
        })
    }

    /// Records what a scheduled backup did (bookkeeping: no revision, no audit record).
    pub async fn record_backup(&self, result: &BackupResult) -> Result<()> {
        sqlx::query(
            "UPDATE backup_settings SET last_at = $1, last_file = $2, last_size = $3, \
             last_error = $4 WHERE id = 1",
        )
        .bind(result.at)
        .bind(&result.file)
        .bind(result.size)
        .bind(&result.error)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// When the next scheduled backup is due: the last one's time plus the interval (at once
    /// when none ran).
    pub async fn next_backup_due(&self) -> Result<Option<i64>> {
        let settings = self.backup_settings().await?;
        if !settings.enabled() {
            return Ok(None);
        }
        let last = self.last_backup().await?.map(|r| r.at).unwrap_or(0);
        Ok(Some(last + settings.interval))
    }
}

/// One column of a row as JSON, whatever the backend's type.
fn value_of(row: &sqlx::any::AnyRow, column: &str) -> Result<serde_json::Value> {
    use sqlx::any::AnyTypeInfoKind as K;
    let raw = row.try_get_raw(column)?;
    if raw.is_null() {
        return Ok(serde_json::Value::Null);
    }
    let kind = raw.type_info().kind();
    Ok(match kind {
        K::Null => serde_json::Value::Null,
        K::Bool => serde_json::Value::from(row.try_get::<bool, _>(column)? as i64),
        K::SmallInt | K::Integer | K::BigInt => {
            serde_json::Value::from(row.try_get::<i64, _>(column)?)
        }
        K::Real | K::Double => serde_json::Value::from(row.try_get::<f64, _>(column)?),
        K::Text => serde_json::Value::from(row.try_get::<String, _>(column)?),
        K::Blob => {
            let bytes: Vec<u8> = row.try_get(column)?;
            serde_json::json!({ "b64": base64::engine::general_purpose::STANDARD.encode(bytes) })
        }
    })
}

async fn insert_row(
    conn: &mut AnyConnection,
    postgres: bool,
    table: &str,
    columns: &[String],
    values: Vec<serde_json::Value>,
) -> Result<()> {
    // A NULL is written into the statement: a bound NULL has a type, which Postgres refuses for
    // a column of another.
    let mut placeholders = Vec::with_capacity(values.len());
    let mut n = 0;
    for value in &values {
        if value.is_null() {
            placeholders.push("NULL".to_string());
        } else {
            n += 1;
            placeholders.push(format!("${n}"));
        }
    }
    let overriding = if postgres { " OVERRIDING SYSTEM VALUE" } else { "" };
    let sql = format!(
        "INSERT INTO {table} ({}){overriding} VALUES ({})",
        columns.join(", "),
        placeholders.join(", ")
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for value in values {
        query = match value {
            serde_json::Value::Null => query,
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => query.bind(i),
                None => query.bind(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => query.bind(s),
            serde_json::Value::Object(o) => {
                let text = o.get("b64").and_then(|b| b.as_str()).unwrap_or_default();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| corrupt(format!("bad bytes in {table}: {e}")))?;
                query.bind(bytes)
            }
            serde_json::Value::Bool(b) => query.bind(b as i64),
            serde_json::Value::Array(_) => {
                return Err(corrupt(format!("a nested array in {table}")));
            }
        };
    }
    query.execute(&mut *conn).await?;
    Ok(())
}
