use super::*;

fn key(seed: u8) -> HomeKey {
    HomeKey::from_random([seed; KEY_BYTES])
}

#[test]
fn a_code_carries_the_key_to_another_screen_however_it_is_typed() {
    let home = HomeKey::from_random(core::array::from_fn(|i| (i * 37 + 11) as u8));
    let code = home.code();
    assert_eq!(code.len(), 55 + 10, "11 groups of 5 and 10 dashes: {code}");
    assert!(code.chars().all(|c| c == '-' || ALPHABET.contains(c)));
    assert_eq!(HomeKey::from_code(&code), Ok(home.clone()));
    assert_eq!(HomeKey::from_code(&code.to_lowercase().replace('-', " ")), Ok(home.clone()));
    assert_eq!(HomeKey::from_code(&code.replace('-', "")), Ok(home));
}

#[test]
fn a_mistyped_code_is_refused_with_what_to_do() {
    let code = key(3).code();
    // One character changed for another of the alphabet: the checksum catches it.
    let first = code.chars().next().unwrap();
    let other = if first == '0' { '1' } else { '0' };
    let typo: String = std::iter::once(other).chain(code.chars().skip(1)).collect();
    assert_eq!(HomeKey::from_code(&typo), Err(CodeError::Checksum));
    // A look-alike letter that is not in the alphabet is named with its place.
    let err = HomeKey::from_code(&format!("{}O{}", &code[..2], &code[3..])).unwrap_err();
    assert_eq!(err, CodeError::Character { found: 'O', position: 3 });
    assert!(err.to_string().contains("without I, L, O and U"), "{err}");
    // A group left out.
    let short = &code[6..];
    let err = HomeKey::from_code(short).unwrap_err();
    assert_eq!(err, CodeError::Length { found: 50, expected: 55 });
    assert!(err.to_string().contains("missing or doubled group"));
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
    let sealed = home.seal(&topic, [9; NONCE_BYTES], plain);
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
    let forged = stranger.seal(&topic, [1; NONCE_BYTES], plain);
    assert!(home.open(&topic, &forged).is_err());
}

#[test]
fn fresh_nonces_seal_the_same_payload_differently() {
    let home = key(4);
    let topic = home.topic();
    assert_ne!(home.seal(&topic, [1; NONCE_BYTES], b"same"), home.seal(&topic, [2; NONCE_BYTES], b"same"));
}
