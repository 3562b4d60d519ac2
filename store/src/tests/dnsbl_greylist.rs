//! DNS blocklists and greylisting in the store: lists, whitelist and threshold reach the loaded
//! configuration; greylisting follows its domains; triplets are saved, updated and pruned.

use super::*;
use crate::StoreError;
use crate::model::{
    GreylistRecord, GreylistSettings, ListKind, NewBlocklist, Triplet, WhitelistEntry,
};

crate::store_tests!(blocklists_whitelist_and_threshold, greylisting_domains_settings_and_triplets);

async fn blocklists_whitelist_and_threshold(store: Store) {
    let new = |zone: &str, kind, weight| NewBlocklist {
        zone: d(zone),
        kind,
        weight,
        codes: "127.0.0.2, 127.0.0.10-11".parse().unwrap(),
        description: "test list".into(),
    };
    store.add_blocklist(ACTOR, new("zen.bl.test", ListKind::Ip, 2)).await.unwrap();
    store.add_blocklist(ACTOR, new("dbl.bl.test", ListKind::Domain, 1)).await.unwrap();
    let again = store.add_blocklist(ACTOR, new("zen.bl.test", ListKind::Ip, 1)).await;
    assert!(matches!(again, Err(StoreError::Duplicate { .. })), "{again:?}");
    let heavy = store.add_blocklist(ACTOR, new("x.bl.test", ListKind::Ip, 5000)).await;
    assert!(matches!(heavy, Err(StoreError::Invalid { field: "weight", .. })), "{heavy:?}");

    store.set_dnsbl_threshold(ACTOR, 3).await.unwrap();
    let entry: WhitelistEntry = "192.0.2.0/24".parse().unwrap();
    store.add_dnsbl_whitelist(ACTOR, &entry).await.unwrap();
    store.add_dnsbl_whitelist(ACTOR, &"partner.test".parse().unwrap()).await.unwrap();
    assert!(store.add_dnsbl_whitelist(ACTOR, &entry).await.is_err());

    let config = store.load_config().await.unwrap();
    let dnsbl = &config.dnsbl;
    assert_eq!(dnsbl.threshold, 3);
    let zones: Vec<_> = dnsbl.lists.iter().map(|l| (l.zone.as_str(), l.kind, l.weight)).collect();
    assert_eq!(zones, [("dbl.bl.test", ListKind::Domain, 1), ("zen.bl.test", ListKind::Ip, 2)]);
    assert_eq!(dnsbl.lists[1].codes.to_string(), "127.0.0.2,127.0.0.10-127.0.0.11");
    assert!(dnsbl.is_whitelisted("192.0.2.5".parse().unwrap(), None));
    assert!(dnsbl.is_whitelisted("198.51.100.1".parse().unwrap(), Some(&d("a.partner.test"))));

    store.remove_blocklist(ACTOR, "ZEN.bl.test.").await.unwrap();
    assert!(matches!(
        store.remove_blocklist(ACTOR, "zen.bl.test").await,
        Err(StoreError::NotFound { .. })
    ));
    store.remove_dnsbl_whitelist(ACTOR, &entry).await.unwrap();
    let dnsbl = store.dnsbl().await.unwrap();
    assert_eq!(dnsbl.lists.len(), 1);
    assert_eq!(dnsbl.whitelist.len(), 1);
    let audit = store.list_audit(50, None).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "dnsbl.add"), "the change is audited");
}

async fn greylisting_domains_settings_and_triplets(store: Store) {
    domain(&store, "example.test").await;
    assert!(
        store.set_greylisting(ACTOR, &d("nowhere.test"), true).await.is_err(),
        "only our domains"
    );
    store.set_greylisting(ACTOR, &d("example.test"), true).await.unwrap();
    let config = store.load_config().await.unwrap();
    assert!(config.greylisting.covers("example.test"));
    assert_eq!(config.greylisting.settings, GreylistSettings::default());

    let settings = GreylistSettings { delay: 60, retry_window: 3600, expire: 86_400 * 10 };
    store.set_greylist_settings(ACTOR, settings).await.unwrap();
    let bad = GreylistSettings { delay: 0, ..settings };
    assert!(store.set_greylist_settings(ACTOR, bad).await.is_err());
    assert_eq!(store.greylisting().await.unwrap().settings, settings);

    // Removing the domain takes its switch along.
    store.set_greylisting(ACTOR, &d("example.test"), false).await.unwrap();
    assert!(!store.load_config().await.unwrap().greylisting.covers("example.test"));

    let t = Triplet::new("192.0.2.1".parse().unwrap(), "a@b.test", "c@example.test");
    assert_eq!(store.greylist_record(&t).await.unwrap(), None);
    let mut record =
        GreylistRecord { triplet: t.clone(), first_seen: 1000, last_seen: 1000, passed_at: None };
    store.save_greylist_record(&record).await.unwrap();
    assert_eq!(store.greylist_record(&t).await.unwrap().as_ref(), Some(&record));
    record.passed_at = Some(1400);
    record.last_seen = 1400;
    store.save_greylist_record(&record).await.unwrap();
    assert_eq!(store.greylist_record(&t).await.unwrap().as_ref(), Some(&record));

    let old = Triplet::new("192.0.2.1".parse().unwrap(), "x@b.test", "c@example.test");
    let stale =
        GreylistRecord { triplet: old.clone(), first_seen: 1000, last_seen: 1000, passed_at: None };
    store.save_greylist_record(&stale).await.unwrap();
    let (all, total) = store.list_greylist_records(10).await.unwrap();
    assert_eq!((all.len(), total), (2, 2));
    assert_eq!(all[0].triplet, t, "newest first");

    // An hour and a bit later the unpassed one's window is over; the passed one stays.
    let pruned = store.prune_greylist(1000 + 3601, &settings).await.unwrap();
    assert_eq!(pruned, 1);
    assert_eq!(store.greylist_record(&old).await.unwrap(), None);
    assert!(store.greylist_record(&t).await.unwrap().is_some());
    // Past its expiry the passed one goes too.
    assert_eq!(store.prune_greylist(1400 + 86_400 * 10 + 1, &settings).await.unwrap(), 1);
}
