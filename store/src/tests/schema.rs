//! The SQLite and Postgres migrations must build the same schema: the same tables, columns (with
//! their type class, nullability and default), keys, unique constraints and indexes. The two sets
//! are written by hand (each backend's dialect), so this is what keeps them in step.

use std::collections::BTreeSet;

use sqlx::Row;

use crate::Store;
use crate::testing::TestDb;

/// One fact about the schema, comparable across backends.
type Facts = BTreeSet<String>;

/// Both migration folders hold the same versions under the same names.
#[test]
fn both_backends_have_the_same_migrations() {
    let names = |dir: &str| -> BTreeSet<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations").join(dir);
        std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names("sqlite"), names("postgres"));
}

#[tokio::test]
async fn both_backends_build_the_same_schema() {
    let test = concat!(module_path!(), "::both_backends_build_the_same_schema");
    let Some(pg) = TestDb::postgres(test).await else { return };
    let lite = TestDb::sqlite();
    let (lite_store, pg_store) = (lite.open().await, pg.open().await);
    let sqlite = sqlite_facts(&lite_store).await;
    let postgres = postgres_facts(&pg_store).await;
    lite_store.close().await;
    pg_store.close().await;

    let only = |a: &Facts, b: &Facts| a.difference(b).cloned().collect::<Vec<_>>().join("\n  ");
    assert!(
        sqlite == postgres,
        "the migrations have drifted apart\nonly on SQLite:\n  {}\nonly on Postgres:\n  {}",
        only(&sqlite, &postgres),
        only(&postgres, &sqlite)
    );
    assert!(sqlite.len() > 50, "the introspection found too little: {sqlite:?}");
}

/// INTEGER and BIGINT are one class (SQLite stores both as 64-bit integers); BLOB is BYTEA.
fn type_class(declared: &str) -> &'static str {
    match declared.to_ascii_lowercase().as_str() {
        "integer" | "bigint" | "int" | "int8" | "int4" | "smallint" => "integer",
        "text" | "character varying" | "varchar" => "text",
        "blob" | "bytea" => "bytes",
        other => panic!("a column type the schema test does not know: {other}"),
    }
}

/// `'pending'::text` and `'pending'` are one default; so are `(0)` and `0`.
fn default_value(raw: Option<String>) -> String {
    let Some(raw) = raw else { return "none".into() };
    let value = raw.split("::").next().unwrap_or(&raw).trim();
    value.trim_start_matches('(').trim_end_matches(')').to_string()
}

async fn sqlite_facts(store: &Store) -> Facts {
    let pool = store.pool();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut facts = Facts::new();
    for table in &tables {
        facts.insert(format!("table {table}"));
        let columns = sqlx::query(
            "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info($1)",
        )
        .bind(table)
        .fetch_all(pool)
        .await
        .unwrap();
        let mut key = Vec::new();
        for column in columns {
            let name: String = column.get(0);
            let declared: String = column.get(1);
            let pk: i64 = column.get(4);
            // A primary key column is NOT NULL on Postgres whether or not it says so.
            let not_null = column.get::<i64, _>(2) == 1 || pk > 0;
            let default = default_value(column.get(3));
            facts.insert(format!(
                "column {table}.{name} {} {} default {default}",
                type_class(&declared),
                if not_null { "not null" } else { "null" }
            ));
            if pk > 0 {
                key.push((pk, name));
            }
        }
        key.sort();
        let key: Vec<String> = key.into_iter().map(|(_, name)| name).collect();
        facts.insert(format!("primary key {table} ({})", key.join(", ")));

        let indexes = sqlx::query("SELECT name, \"unique\", origin FROM pragma_index_list($1)")
            .bind(table)
            .fetch_all(pool)
            .await
            .unwrap();
        for index in indexes {
            let name: String = index.get(0);
            let origin: String = index.get(2);
            let columns: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                    .bind(&name)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            match origin.as_str() {
                "c" => {
                    let unique = if index.get::<i64, _>(1) == 1 { "unique " } else { "" };
                    facts.insert(format!(
                        "{unique}index {name} on {table} ({})",
                        columns.join(", ")
                    ));
                }
                "u" => {
                    facts.insert(format!("unique {table} ({})", columns.join(", ")));
                }
                _ => {} // the primary key's own index
            }
        }

        let foreign = sqlx::query(
            "SELECT \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list($1)",
        )
        .bind(table)
        .fetch_all(pool)
        .await
        .unwrap();
        for fk in foreign {
            let (target, from, to, on_delete): (String, String, Option<String>, String) =
                (fk.get(0), fk.get(1), fk.get(2), fk.get(3));
            let to = to.unwrap_or_default();
            facts.insert(format!(
                "foreign key {table}.{from} -> {target}.{to} on delete {}",
                on_delete.to_lowercase()
            ));
        }
    }
    facts
}

