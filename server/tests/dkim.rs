//! DKIM signing checked by an independent verifier, Debian's python3-dkim (dkimpy, run with
//! /usr/bin/python3) given the records `postern dkim list` says to publish; and the rollout
//! against a real DNS server, pebble-challtestsrv (Debian package pebble), which serves the
//! Ed25519 records (it cannot serve TXT records over 255 octets: RSA goes through the
//! scripted resolver).
//!
//! opendkim-testmsg does not apply: it verifies only through the system's DNS, which a test
//! cannot fill.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use postern_server::Engine;
use postern_server::dns::{HickoryResolver, Resolver, ScriptedResolver};
use postern_server::mailauth::{DkimChecker, DkimSigner, Signer};
use postern_store::Store;
use postern_store::model::{DkimAlgorithm, DkimKey, DkimState, DnsCheck, DomainKind};
use postern_store::testing::TestDb;
use support::dkimpy::verify as dkimpy;
use support::peers::challtestsrv;
use tokio_util::sync::CancellationToken;

const ACTOR: &str = "test:dkim";

const MESSAGE: &str = "Received: from client by mail.example.test; Mon, 7 Dec 2026 02:00:00 +0000\r\n\
From: Ann <ann@example.test>\r\n\
To: bob@elsewhere.test\r\n\
Subject: signed\r\n\
Date: Mon, 7 Dec 2026 02:00:00 +0000\r\n\
Message-ID: <1@example.test>\r\n\
\r\n\
Hello,  world.\r\n\
.leading dot\r\n\
\r\n\
\r\n";

fn published(keys: &[DkimKey]) -> Vec<(String, String)> {
    keys.iter().map(|k| (k.record_name(), k.record_value())).collect()
}

async fn store_with_domain(db: &TestDb) -> Store {
    let store = db.open().await;
    store.add_domain(ACTOR, &"example.test".parse().unwrap(), DomainKind::Local).await.unwrap();
    store
}

/// Waits until the engine runs the store's current revision.
async fn caught_up(engine: &Engine, store: &Store) {
    let want = store.revision().await.unwrap();
    let start = Instant::now();
    while engine.snapshot().revision() < want {
        assert!(start.elapsed() < Duration::from_secs(10), "the engine never saw revision {want}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn signed(signer: &DkimSigner, message: &str) -> Vec<u8> {
    // Signed in two parts, as a spooled message is (our fields, then the message as it came):
    // the signature is over their concatenation.
    let (front, rest) = message.split_at(message.find('\n').map_or(0, |i| i + 1));
    let fields = signer.sign("example.test", &[front.as_bytes(), rest.as_bytes()]);
    format!("{fields}{message}").into_bytes()
}

#[tokio::test]
async fn ed25519_and_rsa_signatures_verify_with_dkimpy() {
    let test = "ed25519_and_rsa_signatures_verify_with_dkimpy";
    let db = TestDb::sqlite();
    let store = store_with_domain(&db).await;
    let domain = "example.test".parse().unwrap();
    let shutdown = CancellationToken::new();
    let (engine, _task) = Engine::start(store.clone(), "test", shutdown.clone()).await.unwrap();
    let signer = DkimSigner::new(engine.clone());
    assert!(signer.sign("example.test", &[MESSAGE.as_bytes()]).is_empty(), "no key yet");

    let mut keys = Vec::new();
    for (selector, algorithm, bits) in [
        ("ed", DkimAlgorithm::Ed25519, None),
        ("rsa2048", DkimAlgorithm::Rsa, None),
        ("rsa4096", DkimAlgorithm::Rsa, Some(4096)),
    ] {
        let key =
            store.generate_dkim_key(ACTOR, &domain, algorithm, bits, Some(selector)).await.unwrap();
        keys.push(key);
    }
    // Pending keys sign nothing.
    caught_up(&engine, &store).await;
    assert!(signer.sign("example.test", &[MESSAGE.as_bytes()]).is_empty());
    // Once active they sign from the next message on, without a restart: an Ed25519 and an
    // RSA key side by side.
    for key in &keys[..2] {
        store.activate_dkim_key(ACTOR, &domain, &key.selector).await.unwrap();
    }
    caught_up(&engine, &store).await;
    let message = signed(&signer, MESSAGE);
    let text = String::from_utf8_lossy(&message).into_owned();
    assert_eq!(text.matches("DKIM-Signature:").count(), 2, "{text}");
    assert!(text.contains("a=ed25519-sha256") && text.contains("a=rsa-sha256"), "{text}");
    let verified = dkimpy(test, &message, &published(&keys));
    if let Some(results) = &verified {
        assert_eq!(results, &[true, true], "{text}");
    }
    // A 4096-bit RSA key replaces the 2048-bit one.
    store.activate_dkim_key(ACTOR, &domain, "rsa4096").await.unwrap();
    caught_up(&engine, &store).await;
    let message = signed(&signer, MESSAGE);
    let text = String::from_utf8_lossy(&message);
    assert!(text.contains("s=rsa4096;") && !text.contains("s=rsa2048;"), "{text}");
    assert!(signer.sign("elsewhere.test", &[MESSAGE.as_bytes()]).is_empty(), "not our domain");

    let Some(results) = dkimpy(test, &message, &published(&keys)) else { return };
    assert_eq!(results, [true, true], "{text}");
    // A changed body or header fails, as it must.
    let tampered = String::from_utf8(message.clone()).unwrap().replace("world", "w0rld");
    assert_eq!(dkimpy(test, tampered.as_bytes(), &published(&keys)).unwrap(), [false, false]);
    let tampered = String::from_utf8(message).unwrap().replace("Subject: signed", "Subject: x");
    assert_eq!(dkimpy(test, tampered.as_bytes(), &published(&keys)).unwrap(), [false, false]);
    shutdown.cancel();
}

fn key_named<'a>(keys: &'a [DkimKey], selector: &str) -> &'a DkimKey {
    keys.iter().find(|k| k.selector == selector).unwrap_or_else(|| panic!("no key {selector}"))
}

