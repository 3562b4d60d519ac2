//! Property-based tests of the parsers that take text from outside (issue 15, fuzzing): domain
//! names and addresses, transports and the boot configuration. Each property runs on generated
//! input: a short run by default, `PROPTEST_CASES=N` for a long one (`.ci/fuzz-long`). Failing
//! inputs are kept in `store/tests/properties.proptest-regressions` and replayed first.

use postern_store::boot::{BootConfig, Profile};
use postern_store::model::{Address, DomainName, Transport};
use proptest::prelude::*;

/// The configured number of cases, `PROPTEST_CASES` when set (proptest reads it itself for the
/// default; this keeps the short run short when it is not).
fn cases(default: u32) -> ProptestConfig {
    let cases =
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    ProptestConfig { cases, failure_persistence: persistence(), ..ProptestConfig::default() }
}

fn persistence() -> Option<Box<dyn proptest::test_runner::FailurePersistence>> {
    Some(Box::new(proptest::test_runner::FileFailurePersistence::WithSource(
        "proptest-regressions",
    )))
}

/// Text that looks like what a person or a client would type, with the awkward characters a
/// hostile one adds: dots, brackets, colons, controls, non-ASCII, white space.
fn texty() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9.@:\\[\\]/_+-]{0,40}",
        "[ -~]{0,60}",
        any::<String>(),
        "[a-z]{1,10}(\\.[a-z]{1,10}){0,3}@[a-z0-9-]{1,12}(\\.[a-z]{2,6}){1,3}",
        "(\\p{L}|[.@ \t\r\n\u{0}\u{85}\u{2028}-]){0,30}",
        // Letters whose lower case is longer or shorter in UTF-8 than they are (İ, ẞ, the
        // Kelvin sign, Σ), near the 64-octet limit of a local part.
        "(\\x{130}|[a-z]){20,50}@[a-z]{1,10}\\.test",
        "(\\x{1E9E}|\\x{212A}|\\x{3A3}|[a-z]){10,40}@[a-z]{1,10}\\.test",
    ]
}

/// A label IDNA leaves as it is (no hyphens: `ab--c` and `xn--` have meanings of their own).
fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,12}"
}

/// A domain name that must be accepted: LDH labels, a letter in the top-level one.
fn good_domain() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 1..4), "[a-z][a-z0-9]{1,6}")
        .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")))
}

