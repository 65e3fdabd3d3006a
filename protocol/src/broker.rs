//! Broker addresses as users write them (`mqtt://HOST:PORT` for plain TCP, the port defaulting
//! to 1883; `mqtts://HOST:PORT` for TLS, defaulting to 8883), and the login a client presents to
//! a broker that asks for one.

use alloc::string::String;
use core::fmt;
use core::str::FromStr;

/// The default MQTT port.
pub const DEFAULT_PORT: u16 = 1883;

/// The default MQTT-over-TLS port.
pub const DEFAULT_TLS_PORT: u16 = 8883;

/// An MQTT broker address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerUrl {
    /// Host name or IP address (for TLS, the name the broker's certificate is checked against).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether the connection is TLS (`mqtts://`).
    pub tls: bool,
}

impl BrokerUrl {
    /// A plain-TCP address.
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        Self { host: host.into(), port, tls: false }
    }

    /// The same host and port over TLS.
    pub fn with_tls(self) -> Self {
        Self { tls: true, ..self }
    }
}

/// Why a broker address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "broker address {value:?} {reason}; write it as mqtt://HOST:PORT or, for TLS, mqtts://HOST:PORT, e.g. mqtt://127.0.0.1:1883, mqtts://broker.example:8883 or mqtt://[::1]:1883"
)]
pub struct InvalidBrokerUrl {
    /// The rejected text.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for BrokerUrl {
    type Err = InvalidBrokerUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| InvalidBrokerUrl { value: s.into(), reason };
        let (tls, rest) = match (s.strip_prefix("mqtt://"), s.strip_prefix("mqtts://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(err("does not start with mqtt:// or mqtts://")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('@') {
            return Err(err("has a path or credentials, which are not supported"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| err("has an unclosed '['"))?;
            match after {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':').ok_or_else(|| err("has text after ']' that is not :PORT"))?)),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => return Err(err("has an IPv6 address without brackets")),
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(err("has no host"));
        }
        let port = match port {
            None if tls => DEFAULT_TLS_PORT,
            None => DEFAULT_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| err("has a port that is not a number from 1 to 65535"))?,
        };
        Ok(Self { host: host.into(), port, tls })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// A broker login: a username and the password read from a password file. The password is
/// never printed, not even by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

/// Why a broker login was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCredentials {
    /// The username is empty.
    #[error("the broker username is empty; give the name the broker knows this client by (a device logs in with its device_id)")]
    EmptyUsername,
    /// The username holds a character a broker's ACL cannot substitute into a topic.
    #[error(
        "broker username {0:?} has a character that cannot stand in a topic ('/', '+', '#' or a control character); a device logs in with its device_id"
    )]
    BadUsername(String),
    /// The password file holds nothing.
    #[error("the password file is empty; write the broker password on its one line")]
    EmptyPassword,
    /// The password file holds more than one line.
    #[error("the password file has more than one line; write only the broker password, on one line")]
    MultiLinePassword,
}

impl Credentials {
    /// A login for `username` with the content of its password file: the password is the file's
    /// one line, without its line break.
    pub fn try_new(username: &str, password_file_text: &str) -> Result<Self, InvalidCredentials> {
        if username.is_empty() {
            return Err(InvalidCredentials::EmptyUsername);
        }
        if username.chars().any(|c| matches!(c, '/' | '+' | '#') || c.is_control()) {
            return Err(InvalidCredentials::BadUsername(username.into()));
        }
        let password = password_file_text.strip_suffix('\n').unwrap_or(password_file_text);
        let password = password.strip_suffix('\r').unwrap_or(password);
        if password.is_empty() {
            return Err(InvalidCredentials::EmptyPassword);
        }
        if password.contains(['\n', '\r']) {
            return Err(InvalidCredentials::MultiLinePassword);
        }
        Ok(Self { username: username.into(), password: password.into() })
    }

    /// The username.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password, for the MQTT CONNECT packet only.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<hidden>").finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_defaults() {
        let u: BrokerUrl = "mqtt://127.0.0.1:1883".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 1883));
        let u: BrokerUrl = "mqtt://broker.local".parse().unwrap();
        assert_eq!(u.port, DEFAULT_PORT);
        let u: BrokerUrl = "mqtt://[::1]:1884".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1884));
        assert_eq!(u.to_string(), "mqtt://[::1]:1884");
        assert!(!u.tls);
    }

    #[test]
    fn mqtts_is_tls_on_8883_unless_told() {
        let u: BrokerUrl = "mqtts://broker.example".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("broker.example", DEFAULT_TLS_PORT, true));
        assert_eq!(u.to_string(), "mqtts://broker.example:8883");
        let u: BrokerUrl = "mqtts://[::1]:18883".parse().unwrap();
        assert_eq!((u.port, u.tls), (18883, true));
        assert_eq!(u.to_string(), "mqtts://[::1]:18883");
        assert_eq!(BrokerUrl::tcp("h", 1).with_tls(), "mqtts://h:1".parse().unwrap());
    }

    #[test]
    fn refuses_what_it_cannot_connect_to() {
        for (bad, why) in [
            ("tcp://x:1", "mqtt:// or mqtts://"),
            ("ssl://x:1", "mqtts://HOST:PORT"),
            ("mqtt://:1883", "no host"),
            ("mqtt://x:0", "port"),
            ("mqtt://x:99999", "port"),
            ("mqtt://x:1/topic", "path"),
            ("mqtt://::1", "IPv6 address without brackets"),
        ] {
            let err = bad.parse::<BrokerUrl>().unwrap_err();
            assert!(err.to_string().contains(why), "{err}");
            assert!(err.to_string().contains(bad));
        }
    }

    #[test]
    fn a_login_takes_the_password_file_line_without_its_break() {
        for text in ["s3cret", "s3cret\n", "s3cret\r\n"] {
            let login = Credentials::try_new("kitchen-7f3a", text).unwrap();
            assert_eq!((login.username(), login.password()), ("kitchen-7f3a", "s3cret"));
        }
        let shown = alloc::format!("{:?}", Credentials::try_new("op", "s3cret").unwrap());
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn a_login_without_a_name_or_password_is_refused() {
        use InvalidCredentials::*;
        assert_eq!(Credentials::try_new("", "pw"), Err(EmptyUsername));
        assert_eq!(Credentials::try_new("a/b", "pw"), Err(BadUsername("a/b".into())));
        assert_eq!(Credentials::try_new("a+", "pw"), Err(BadUsername("a+".into())));
        assert_eq!(Credentials::try_new("a", ""), Err(EmptyPassword));
        assert_eq!(Credentials::try_new("a", "\n"), Err(EmptyPassword));
        assert_eq!(Credentials::try_new("a", "pw\nmore\n"), Err(MultiLinePassword));
    }
}
