//! The columns that hold sealed secrets: at open, the key must open every sealed value (or the
//! store refuses to start, naming the key file), and plaintext an older version left is sealed.

use std::path::Path;

use sqlx::{AnyPool, AssertSqlSafe};

use crate::error::{Result, StoreError};
use crate::secrets::{self, SecretKey, is_sealed};

/// A column of sealed values, and how a row's identity becomes the value's context.
struct SealedColumn {
    table: &'static str,
    id: &'static str,
    column: &'static str,
    context: fn(&str) -> String,
}

/// Every sealed column.
const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "transports",
        id: "pattern",
        column: "auth_password",
        context: secrets::transport_password_context,
    },
    SealedColumn {
        table: "certificates",
        // Read as text on both backends, like the other identities.
        id: "CAST(id AS TEXT)",
        column: "key_pem",
        context: secrets::certificate_key_context,
    },
    SealedColumn {
        table: "acme_accounts",
        id: "directory",
        column: "credentials",
        context: secrets::acme_account_context,
    },
    SealedColumn {
        table: "dkim_keys",
        id: "name",
        column: "private_key",
        context: secrets::dkim_private_key_context,
    },
    SealedColumn {
        table: "directories",
        id: "domain",
        column: "bind_password",
        context: secrets::directory_password_context,
    },
];

/// Loads the key at `key_file` (creating it when the database holds nothing sealed yet), checks
/// that it opens every sealed value, and seals what is still in plaintext.
pub(crate) async fn prepare(pool: &AnyPool, key_file: &Path) -> Result<SecretKey> {
    let mut stored = Vec::new();
    for column in SEALED_COLUMNS {
        let sql = format!(
            "SELECT {id}, {col} FROM {table} WHERE {col} IS NOT NULL",
            id = column.id,
            col = column.column,
            table = column.table
        );
        let rows: Vec<(String, String)> =
            sqlx::query_as(AssertSqlSafe(sql)).fetch_all(pool).await?;
        stored.extend(rows.into_iter().map(|(id, value)| (column, id, value)));
    }
    let key = match SecretKey::load(key_file)? {
        Some(key) => key,
        None if stored.iter().any(|(_, _, value)| is_sealed(value)) => {
            return Err(StoreError::SecretKey {
                path: key_file.display().to_string(),
                message: "is missing, and the database holds secrets sealed with it: restore \
                          the key file backed up with this database (or point secret_key_file \
                          at it)"
                    .into(),
            });
        }
        None => SecretKey::load_or_create(key_file)?,
    };
    let mut sealed_now = 0;
    for (column, id, value) in &stored {
        let context = (column.context)(id);
        if is_sealed(value) {
            key.open(&context, value)?;
            continue;
        }
        let sql = format!(
            "UPDATE {table} SET {col} = $1 WHERE {id} = $2 AND {col} = $3",
            table = column.table,
            col = column.column,
            id = column.id
        );
        // Only if unchanged: another process may be sealing it at the same moment.
        sealed_now += sqlx::query(AssertSqlSafe(sql))
            .bind(key.seal(&context, value.as_bytes()))
            .bind(id)
            .bind(value)
            .execute(pool)
            .await?
            .rows_affected();
    }
    if sealed_now > 0 {
        tracing::info!(
            count = sealed_now,
            key_file = %key_file.display(),
            "sealed secrets that an earlier version stored in plaintext"
        );
    }
    Ok(key)
}
