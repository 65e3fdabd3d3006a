//! Where the local API listens: a loopback TCP address, or a Unix socket for a UI that runs as
//! another user (its mode and group from the config). Both serve the same routes behind the
//! same guard.

use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The local API's address, as the config gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiAddress {
    /// A loopback TCP address, e.g. `127.0.0.1:7878`.
    Tcp(SocketAddr),
    /// A Unix socket, e.g. `unix:/run/ledtrad/api.sock`.
    Unix(UnixSocket),
}

/// A Unix socket for the local API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocket {
    /// The socket's path.
    pub path: PathBuf,
    /// Its permission bits (default 0o600: the agent's user only).
    pub mode: u32,
    /// The group that owns it, so a UI running in that group can connect.
    pub group: Option<String>,
}

impl std::fmt::Display for ApiAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(socket) => write!(f, "unix:{}", socket.path.display()),
        }
    }
}

impl ApiAddress {
    /// Reads the `api` setting with `api_socket_mode` and `api_socket_group`; the error names
    /// the field at fault and the fix.
    pub fn parse(text: &str, mode: Option<&str>, group: Option<&str>) -> Result<Self, (&'static str, String)> {
        if let Some(path) = text.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err((
                    "api",
                    format!("{text:?}: the socket's path must be absolute, e.g. \"unix:/run/ledtrad/api.sock\""),
                ));
            }
            let mode = match mode {
                None => 0o600,
                Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|m| *m <= 0o777 && m & 0o600 == 0o600)
                    .ok_or_else(|| {
                        ("api_socket_mode", format!("{m:?} is not an octal mode the agent can use; write e.g. \"0660\" (the agent's user needs read and write)"))
                    })?,
            };
            if let Some(g) = group {
                if g.is_empty() {
                    return Err(("api_socket_group", "is empty; name the UI's group, e.g. \"ledtrad-ui\"".into()));
                }
            }
            return Ok(Self::Unix(UnixSocket { path, mode, group: group.map(String::from) }));
        }
        if mode.is_some() || group.is_some() {
            let field = if mode.is_some() { "api_socket_mode" } else { "api_socket_group" };
            return Err((field, format!("applies to a Unix socket only, and api is {text:?}; write api = \"unix:/run/ledtrad/api.sock\" or remove it")));
        }
        let addr: SocketAddr = text.parse().map_err(|_| {
            (
                "api",
                format!("{text:?} is not an address; write it as \"127.0.0.1:7878\" or \"unix:/run/ledtrad/api.sock\""),
            )
        })?;
        if !addr.ip().is_loopback() {
            return Err((
                "api",
                format!(
                    "{text:?} is not a loopback address; the local API only listens on 127.0.0.1, ::1 or a Unix socket"
                ),
            ));
        }
        Ok(Self::Tcp(addr))
    }
}

/// A Unix socket that could not be set up, naming it and the fix.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Something else answers on the socket.
    #[error("{0}: another program is listening on this socket; stop it or choose another path")]
    InUse(PathBuf),
    /// The path is taken by a file that is not a socket.
    #[error("{0}: exists and is not a socket; remove it or choose another path")]
    NotASocket(PathBuf),
    /// The group is unknown.
    #[error("api_socket_group {0:?} is not a group on this system; create it (groupadd) or name another")]
    UnknownGroup(String),
    /// The socket could not be made, removed or given its mode and group.
    #[error("{path}: {source}{hint}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
        /// What to do.
        hint: &'static str,
    },
}

fn io<'a>(path: &'a Path, hint: &'static str) -> impl FnOnce(std::io::Error) -> SocketError + 'a {
    move |source| SocketError::Io { path: path.into(), source, hint }
}

/// Binds the socket: a stale socket left by an agent that stopped is replaced, anything else
/// at the path is refused; then its mode and group are set.
pub fn bind_unix(socket: &UnixSocket) -> Result<tokio::net::UnixListener, SocketError> {
    let path = &socket.path;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse(path.clone()));
            }
            std::fs::remove_file(path).map_err(io(path, "; remove the stale socket by hand"))?;
        }
        Ok(_) => return Err(SocketError::NotASocket(path.clone())),
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(io(path, "; does its directory exist, and may the agent's user write there?"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(socket.mode))
        .map_err(io(path, "; setting the socket's mode"))?;
    if let Some(name) = &socket.group {
        let group = match nix::unistd::Group::from_name(name) {
            Ok(Some(group)) => group,
            _ => return Err(SocketError::UnknownGroup(name.clone())),
        };
        std::os::unix::fs::chown(path, None, Some(group.gid.as_raw()))
            .map_err(io(path, "; the agent's user must be a member of api_socket_group to give it the socket"))?;
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_with_clear_errors() {
        assert_eq!(ApiAddress::parse("127.0.0.1:7878", None, None).unwrap().to_string(), "127.0.0.1:7878");
        let unix = ApiAddress::parse("unix:/run/ledtrad/api.sock", Some("0660"), Some("ledtrad-ui")).unwrap();
        let ApiAddress::Unix(socket) = &unix else { panic!("{unix:?}") };
        assert_eq!((socket.mode, socket.group.as_deref()), (0o660, Some("ledtrad-ui")));
        assert_eq!(unix.to_string(), "unix:/run/ledtrad/api.sock");
        let cases = [
            (("unix:api.sock", None, None), "api", "must be absolute"),
            (("unix:/a.sock", Some("0066"), None), "api_socket_mode", "\"0066\""),
            (("unix:/a.sock", Some("rw"), None), "api_socket_mode", "octal"),
            (("unix:/a.sock", None, Some("")), "api_socket_group", "is empty"),
            (("127.0.0.1:7878", Some("0660"), None), "api_socket_mode", "Unix socket only"),
            (("0.0.0.0:7878", None, None), "api", "not a loopback"),
            (("localhost", None, None), "api", "unix:/run/ledtrad/api.sock"),
        ];
        for ((text, mode, group), field, needle) in cases {
            let (f, message) = ApiAddress::parse(text, mode, group).unwrap_err();
            assert_eq!(f, field, "{text}");
            assert!(message.contains(needle), "{text}: {message}");
        }
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_live_one_or_a_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let socket = UnixSocket { path: dir.path().join("api.sock"), mode: 0o660, group: None };
        let first = bind_unix(&socket).unwrap();
        let mode = std::fs::metadata(&socket.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        assert!(matches!(bind_unix(&socket), Err(SocketError::InUse(_))));
        drop(first);
        bind_unix(&socket).expect("a stale socket is replaced");
        let file = UnixSocket { path: dir.path().join("file"), ..socket.clone() };
        std::fs::write(&file.path, b"x").unwrap();
        assert!(matches!(bind_unix(&file), Err(SocketError::NotASocket(_))));
        let unknown =
            UnixSocket { path: dir.path().join("g.sock"), group: Some("no-such-group-here".into()), ..socket };
        assert!(matches!(bind_unix(&unknown), Err(SocketError::UnknownGroup(_))));
    }
}
