//! Administrators' queue actions (CLI, console, API), as the scheduler follows them from the
//! store's queue events: on a whole message, or on some of its recipients only (a
//! domain-admin's action on a message that also goes to other domains), never on the others.
//!
//! An entry in the work list is changed in memory, as the store was: reading it back could
//! race with outcomes the bookkeeper has not recorded yet, and deliver a recipient twice. An
//! entry with an attempt running is only marked, and the attempt's end does the rest. A message
//! not in the work list (held, or every recipient left held) is read from the store.

use postern_store::model::{QueueAction, QueueEvent, QueueId};

use super::{Entry, Scheduler};

impl Scheduler {
    /// Follows what administrators did to the queue since we last looked.
    pub(super) async fn apply_events(&mut self, newest: i64) {
        // A bulk action can leave thousands of events: read them a page at a time.
        while self.last_event < newest {
            let events = match self.store.queue_events_after(self.last_event, 1000).await {
                Ok(events) if !events.is_empty() => events,
                Ok(_) => return,
                Err(e) => return tracing::warn!(error = %e, "cannot read queue events"),
            };
            for event in events {
                self.last_event = self.last_event.max(event.id);
                self.apply(&event).await;
                let recipients = event.recipients.as_ref().map(|r| format!("{r:?}"));
                tracing::info!(queue_id = %event.message, action = event.action.as_str(),
                    recipients = recipients.as_deref().unwrap_or("all"), "queue action");
            }
        }
    }

    async fn apply(&mut self, event: &QueueEvent) {
        let id = event.message;
        let whole = event.recipients.is_none();
        let Some(entry) = self.entries.get_mut(&id) else {
            // Not in the work list: what the store now says is all there is.
            match event.action {
                QueueAction::Retry | QueueAction::Release => self.reload(id, event.action).await,
                QueueAction::Bounce => self.bounce_stored(id, None, event.recipients.clone()),
                QueueAction::Hold | QueueAction::Delete => {}
            }
            return;
        };
        let busy = entry.busy;
        let at = self.config.clock.now();
        match event.action {
            QueueAction::Hold if whole => entry.dropped = true,
            QueueAction::Delete if whole => entry.dropped = true,
            QueueAction::Bounce if whole => {
                if busy {
                    // The attempt's end (or its DSN's) fails the rest.
                    entry.dropped = true;
                    entry.bounced = true;
                } else {
                    self.entries.remove(&id);
                    self.bounce_stored(id, None, None);
                    return;
                }
            }
            QueueAction::Hold => {
                for rcpt in entry.rcpts.iter_mut().filter(|r| event.covers(r.index)) {
                    rcpt.held = true;
                }
            }
            QueueAction::Release => {
                if entry.dropped && !entry.bounced {
                    // Held whole meanwhile: the store turned that into a hold of each
                    // recipient before releasing these.
                    entry.dropped = false;
                    entry.rcpts.iter_mut().filter(|r| !r.done).for_each(|r| r.held = true);
                }
                for rcpt in entry.rcpts.iter_mut().filter(|r| event.covers(r.index)) {
                    rcpt.held = false;
                }
            }
            QueueAction::Retry => {
                for rcpt in entry.rcpts.iter_mut().filter(|r| !r.done && event.covers(r.index)) {
                    rcpt.next_at = rcpt.next_at.min(at);
                }
            }
            QueueAction::Delete => {
                // An attempt running for them has its outcomes ignored (`finish` no longer
                // finds them); the store has removed their rows.
                entry.rcpts.retain(|r| !event.covers(r.index));
            }
            QueueAction::Bounce => {
                let only = event.recipients.clone();
                let targets = entry.rcpts.iter_mut().filter(|r| !r.done && event.covers(r.index));
                if busy {
                    // Fails when the attempt ends, unless the attempt delivers it.
                    targets.for_each(|r| r.bounced = true);
                } else {
                    // Failed in the store already; the DSN comes from there.
                    targets.for_each(|r| r.done = true);
                    self.bounce_stored(id, None, only);
                }
            }
        }
        if busy {
            return;
        }
        if let Some(entry) = self.entries.get(&id)
            && entry.dropped
        {
            self.entries.remove(&id);
            return;
        }
        self.reschedule(id);
    }

    /// Reads a message that is not in the work list back from the store, after a retry or a
    /// release, and schedules it if it is ours and has recipients to try.
    async fn reload(&mut self, id: QueueId, action: QueueAction) {
        match self.store.queue_show(id).await {
            Ok(Some(m)) if !m.held && m.node == self.config.node => {
                let mut entry = Entry::from_stored(m);
                if action == QueueAction::Retry && entry.rcpts.iter().any(|r| r.waiting()) {
                    entry.due = self.config.clock.now();
                }
                if self.entries.contains_key(&id) {
                    return;
                }
                self.schedule(entry);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, queue_id = %id, "cannot reload a queue entry"),
        }
    }
}