proptest! {
    #![proptest_config(cases(256))]

    /// Any text either parses or is refused with a message; what parses is normalised once and
    /// for all (its display parses back to itself).
    #[test]
    fn domains_and_addresses_never_panic_and_normalise_once(input in texty()) {
        if let Ok(domain) = input.parse::<DomainName>() {
            let again: DomainName = domain.as_str().parse().expect("a normalised domain parses");
            prop_assert_eq!(&again, &domain);
            prop_assert!(domain.as_str().len() <= 253);
            prop_assert!(domain.as_str().is_ascii());
        }
        match input.parse::<Address>() {
            Ok(address) => {
                let again: Address = address.to_string().parse().expect("a normalised address parses");
                prop_assert_eq!(&again, &address);
                prop_assert!(!address.to_string().chars().any(char::is_control));
            }
            Err(e) => prop_assert!(e.to_string().starts_with("address:"), "{}", e),
        }
    }

    /// Dot-atoms at a good domain are accepted, lower-cased.
    #[test]
    fn good_addresses_are_accepted(
        local in "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\\.[A-Za-z0-9_-]{1,10}){0,2}",
        domain in good_domain(),
    ) {
        let address: Address = format!("{local}@{domain}").parse().expect("a dot-atom address");
        prop_assert_eq!(address.local(), local.to_lowercase());
        prop_assert_eq!(address.domain().as_str(), domain);
    }

    /// A transport either parses or is refused; what parses displays as text that parses back to
    /// the same transport (the console and the API show and take that text).
    #[test]
    fn transports_round_trip(input in prop_oneof![
        texty(),
        (
            prop::sample::select(vec!["smtp", "SMTP", "lmtp", "error", "local", "mx", "discard", "lmtp:unix"]),
            prop_oneof![
                good_domain(),
                Just("[::1]".to_string()),
                Just("::1".to_string()),
                "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
                "\\[[0-9a-f:]{2,20}\\]",
                "/[a-z/ ]{0,20}",
                texty(),
            ],
            prop::option::of("[0-9]{1,6}"),
            any::<bool>(),
        ).prop_map(|(kind, host, port, bracket)| {
            let host = if bracket { format!("[{host}]") } else { host };
            match port {
                Some(port) => format!("{kind}:{host}:{port}"),
                None => format!("{kind}:{host}"),
            }
        }),
    ]) {
        match input.parse::<Transport>() {
            Ok(transport) => {
                let text = transport.to_string();
                let again = text.parse::<Transport>();
                prop_assert_eq!(again.as_ref().ok(), Some(&transport), "{:?} -> {:?} -> {:?}", input, text, again);
            }
            Err(e) => prop_assert!(e.to_string().starts_with("transport:"), "{}", e),
        }
    }

    /// The boot configuration: any text is a configuration or a clear error, never a panic,
    /// whichever keys, values and types it holds.
    #[test]
    fn boot_config_never_panics(text in boot_text()) {
        for profile in [Profile::Standard, Profile::Dev] {
            match BootConfig::from_toml(&text, profile) {
                Ok(_) => {}
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}

/// A `postern.toml`: the real sections and keys (from the shipped example) with generated
/// values of every TOML type, some keys unknown, or plain junk.
fn boot_text() -> impl Strategy<Value = String> {
    let example = include_str!("../src/boot/example.toml");
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut section = String::new();
    for line in example.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((key, _)) = line.trim_start_matches('#').trim().split_once(" = ")
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            keys.push((section.clone(), key.to_string()));
        }
    }
    keys.push((String::new(), "no_such_key".into()));
    keys.push(("smtp".into(), "listen".into()));
    let value = prop_oneof![
        "-?[0-9]{1,22}",
        "[0-9]{1,12}(ms|s|m|h|d|w|x)?".prop_map(|v| format!("\"{v}\"")),
        texty().prop_map(|v| format!("{v:?}")),
        Just("true".to_string()),
        Just("[]".to_string()),
        Just("[\"127.0.0.1:0\", \"[::1]:25\", \"0.0.0.0:99999\", \"x\"]".to_string()),
        Just("\"sqlite\"".to_string()),
        Just("\"postgres://u@h/d\"".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("1.5".to_string()),
    ];
    let entry = (prop::sample::select(keys), value);
    prop_oneof![
        4 => prop::collection::vec(entry, 0..12).prop_map(|entries| {
            let mut by_section: std::collections::BTreeMap<String, Vec<String>> = Default::default();
            for ((section, key), value) in entries {
                let lines = by_section.entry(section).or_default();
                // A key given twice is a TOML error; keep the first so most texts get further.
                if !lines.iter().any(|l| l.starts_with(&format!("{key} = "))) {
                    lines.push(format!("{key} = {value}"));
                }
            }
            let mut text = String::new();
            for (section, lines) in by_section {
                if !section.is_empty() {
                    text.push_str(&format!("[{section}]\n"));
                }
                for line in lines {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
            // (Top-level keys come first: "" sorts before every section name.)
            text
        }),
        1 => texty(),
    ]
}

/// Lower case can be longer in UTF-8 than the text it comes from ("İ" is 2 octets, "i̇" 3): the
/// 64-octet limit of a local part (RFC 5321 §4.5.3.1.1) holds for what is stored, so that the
/// stored address parses again.
#[test]
fn a_local_part_is_limited_as_stored() {
    let local = "\u{130}".repeat(32);
    assert_eq!(local.len(), 64);
    match format!("{local}@example.test").parse::<Address>() {
        Ok(address) => {
            let again = address.to_string().parse::<Address>();
            assert_eq!(again.ok().as_ref(), Some(&address), "{address} does not parse again");
        }
        Err(e) => assert!(e.to_string().contains("64 octets"), "{e}"),
    }
}
