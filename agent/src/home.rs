//! The home channel (DESIGN §5, §6): the devices of one home keep their household in step over
//! `ledtrad/v1/home/{home}/sync`, every payload sealed with a key only the home's devices hold.
//!
//! [`HomeKey`] is that key: made on the first device of a home from the operating system's
//! random source ([`HomeKey::generate`]), shown there as a code ([`HomeKey::code`]) and typed
//! or scanned on the next ([`HomeKey::from_code`]). The home's pseudonym on the broker is
//! derived from it and stays the same for the key's life: the broker learns that some devices
//! (by the client ids they connect with) share a channel, and the sizes of what they send,
//! nothing of what they say. [`HomeKey::seal`] and [`HomeKey::open`] are XChaCha20-Poly1305
//! with a fresh random nonce per message and the sealing's version, a label and the topic as
//! associated data: a payload cannot be read without the key, altered, or moved onto another
//! home's channel. It can be replayed on its own channel by anyone who can publish there, so
//! what the devices exchange ([`sync`]) merges idempotently: hearing a message again changes
//! nothing.

pub mod sync;

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use data_encoding::{Encoding, Specification};
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::HomeId;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// The length of a home key, bytes.
pub const KEY_BYTES: usize = 32;

/// The nonce length of XChaCha20-Poly1305: random nonces this long never repeat in practice.
pub const NONCE_BYTES: usize = 24;

/// What sealing adds to a payload: the version byte, the nonce and the 16-byte tag.
pub const SEAL_OVERHEAD: usize = 1 + NONCE_BYTES + 16;

/// The first byte of a sealed payload: the sealing's version.
const SEAL_VERSION: u8 = 1;

/// Bytes of the code's checksum, after the key's.
const CHECK_BYTES: usize = 2;

/// Characters in one group of the code as shown.
const GROUP: usize = 5;

/// The code's alphabet: digits and letters without I, L, O and U (Crockford's base 32); typed
/// look-alikes are read as what they look like (O as 0, I and L as 1).
const ALPHABET: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A payload sealed with a home's key for the home's channel, made only by
/// [`HomeKey::seal_for_channel`]: the egress gate sends nothing else to a home's topic, so
/// nothing leaves a device for its home but under the home's key.
#[derive(Debug, Clone)]
pub struct Sealed {
    topic: Topic,
    bytes: Vec<u8>,
}

impl Sealed {
    /// The home's channel.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// The sealed bytes, for the egress gate.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// What the associated data of every sealed payload holds after its version byte.
const SEAL_LABEL: &[u8] = b"ledtrad home channel";

/// A home's key. It never leaves the home's devices but as the code a person carries from one
/// screen to the next, and it is wiped from memory when dropped (a device leaving its home).
/// It has no equality: compare pseudonyms.
#[derive(Clone)]
pub struct HomeKey([u8; KEY_BYTES]);

impl Drop for HomeKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for HomeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HomeKey({})", self.pseudonym())
    }
}

/// Why a typed code is not a home's code; each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// A character outside the code's alphabet.
    #[error("{found:?} (character {position} of the code) is not in a home code: codes use the digits and the letters A to Z without I, L, O and U; read it again from the screen that shows it")]
    Character {
        /// The character.
        found: char,
        /// Its position among the code's characters, from 1 (dashes and spaces not counted).
        position: usize,
    },
    /// Too few or too many characters.
    #[error("the code has {found} characters; a home code has {expected} (11 groups of 5): check for a missing or doubled group")]
    Length {
        /// Characters typed (dashes and spaces not counted).
        found: usize,
        /// Characters a code has.
        expected: usize,
    },
    /// The characters do not check out: one was mistyped (a mistyped code passes the check
    /// about once in 65,536 times, and is then a key of no home, whose messages open nowhere).
    #[error("the code does not check out, so a character was mistyped; read it again from the screen that shows it")]
    Checksum,
}

/// Why a sealed payload cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Too short to hold a version, a nonce and a tag.
    #[error("a home payload of {0} bytes is too short to be sealed (at least {SEAL_OVERHEAD})")]
    TooShort(usize),
    /// Sealed by a later version of ledtrad.
    #[error("a home payload sealed with version {0}, which this agent does not know; update the agent")]
    Version(u8),
    /// Not sealed with this home's key for this topic, or altered on the way.
    #[error("a home payload that does not open with this home's key on {topic}: another key, another home's channel, or altered")]
    Forged {
        /// The topic it came on.
        topic: String,
    },
}

impl HomeKey {
    /// A new home's key, from the operating system's random source (never from the agent's
    /// decision draws, which a config may seed).
    pub fn generate() -> Self {
        let mut key = Self([0; KEY_BYTES]);
        rand::rng().fill_bytes(&mut key.0);
        key
    }

    /// The home's pseudonym on the broker: 16 bytes of SHA-256 over a label and the key, in
    /// hex. Anyone with the key derives it; nobody can go back from it to the key.
    pub fn pseudonym(&self) -> HomeId {
        let digest = Sha256::new().chain_update(b"ledtrad home pseudonym v1").chain_update(self.0).finalize();
        HomeId::try_new(hex::encode(&digest[..16])).expect("hex is a valid id")
    }

    /// The home's channel.
    pub fn topic(&self) -> Topic {
        Topic::Home(self.pseudonym())
    }