/// The whole rollout against pebble-challtestsrv: pending while the record is missing or
/// different, active once published (and only then signing), the next key pending beside it,
/// the switch once the next record is seen, the old key retiring with a date to keep its record
/// until, then retired.
#[tokio::test]
async fn a_rotation_goes_through_every_state_against_a_real_dns_server() {
    let test = "a_rotation_goes_through_every_state_against_a_real_dns_server";
    let Some(dns) = challtestsrv(test) else { return };
    let db = TestDb::sqlite();
    let store = store_with_domain(&db).await;
    let domain = "example.test".parse().unwrap();
    let shutdown = CancellationToken::new();
    let (engine, _task) = Engine::start(store.clone(), "test", shutdown.clone()).await.unwrap();
    let signer = DkimSigner::new(engine.clone());
    let resolver: Arc<dyn Resolver> = Arc::new(HickoryResolver::new(&[dns.dns]).unwrap());
    let checker = DkimChecker { store: store.clone(), resolver, actor: ACTOR.into() };

    let one = store
        .generate_dkim_key(ACTOR, &domain, DkimAlgorithm::Ed25519, None, Some("one"))
        .await
        .unwrap();
    let keys = checker.check(None).await.unwrap();
    assert_eq!(key_named(&keys, "one").state, DkimState::Pending);
    assert_eq!(key_named(&keys, "one").dns, Some(DnsCheck::Missing));

    // Another key at the name: still pending, and the check says what it found.
    let stale = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    dns.set_txt(&one.record_name(), stale).await;
    let keys = checker.check(Some(&domain)).await.unwrap();
    assert_eq!(key_named(&keys, "one").state, DkimState::Pending);
    assert_eq!(key_named(&keys, "one").dns, Some(DnsCheck::Different(stale.into())));
    caught_up(&engine, &store).await;
    assert!(
        signer.sign("example.test", &[MESSAGE.as_bytes()]).is_empty(),
        "pending keys do not sign"
    );

    // Published: active, and signing.
    dns.clear_txt(&one.record_name()).await;
    dns.set_txt(&one.record_name(), &one.record_value()).await;
    let keys = checker.check(Some(&domain)).await.unwrap();
    assert_eq!(key_named(&keys, "one").state, DkimState::Active);
    assert_eq!(key_named(&keys, "one").dns, Some(DnsCheck::Published));
    caught_up(&engine, &store).await;
    let message = signed(&signer, MESSAGE);
    assert!(String::from_utf8_lossy(&message).contains("s=one;"));
    if let Some(results) = dkimpy(test, &message, &[(one.record_name(), one.record_value())]) {
        assert_eq!(results, [true]);
    }

    // Rotation: the next key waits for its record; the current one keeps signing.
    let two = store.rotate_dkim_key(ACTOR, &domain, None).await.unwrap();
    let keys = checker.check(Some(&domain)).await.unwrap();
    assert_eq!(key_named(&keys, &two.selector).state, DkimState::Pending);
    assert_eq!(key_named(&keys, "one").state, DkimState::Active);
    caught_up(&engine, &store).await;
    let text = String::from_utf8(signed(&signer, MESSAGE)).unwrap();
    assert!(text.contains("s=one;") && !text.contains(&format!("s={};", two.selector)), "{text}");

    // The next record is seen: signing switches, the old key retires after the grace period.
    dns.set_txt(&two.record_name(), &two.record_value()).await;
    let before = postern_store::now();
    let keys = checker.check(Some(&domain)).await.unwrap();
    assert_eq!(key_named(&keys, &two.selector).state, DkimState::Active);
    let old = key_named(&keys, "one");
    assert_eq!(old.state, DkimState::Retiring);
    assert!(old.retire_after.unwrap() >= before + 7 * 86_400, "kept published for 7 days");
    caught_up(&engine, &store).await;
    let message = signed(&signer, MESSAGE);
    let text = String::from_utf8_lossy(&message);
    assert!(text.contains(&format!("s={};", two.selector)) && !text.contains("s=one;"), "{text}");
    let records =
        [(one.record_name(), one.record_value()), (two.record_name(), two.record_value())];
    if let Some(results) = dkimpy(test, &message, &records) {
        assert_eq!(results, [true]);
    }

    // The grace period over (aged in the database rather than waited for), the next check
    // retires the old key: its record may go.
    postern_store::testing::hand_edit(
        &store,
        "UPDATE dkim_keys SET retire_after = 1 WHERE state = 'retiring'",
    )
    .await;
    let keys = checker.check(Some(&domain)).await.unwrap();
    assert_eq!(key_named(&keys, "one").state, DkimState::Retired);
    assert_eq!(key_named(&keys, &two.selector).state, DkimState::Active);
    shutdown.cancel();
}

