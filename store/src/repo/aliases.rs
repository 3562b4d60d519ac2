//! Aliases: create or extend, list, remove destinations or the whole alias.

use sqlx::AnyConnection;

use super::{config, domains, mailboxes};
use crate::error::{Result, StoreError};
use crate::model::{Address, Alias, AliasSource, DomainName, MAX_DESTINATIONS};
use crate::store::{Store, now};

async fn get(conn: &mut AnyConnection, source: &AliasSource) -> Result<Option<Alias>> {
    // Aliases are few and small; loading them whole keeps one decoding path.
    Ok(config::load_aliases(conn).await?.remove(source))
}

async fn write_destinations(conn: &mut AnyConnection, alias: &Alias) -> Result<()> {
    let source = alias.source.to_string();
    sqlx::query("DELETE FROM alias_destinations WHERE source = $1")
        .bind(&source)
        .execute(&mut *conn)
        .await?;
    for (position, destination) in alias.destinations.iter().enumerate() {
        sqlx::query(
            "INSERT INTO alias_destinations (source, position, destination) VALUES ($1, $2, $3)",
        )
        .bind(&source)
        .bind(position as i64)
        .bind(destination.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl Store {
    /// Creates the alias, or adds destinations to an existing one. Refused when it would create a
    /// loop, or when every destination is already there.
    pub async fn add_alias(
        &self,
        actor: &str,
        source: &AliasSource,
        destinations: &[Address],
    ) -> Result<Alias> {
        self.write_alias(actor, source, destinations, Write::Extend, AliasChoice::default()).await
    }

    /// [`Store::add_alias`] with the choices a plain call leaves at "refuse".
    pub async fn add_alias_with(
        &self,
        actor: &str,
        source: &AliasSource,
        destinations: &[Address],
        choice: AliasChoice,
    ) -> Result<Alias> {
        self.write_alias(actor, source, destinations, Write::Extend, choice).await
    }

    /// Creates the alias; refused when it exists already (the console and the API create and
    /// change aliases as separate actions, so that a typo cannot silently extend another alias).
    pub async fn create_alias(
        &self,
        actor: &str,
        source: &AliasSource,
        destinations: &[Address],
    ) -> Result<Alias> {
        self.write_alias(actor, source, destinations, Write::Create, AliasChoice::default()).await
    }

    /// [`Store::create_alias`] with the choices a plain call leaves at "refuse".
    pub async fn create_alias_with(
        &self,
        actor: &str,
        source: &AliasSource,
        destinations: &[Address],
        choice: AliasChoice,
    ) -> Result<Alias> {
        self.write_alias(actor, source, destinations, Write::Create, choice).await
    }

    /// Replaces the destinations of an existing alias, in one change: the loop check sees the
    /// new list whole, never a half-way state.
    pub async fn set_alias_destinations(
        &self,
        actor: &str,
        source: &AliasSource,
        destinations: &[Address],
    ) -> Result<Alias> {
        self.write_alias(actor, source, destinations, Write::Replace, AliasChoice::default()).await
    }

    /// [`Store::set_alias_destinations`] with the choices a plain call leaves at "refuse".
    pub async fn set_alias_destinations_with(
        &self,
        actor: &str,
        source: &AliasSource,
        destinations: &[Address],
        choice: AliasChoice,
    ) -> Result<Alias> {
        self.write_alias(actor, source, destinations, Write::Replace, choice).await
    }

    /// What is doubtful about an alias without being wrong: destinations in our local domains
    /// that are not (yet) a mailbox or an alias, whose mail would be refused with `550 5.1.1`.
    pub async fn alias_warnings(&self, alias: &Alias) -> Result<Vec<String>> {
        Ok(self.load_config().await?.alias_warnings(alias))
    }

    /// The aliases that list `address` among their destinations, by source.
    pub async fn aliases_to(&self, address: &Address) -> Result<Vec<Alias>> {
        let all = config::load_aliases(&mut *self.pool().acquire().await?).await?;
        Ok(all.into_values().filter(|a| a.destinations.contains(address)).collect())
    }

    async fn write_alias(
        &self,
        actor: &str,
        source: &AliasSource,
        destinations: &[Address],
        how: Write,
        choice: AliasChoice,
    ) -> Result<Alias> {
        if destinations.is_empty() {
            return Err(StoreError::invalid(
                "destinations",
                "name at least one destination address",
            ));
        }
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            domains::require(change.conn(), source.domain()).await?;
            let before = get(change.conn(), source).await?;
            match (&before, how) {
                (Some(_), Write::Create) => {
                    return Err(StoreError::Duplicate { what: "alias", name: source.to_string() });
                }
                (None, Write::Replace) => {
                    return Err(StoreError::NotFound { what: "alias", name: source.to_string() });
                }
                _ => {}
            }
            let mut alias = before.clone().unwrap_or_else(|| Alias {
                source: source.clone(),
                destinations: Vec::new(),
                created_at: now(),
            });
            if how == Write::Replace {
                alias.destinations.clear();
            }
            let mut added = false;
            for destination in destinations {
                if !alias.destinations.contains(destination) {
                    alias.destinations.push(destination.clone());
                    added = true;
                }
            }
            if !added && how == Write::Extend {
                return Err(StoreError::Duplicate {
                    what: "alias",
                    name: format!("{source} -> {}", join(destinations)),
                });
            }
            if let AliasSource::Address(itself) = source {
                // `me@x -> me@x` alone: mail comes back to where it started and is refused
                // (`550 5.1.1` when there is no mailbox) or the alias does nothing at all.
                if alias.destinations.iter().all(|d| d == itself) {
                    return Err(StoreError::invalid(
                        "destinations",
                        format!(
                            "an alias cannot point only at itself: mail to {itself} would \
                             come back to {itself}; name another destination"
                        ),
                    ));
                }
                // An alias wins over a mailbox of the same name (`Config::resolve`): one that
                // does not list its own source takes the mailbox's mail away. Only on purpose;
                // an alias that diverted before this change keeps doing so.
                let diverted_before =
                    before.as_ref().is_some_and(|b| !b.destinations.contains(itself));
                if !alias.destinations.contains(itself)
                    && !diverted_before
                    && !choice.divert_mailbox
                    && mailboxes::exists(change.conn(), itself).await?
                {
                    return Err(StoreError::invalid(
                        "source",
                        format!(
                            "{itself} is a mailbox: an alias of the same name would take its \
                             mail away. To keep a copy in the mailbox, list {itself} among the \
                             destinations (\"also deliver to the mailbox\"); to send its mail \
                             elsewhere instead, choose \"instead of the mailbox\""
                        ),
                    ));
                }
            }
            if alias.destinations.len() > MAX_DESTINATIONS {
                return Err(StoreError::invalid(
                    "destinations",
                    format!("an alias may list at most {MAX_DESTINATIONS} destinations"),
                ));
            }
            if before.is_none() {
                sqlx::query("INSERT INTO aliases (source, domain, created_at) VALUES ($1, $2, $3)")
                    .bind(source.to_string())
                    .bind(source.domain().as_str())
                    .bind(alias.created_at)
                    .execute(change.conn())
                    .await?;
            }
            write_destinations(change.conn(), &alias).await?;
            change.check_consistency(&source.to_string()).await?;
            let action = if how == Write::Replace { "alias.set" } else { "alias.add" };
            change.audit(action, &source.to_string(), before.as_ref(), Some(&alias)).await?;
            Ok(alias)
        }
        .await;
        change.finish(result).await
    }

    pub async fn get_alias(&self, source: &AliasSource) -> Result<Option<Alias>> {
        get(&mut *self.pool().acquire().await?, source).await
    }

    /// All aliases, or those of one domain.
    pub async fn list_aliases(&self, domain: Option<&DomainName>) -> Result<Vec<Alias>> {
        let all = config::load_aliases(&mut *self.pool().acquire().await?).await?;
        Ok(all.into_values().filter(|a| domain.is_none_or(|d| a.source.domain() == d)).collect())
    }

    /// Removes the given destinations, or the whole alias when none are given (or none are left).
    /// Returns what remains, if anything.
    pub async fn remove_alias(
        &self,
        actor: &str,
        source: &AliasSource,
        destinations: &[Address],
    ) -> Result<Option<Alias>> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let before = get(change.conn(), source)
                .await?
                .ok_or_else(|| StoreError::NotFound { what: "alias", name: source.to_string() })?;
            if let Some(missing) = destinations.iter().find(|d| !before.destinations.contains(d)) {
                return Err(StoreError::NotFound {
                    what: "destination",
                    name: format!("{missing} of alias {source}"),
                });
            }
            let mut after = before.clone();
            after.destinations.retain(|d| !destinations.contains(d));
            let remains = !destinations.is_empty() && !after.destinations.is_empty();
            if remains {
                write_destinations(change.conn(), &after).await?;
            } else {
                sqlx::query("DELETE FROM alias_destinations WHERE source = $1")
                    .bind(source.to_string())
                    .execute(change.conn())
                    .await?;
                sqlx::query("DELETE FROM aliases WHERE source = $1")
                    .bind(source.to_string())
                    .execute(change.conn())
                    .await?;
            }
            change.check_consistency(&source.to_string()).await?;
            let after = remains.then_some(after);
            change
                .audit("alias.remove", &source.to_string(), Some(&before), after.as_ref())
                .await?;
            Ok(after)
        }
        .await;
        change.finish(result).await
    }
}

/// What the person adding an alias chose explicitly; the default refuses whatever needs a
/// choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AliasChoice {
    /// The source is a mailbox and the alias does not list it: its mail goes to the
    /// destinations instead of the mailbox.
    pub divert_mailbox: bool,
}

/// How [`Store::write_alias`] treats an alias that exists (or does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// Create, or add to an existing alias.
    Extend,
    /// Create only.
    Create,
    /// Replace the destinations of an existing alias.
    Replace,
}

fn join(addresses: &[Address]) -> String {
    addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