    /// The key as a person carries it to another screen: the key and a checksum in the code's
    /// alphabet, 55 characters in groups of five ("7QK2M-…").
    pub fn code(&self) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_BYTES + CHECK_BYTES));
        bytes.extend_from_slice(&self.0);
        bytes.extend_from_slice(&checksum(&self.0));
        let plain = Zeroizing::new(encoding().encode(&bytes));
        let mut code = Zeroizing::new(String::with_capacity(plain.len() + plain.len() / GROUP));
        for (i, c) in plain.chars().enumerate() {
            if i > 0 && i % GROUP == 0 {
                code.push('-');
            }
            code.push(c);
        }
        code
    }

    /// The key from a code as typed: upper or lower case, with or without the dashes and
    /// white space between groups, look-alikes read as what they look like. A mistyped
    /// character is caught by the checksum.
    pub fn from_code(code: &str) -> Result<Self, CodeError> {
        let expected = encoding().encode_len(KEY_BYTES + CHECK_BYTES);
        let mut typed = Zeroizing::new(String::with_capacity(expected));
        for c in code.chars().filter(|c| *c != '-' && !c.is_whitespace()) {
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            if !ALPHABET.contains(c) {
                return Err(CodeError::Character { found: c, position: typed.chars().count() + 1 });
            }
            typed.push(c);
        }
        if typed.len() != expected {
            return Err(CodeError::Length { found: typed.len(), expected });
        }
        let bytes = Zeroizing::new(encoding().decode(typed.as_bytes()).map_err(|_| CodeError::Checksum)?);
        let mut key = Self([0; KEY_BYTES]);
        key.0.copy_from_slice(&bytes[..KEY_BYTES]);
        if bytes[KEY_BYTES..] == checksum(&key.0) {
            Ok(key)
        } else {
            Err(CodeError::Checksum)
        }
    }

    /// Seals `plain` for `topic` with a fresh random nonce from the operating system: the
    /// version byte, the nonce, then the ciphertext and its tag.
    pub fn seal(&self, topic: &Topic, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        self.seal_with(topic, nonce, plain)
    }

    /// Seals `plain` for the home's channel: what the egress gate sends there.
    pub fn seal_for_channel(&self, plain: &[u8]) -> Sealed {
        let topic = self.topic();
        Sealed { bytes: self.seal(&topic, plain), topic }
    }

    /// [`HomeKey::seal`] with a given nonce, which must never have sealed anything under this
    /// key before.
    fn seal_with(&self, topic: &Topic, nonce: [u8; NONCE_BYTES], plain: &[u8]) -> Vec<u8> {
        let aad = associated_data(SEAL_VERSION, topic);
        let sealed = self
            .cipher()
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad: &aad })
            .expect("XChaCha20-Poly1305 seals any payload that fits in memory");
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + plain.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a payload that came on `topic`: the plain bytes, or why it cannot be trusted.
    pub fn open(&self, topic: &Topic, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(OpenError::TooShort(sealed.len()));
        }
        if sealed[0] != SEAL_VERSION {
            return Err(OpenError::Version(sealed[0]));
        }
        let (nonce, body) = sealed[1..].split_at(NONCE_BYTES);
        let aad = associated_data(sealed[0], topic);
        self.cipher()
            .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad: &aad })
            .map_err(|_| OpenError::Forged { topic: topic.name() })
    }

    /// A key from the bytes the device keeps it as.
    pub(crate) fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self(bytes)
    }

    /// The key's bytes, to keep it on the device.
    pub(crate) fn bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

/// What a payload's seal authenticates besides the payload: the sealing's version, a label,
/// and the topic it is sent on.
fn associated_data(version: u8, topic: &Topic) -> Vec<u8> {
    let mut aad = vec![version];
    aad.extend_from_slice(SEAL_LABEL);
    aad.extend_from_slice(topic.name().as_bytes());
    aad
}

/// The code's checksum: the first bytes of SHA-256 over a label and the key.
fn checksum(key: &[u8; KEY_BYTES]) -> [u8; CHECK_BYTES] {
    let digest = Sha256::new().chain_update(b"ledtrad home code v1").chain_update(key).finalize();
    [digest[0], digest[1]]
}

/// The code's base-32 encoding, without padding.
fn encoding() -> Encoding {
    let mut spec = Specification::new();
    spec.symbols.push_str(ALPHABET);
    spec.encoding().expect("the code's alphabet is a valid base-32 alphabet")
}

/// What the device's home channel looks like, for the local API.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct HomeView {
    /// The home's pseudonym on the broker, while this device belongs to a home.
    #[schema(value_type = Option<String>)]
    pub home: Option<ledtrad_protocol::HomeId>,
    /// The code another screen joins this home with: only in answer to making a home or
    /// asking for its code. Show it on this screen; do not log or send it.
    pub code: Option<String>,
    /// Messages taken from the home's other devices since the agent started.
    pub heard: u64,
    /// Messages on the home's channel refused since the agent started: not sealed with the
    /// home's key, or not readable after opening.
    pub refused: u64,
    /// Offers shown in the home today, on all its screens, as this screen knows them (what
    /// the home-wide caps count).
    pub shown_today: u32,
}

/// What a home changes in the local API.
#[derive(Debug, Clone)]
pub enum HomeCommand {
    /// Read the view.
    View,
    /// Make a new home with this device as its first.
    Create,
    /// Join a home with the code shown on one of its screens.
    Join(String),
    /// Show the code again, to join another screen.
    Code,
    /// Leave the home and forget its key.
    Leave,
}

#[cfg(test)]
mod tests;