/// RSA records are longer than one DNS string (and than pebble-challtestsrv serves): the check
/// matches the joined strings, through the scripted resolver.
#[tokio::test]
async fn a_long_rsa_record_is_seen_through_the_scripted_resolver() {
    let db = TestDb::sqlite();
    let store = store_with_domain(&db).await;
    let domain = "example.test".parse().unwrap();
    let key =
        store.generate_dkim_key(ACTOR, &domain, DkimAlgorithm::Rsa, None, Some("r")).await.unwrap();
    assert_eq!(key.record_strings().len(), 2);
    let scripted = Arc::new(ScriptedResolver::new().exists(&key.record_name()));
    let checker =
        DkimChecker { store: store.clone(), resolver: scripted.clone(), actor: ACTOR.into() };
    assert_eq!(checker.check(None).await.unwrap()[0].dns, Some(DnsCheck::Missing));
    scripted.set_txt(&key.record_name(), &["v=spf1 -all"]);
    assert_eq!(checker.check(None).await.unwrap()[0].dns, Some(DnsCheck::Missing), "not DKIM");
    scripted.set_txt(&key.record_name(), &[&key.record_strings().concat()]);
    let keys = checker.check(None).await.unwrap();
    assert_eq!(
        (keys[0].state, keys[0].dns.clone()),
        (DkimState::Active, Some(DnsCheck::Published))
    );
    // A failed lookup is no verdict: nothing changes but the recorded failure.
    let failing = Arc::new(ScriptedResolver::new().temporary(&key.record_name()));
    let checker = DkimChecker { store, resolver: failing, actor: ACTOR.into() };
    let keys = checker.check(None).await.unwrap();
    assert_eq!(keys[0].state, DkimState::Active);
    assert!(matches!(keys[0].dns, Some(DnsCheck::Failed(_))), "{:?}", keys[0].dns);
}

