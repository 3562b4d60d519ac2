//! Where mail to the postmaster goes (RFC 5321 §4.5.1): `RCPT TO:<postmaster>` without a
//! domain, and `postmaster@` one of our domains that has no alias or mailbox of that name. Both
//! must be accepted, so a configuration that names no postmaster still has one.

use std::collections::HashMap;

use super::{Address, Config, Destination, DomainKind, DomainName};

/// Who takes the postmaster's mail, and how that was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Postmaster {
    /// `postmaster@domain` when such an address leads somewhere; else the stand-in mailbox.
    pub address: Address,
    /// Where the mail goes: the resolution of `address`, without disabled mailboxes.
    pub destinations: Vec<Destination>,
    /// True when no `postmaster@` address of ours leads anywhere and the first mailbox created
    /// stands in, as the nearest thing to the administrator's own address.
    pub stand_in: bool,
}

impl Config {
    /// The postmaster for mail to `postmaster@named` (`named` is `None` for the domainless
    /// `<postmaster>`), on a server called `hostname`.
    ///
    /// The first `postmaster@D` that leads to an enabled mailbox or onward, for D in order:
    /// `named`; the host name and its parents (`mail.example.com`, `example.com`) when they are
    /// ours; the local domains, oldest first. When none does, the first enabled mailbox created,
    /// in that order of domains. Failing that (no mailbox at all), `postmaster@` the oldest
    /// relay domain, passed on to its next hop as any of its addresses would be. `None` when
    /// there is none of these.
    pub fn postmaster(&self, hostname: &str, named: Option<&DomainName>) -> Option<Postmaster> {
        let (ours, relays) = self.postmaster_domains(hostname, named);
        if let Some(p) = self.postmaster_of(&ours) {
            return Some(p);
        }
        let rank: HashMap<&DomainName, usize> =
            ours.iter().enumerate().map(|(i, d)| (d, i)).collect();
        let first = self
            .mailboxes
            .values()
            .filter(|m| m.enabled)
            .filter_map(|m| rank.get(m.address.domain()).map(|r| ((*r, m.created_at), m)))
            .min_by(|(a, ma), (b, mb)| a.cmp(b).then_with(|| ma.address.cmp(&mb.address)));
        if let Some((_, mailbox)) = first {
            let address = mailbox.address.clone();
            return Some(Postmaster {
                destinations: vec![Destination::Mailbox(address.clone())],
                address,
                stand_in: true,
            });
        }
        self.postmaster_of(&relays)
    }

    /// The first `postmaster@` of `domains` that leads somewhere.
    fn postmaster_of(&self, domains: &[DomainName]) -> Option<Postmaster> {
        for domain in domains {
            let Ok(address) = Address::new("postmaster", domain.clone()) else { continue };
            // A loop or an over-long chain is a problem of its own; look further.
            let Ok(destinations) = self.resolve(&address) else { continue };
            let destinations: Vec<Destination> =
                destinations.into_iter().filter(|d| self.takes_mail(d)).collect();
            if !destinations.is_empty() {
                return Some(Postmaster { address, destinations, stand_in: false });
            }
        }
        None
    }

    /// The domains whose `postmaster@` is tried, each once: first those named or the host's
    /// and the local domains, then the other relay domains.
    fn postmaster_domains(
        &self,
        hostname: &str,
        named: Option<&DomainName>,
    ) -> (Vec<DomainName>, Vec<DomainName>) {
        let mut ours: Vec<DomainName> = Vec::new();
        let push = |list: &mut Vec<DomainName>, d: &DomainName| {
            if self.domain_kind(d).is_some() && !list.contains(d) {
                list.push(d.clone());
            }
        };
        if let Some(named) = named {
            push(&mut ours, named);
        }
        let mut name = hostname.trim_end_matches('.');
        loop {
            if let Ok(d) = name.parse::<DomainName>() {
                push(&mut ours, &d);
            }
            match name.split_once('.') {
                Some((_, parent)) if parent.contains('.') => name = parent,
                _ => break,
            }
        }
        let mut relays = Vec::new();
        let mut by_age: Vec<_> = self.domains.values().collect();
        by_age.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
        for d in by_age {
            match d.kind {
                DomainKind::Local => push(&mut ours, &d.name),
                DomainKind::Relay if !ours.contains(&d.name) => push(&mut relays, &d.name),
                DomainKind::Relay => {}
            }
        }
        (ours, relays)
    }

    /// True when mail for `d` goes somewhere: an enabled mailbox, or onward.
    fn takes_mail(&self, d: &Destination) -> bool {
        match d {
            Destination::Mailbox(m) => self.mailboxes.get(m).is_some_and(|m| m.enabled),
            Destination::Forward(_) => true,
            Destination::Unknown(_) => false,
        }
    }
}
