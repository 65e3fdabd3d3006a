use super::*;

fn key(seed: u8) -> HomeKey {
    HomeKey::from_bytes([seed; KEY_BYTES])
}

#[test]
fn a_code_carries_the_key_to_another_screen_however_it_is_typed() {
    let home = HomeKey::generate();
    let code = home.code();
    assert_eq!(code.len(), 55 + 10, "11 groups of 5 and 10 dashes: {}", code.as_str());
    assert!(code.chars().all(|c| c == '-' || ALPHABET.contains(c)));
    let same = |typed: &str| HomeKey::from_code(typed).map(|k| k.pseudonym());
    assert_eq!(same(&code), Ok(home.pseudonym()));
    assert_eq!(same(&code.to_lowercase().replace('-', " ")), Ok(home.pseudonym()));
    assert_eq!(same(&code.replace('-', "\t")), Ok(home.pseudonym()));
    assert_eq!(same(&format!("{}\n", code.replace('-', ""))), Ok(home.pseudonym()));
    // Look-alikes read as what they look like.
    let alike = code.replacen('0', "O", 1).replacen('1', "l", 1);
    assert_eq!(same(&alike), Ok(home.pseudonym()));
    assert_ne!(HomeKey::generate().pseudonym(), home.pseudonym(), "each home its own key");
}

#[test]
fn a_mistyped_code_is_refused_with_what_to_do() {
    let code = key(3).code();
    // One character changed for another of the alphabet: the checksum catches it, the last
    // one (whose low bits must be zero) included.
    let swap = |c: char| if c == '0' { '2' } else { '0' };
    for at in [0, code.len() - 1] {
        let typo: String = code.chars().enumerate().map(|(i, c)| if i == at { swap(c) } else { c }).collect();
        assert_eq!(HomeKey::from_code(&typo).map(|k| k.pseudonym()), Err(CodeError::Checksum), "at {at}");
    }
    // A letter that is not in the alphabet is named with its place.
    let err = HomeKey::from_code(&format!("{}U{}", &code[..2], &code[3..])).map(|_| ()).unwrap_err();
    assert_eq!(err, CodeError::Character { found: 'U', position: 3 });
    assert!(err.to_string().contains("without I, L, O and U"), "{err}");
    let err = HomeKey::from_code(&format!("é{}", &code[1..])).map(|_| ()).unwrap_err();
    assert_eq!(err, CodeError::Character { found: 'é', position: 1 });
    // A group left out, a group doubled, nothing at all.
    for (typed, found) in
        [(code[6..].to_string(), 50), (format!("{}-{}", &code[..5], code.as_str()), 60), (String::new(), 0)]
    {
        let err = HomeKey::from_code(&typed).map(|_| ()).unwrap_err();
        assert_eq!(err, CodeError::Length { found, expected: 55 });
        assert!(err.to_string().contains("missing or doubled group"));
    }
}

#[test]
fn the_pseudonym_follows_from_the_key_and_says_nothing_of_it() {
    let (a, b) = (key(1), key(2));
    assert_eq!(a.pseudonym(), key(1).pseudonym());
    assert_ne!(a.pseudonym(), b.pseudonym());
    assert_eq!(a.pseudonym().as_str().len(), 32);
    assert!(!a.pseudonym().as_str().contains(&hex::encode([1u8; 4])));
    assert_eq!(a.topic().name(), format!("ledtrad/v1/home/{}/sync", a.pseudonym()));
    assert_eq!(format!("{a:?}"), format!("HomeKey({})", a.pseudonym()), "debug output shows no key");
}

#[test]
fn a_sealed_payload_opens_only_with_the_key_on_its_own_channel_and_unaltered() {
    let home = key(7);
    let topic = home.topic();
    let plain = br#"{"person":"anna","purpose":"personalise","granted":false}"#;
    let sealed = home.seal(&topic, plain);
    assert_eq!(sealed.len(), plain.len() + SEAL_OVERHEAD);
    assert_eq!(home.open(&topic, &sealed).unwrap(), plain);
    // What the broker sees: no JSON, no person, no purpose.
    for word in [&b"anna"[..], b"personalise", b"{\""] {
        assert!(!sealed.windows(word.len()).any(|w| w == word), "{:?} in the clear", String::from_utf8_lossy(word));
    }
    // Another home's key, another home's channel, a flipped bit, a cut payload.
    let stranger = key(8);
    assert!(matches!(stranger.open(&topic, &sealed), Err(OpenError::Forged { .. })));
    assert!(matches!(home.open(&stranger.topic(), &sealed), Err(OpenError::Forged { .. })));
    let mut flipped = sealed.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(matches!(home.open(&topic, &flipped), Err(OpenError::Forged { .. })));
    assert_eq!(home.open(&topic, &sealed[..10]), Err(OpenError::TooShort(10)));
    let mut later = sealed;
    later[0] = 2;
    assert_eq!(home.open(&topic, &later), Err(OpenError::Version(2)));
    // A forged payload from a device outside the home does not open either.
    let forged = stranger.seal(&topic, plain);
    assert!(home.open(&topic, &forged).is_err());
}

#[test]
fn an_empty_payload_seals_to_the_overhead_alone_and_one_byte_less_is_refused() {
    let home = key(5);
    let topic = home.topic();
    let sealed = home.seal(&topic, b"");
    assert_eq!(sealed.len(), SEAL_OVERHEAD);
    assert_eq!(home.open(&topic, &sealed).unwrap(), b"");
    assert_eq!(home.open(&topic, &sealed[..SEAL_OVERHEAD - 1]), Err(OpenError::TooShort(SEAL_OVERHEAD - 1)));
}

#[test]
fn every_seal_takes_a_fresh_nonce() {
    let home = key(4);
    let topic = home.topic();
    let (one, two) = (home.seal(&topic, b"same"), home.seal(&topic, b"same"));
    assert_ne!(one[1..=NONCE_BYTES], two[1..=NONCE_BYTES]);
    assert_ne!(one, two);
    // With a given nonce, the same payload seals the same way: the nonce is all that differs.
    assert_eq!(home.seal_with(&topic, [1; NONCE_BYTES], b"same"), home.seal_with(&topic, [1; NONCE_BYTES], b"same"));
}