/// Automatic rotation (every 30 days here) through every state, in simulated time
/// (`DkimChecker::check_at`) and through the scripted resolver: the hourly check makes the next
/// key once the active one is old enough, signing switches once its record is seen, and the old
/// key retires after the grace period; a fresh key is not rotated again.
#[tokio::test]
async fn keys_rotate_automatically_through_every_state() {
    let db = TestDb::sqlite();
    let store = store_with_domain(&db).await;
    let domain = "example.test".parse().unwrap();
    let one = store
        .generate_dkim_key(ACTOR, &domain, DkimAlgorithm::Ed25519, None, Some("one"))
        .await
        .unwrap();
    let scripted = Arc::new(ScriptedResolver::new().txt(&one.record_name(), &one.record_value()));
    let checker =
        DkimChecker { store: store.clone(), resolver: scripted.clone(), actor: ACTOR.into() };
    let now = postern_store::now();
    let keys = checker.check_at(Some(&domain), now).await.unwrap();
    assert_eq!(key_named(&keys, "one").state, DkimState::Active);
    let every_30 =
        postern_store::model::DkimSettings { rotate_days: Some(30), sign_relayed: false };
    store.set_dkim_settings(ACTOR, &domain, every_30).await.unwrap();

    // 29 days on: nothing to do. 31 days on: the next key, pending; the old one still signs.
    let keys = checker.check_at(Some(&domain), now + 29 * 86_400).await.unwrap();
    assert_eq!(keys.len(), 1);
    let month = now + 31 * 86_400;
    let keys = checker.check_at(Some(&domain), month).await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let two = keys.iter().find(|k| k.selector != "one").unwrap().clone();
    assert_eq!((two.state, two.algorithm), (DkimState::Pending, DkimAlgorithm::Ed25519));
    assert_eq!(two.dns, Some(DnsCheck::Missing));
    assert_eq!(key_named(&keys, "one").state, DkimState::Active);
    // Waiting for its record makes no third key.
    assert_eq!(checker.check_at(Some(&domain), month + 3600).await.unwrap().len(), 2);

    // Published: the switch, and the old key's record kept for the grace period.
    scripted.set_txt(&two.record_name(), &[&two.record_value()]);
    let keys = checker.check_at(Some(&domain), month + 7200).await.unwrap();
    assert_eq!(key_named(&keys, &two.selector).state, DkimState::Active);
    assert_eq!(key_named(&keys, "one").state, DkimState::Retiring);
    let keep_until = key_named(&keys, "one").retire_after.unwrap();
    let keys = checker.check_at(Some(&domain), keep_until).await.unwrap();
    assert_eq!(key_named(&keys, "one").state, DkimState::Retired);
    assert_eq!(keys.len(), 2, "the new key is too young to rotate");
}

/// The engine's hourly schedule (`run_schedule`) runs on the store's clock: on a simulated one,
/// a month passes in milliseconds and the rotation comes (on the system's clock it would not:
/// the key is new).
#[tokio::test]
async fn the_rollout_schedule_runs_on_the_stores_clock() {
    let db = TestDb::sqlite();
    let store = store_with_domain(&db).await;
    let sim = postern_store::SimClock::at_system_now();
    store.set_clock(sim.clone().into());
    let domain = "example.test".parse().unwrap();
    let one = store
        .generate_dkim_key(ACTOR, &domain, DkimAlgorithm::Ed25519, None, Some("one"))
        .await
        .unwrap();
    let scripted = Arc::new(ScriptedResolver::new().txt(&one.record_name(), &one.record_value()));
    let every_30 =
        postern_store::model::DkimSettings { rotate_days: Some(30), sign_relayed: false };
    store.set_dkim_settings(ACTOR, &domain, every_30).await.unwrap();
    let checker = DkimChecker { store: store.clone(), resolver: scripted, actor: ACTOR.into() };
    let shutdown = CancellationToken::new();
    let schedule = tokio::spawn(postern_server::mailauth::run_schedule(
        checker,
        postern_server::mailauth::CHECK_EVERY,
        shutdown.clone(),
    ));
    let state = |keys: &[DkimKey]| {
        let mut states: Vec<String> = keys.iter().map(|k| format!("{:?}", k.state)).collect();
        states.sort();
        states
    };
    let wait_for = async |wanted: &[DkimState]| {
        let mut wanted: Vec<String> = wanted.iter().map(|s| format!("{s:?}")).collect();
        wanted.sort();
        let start = Instant::now();
        loop {
            let keys = store.list_dkim_keys(Some(&domain)).await.unwrap();
            if state(&keys) == wanted {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "never {wanted:?}: {keys:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    // The first check, at once, finds the record.
    wait_for(&[DkimState::Active]).await;
    // 31 days on, the next hourly check makes the next key.
    sim.advance(Duration::from_secs(31 * 86_400));
    wait_for(&[DkimState::Active, DkimState::Pending]).await;
    shutdown.cancel();
    schedule.await.unwrap();
}