async fn postgres_facts(store: &Store) -> Facts {
    let pool = store.pool();
    let mut facts = Facts::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
         AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for table in &tables {
        facts.insert(format!("table {table}"));
    }

    let columns = sqlx::query(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text, \
                column_default::text \
         FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for column in columns {
        let (table, name, declared, nullable): (String, String, String, String) =
            (column.get(0), column.get(1), column.get(2), column.get(3));
        let default = default_value(column.get(4));
        facts.insert(format!(
            "column {table}.{name} {} {} default {default}",
            type_class(&declared),
            if nullable == "NO" { "not null" } else { "null" }
        ));
    }

    // Keys and unique constraints, with their columns in declared order.
    let constraints = sqlx::query(
        "SELECT c.contype::text, t.relname::text, \
                string_agg(a.attname::text, ', ' ORDER BY k.ord) \
         FROM pg_constraint c \
         JOIN pg_class t ON t.oid = c.conrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
         WHERE n.nspname = current_schema() AND c.contype IN ('p', 'u') \
           AND t.relname <> '_sqlx_migrations' \
         GROUP BY c.oid, c.contype, t.relname",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for constraint in constraints {
        let (kind, table, columns): (String, String, String) =
            (constraint.get(0), constraint.get(1), constraint.get(2));
        let fact = match kind.as_str() {
            "p" => format!("primary key {table} ({columns})"),
            _ => format!("unique {table} ({columns})"),
        };
        facts.insert(fact);
    }

    // Indexes made by CREATE INDEX: those that back no constraint.
    let indexes = sqlx::query(
        "SELECT i.relname::text, t.relname::text, CASE WHEN x.indisunique THEN 1 ELSE 0 END::int8, \
                string_agg(a.attname::text, ', ' ORDER BY k.ord) \
         FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
         WHERE n.nspname = current_schema() \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) \
         GROUP BY i.relname, t.relname, x.indisunique",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for index in indexes {
        let (name, table, unique, columns): (String, String, i64, String) =
            (index.get(0), index.get(1), index.get(2), index.get(3));
        let unique = if unique == 1 { "unique " } else { "" };
        facts.insert(format!("{unique}index {name} on {table} ({columns})"));
    }

    let foreign = sqlx::query(
        "SELECT t.relname::text, a.attname::text, r.relname::text, ra.attname::text, \
                c.confdeltype::text \
         FROM pg_constraint c \
         JOIN pg_class t ON t.oid = c.conrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         JOIN pg_class r ON r.oid = c.confrelid \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = c.conkey[1] \
         JOIN pg_attribute ra ON ra.attrelid = r.oid AND ra.attnum = c.confkey[1] \
         WHERE n.nspname = current_schema() AND c.contype = 'f'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for fk in foreign {
        let (table, from, target, to, action): (String, String, String, String, String) =
            (fk.get(0), fk.get(1), fk.get(2), fk.get(3), fk.get(4));
        let on_delete = match action.as_str() {
            "c" => "cascade",
            "n" => "set null",
            "d" => "set default",
            "r" => "restrict",
            _ => "no action",
        };
        facts.insert(format!("foreign key {table}.{from} -> {target}.{to} on delete {on_delete}"));
    }
    facts
}
