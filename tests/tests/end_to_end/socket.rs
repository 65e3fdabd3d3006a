//! The local API on a Unix socket: the same routes and the same guard as on loopback TCP.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;

use super::*;

/// One HTTP/1.1 request over the socket: the status and the body.
fn request(socket: &std::path::Path, method: &str, path: &str, host: &str, body: Option<&str>) -> (u16, String) {
    let mut stream = UnixStream::connect(socket).unwrap();
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_api_answers_on_a_unix_socket_behind_the_same_guard() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let (key, fleet) = (operator_key(1), fleet());
    let path = socket.clone();
    let agent = TestAgent::start_with(DeviceKind::Fridge, &fleet, &key, &broker(), move |raw| {
        raw.api = Some(format!("unix:{}", path.display()));
        raw.api_socket_mode = Some("0660".into());
    })
    .await;
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o660);
    let socket_for = socket.clone();
    let answers = tokio::task::spawn_blocking(move || {
        [
            request(&socket_for, "GET", "/v1/consent", "localhost", None),
            request(&socket_for, "GET", "/v1/consent", "evil.example", None),
            request(
                &socket_for,
                "PUT",
                "/v1/consent/measure",
                "localhost",
                Some(r#"{"granted": true, "text_version": "1"}"#),
            ),
        ]
    })
    .await
    .unwrap();
    assert_eq!(answers[0].0, 200, "{:?}", answers[0]);
    assert!(answers[0].1.contains("\"personalise\""), "{:?}", answers[0]);
    assert_eq!(answers[1].0, 403, "the Host check holds on the socket too: {:?}", answers[1]);
    assert_eq!(answers[2].0, 200, "{:?}", answers[2]);
    assert!(agent.handle().consent().await.unwrap().allows(ledtrad_protocol::Purpose::Measure));
    agent.shutdown().await;
    assert!(!socket.exists(), "the agent removes its socket when it stops");
}
