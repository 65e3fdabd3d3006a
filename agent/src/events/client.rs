//! Following a running agent's `GET /v1/events` from a program: the `ledtrad-agent events`
//! command, the tests and the simulator's moment benchmark read the stream with it. It reads
//! the Server-Sent Events format: fields `id`, `event`, `data` (lines joined), comments
//! skipped, one blank line ending each event.

use std::time::Duration;

/// One event as the stream carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// Its id, if it had one (`missed` has none).
    pub id: Option<String>,
    /// Its name (`offer`, `consent`, `catalogue`, `missed`).
    pub event: String,
    /// Its data (JSON).
    pub data: String,
}

/// A failure to follow the events.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The request failed or the stream broke.
    #[error("events at {url}: {cause}; is the agent running with `api` set, and is this its address?")]
    Http {
        /// The stream's address.
        url: String,
        /// The error.
        cause: reqwest::Error,
    },
    /// The agent refused the stream.
    #[error("events at {url}: the agent answered {status}: {body}")]
    Refused {
        /// The stream's address.
        url: String,
        /// The status.
        status: u16,
        /// What it said.
        body: String,
    },
}

/// A stream of events being read.
pub struct EventStream {
    url: String,
    response: reqwest::Response,
    buf: Vec<u8>,
}

impl EventStream {
    /// Follows the events of the agent whose local API is at `api` (e.g.
    /// `http://127.0.0.1:7878`), from after `last_event_id` if given.
    pub async fn connect(api: &str, last_event_id: Option<&str>) -> Result<Self, FollowError> {
        let url = format!("{}/v1/events", api.trim_end_matches('/'));
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|source| FollowError::Http { url: url.clone(), cause: source })?;
        let mut request = client.get(&url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.map_err(|source| FollowError::Http { url: url.clone(), cause: source })?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            return Err(FollowError::Refused { url, status, body });
        }
        Ok(Self { url, response, buf: Vec::new() })
    }

    /// The next event; `None` when the agent closed the stream.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, FollowError> {
        loop {
            while let Some(end) = block_end(&self.buf) {
                let block: Vec<u8> = self.buf.drain(..end.1).collect();
                if let Some(event) = parse(&String::from_utf8_lossy(&block[..end.0])) {
                    return Ok(Some(event));
                }
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                Ok(None) => return Ok(None),
                Err(source) => return Err(FollowError::Http { url: self.url.clone(), cause: source }),
            }
        }
    }

    /// The next event named `name`, skipping others.
    pub async fn next_named(&mut self, name: &str) -> Result<Option<SseEvent>, FollowError> {
        while let Some(event) = self.next().await? {
            if event.event == name {
                return Ok(Some(event));
            }
        }
        Ok(None)
    }
}

/// Where the first event block in `buf` ends: (its text's end, past its blank line).
fn block_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2));
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// One event block; `None` for a block of comments and hints only.
fn parse(block: &str) -> Option<SseEvent> {
    let (mut id, mut event, mut data) = (None, None, Vec::new());
    for line in block.lines() {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
        match field {
            "id" => id = Some(value.to_string()),
            "event" => event = Some(value.to_string()),
            "data" => data.push(value),
            _ => {}
        }
    }
    if event.is_none() && data.is_empty() {
        return None;
    }
    Some(SseEvent { id, event: event.unwrap_or_else(|| "message".into()), data: data.join("\n") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_read_as_the_format_says() {
        assert_eq!(parse(": keep-alive"), None);
        assert_eq!(parse("retry: 2000"), None);
        let e = parse("id: 1-2\nevent: offer\ndata: {\"a\":\ndata: 1}").unwrap();
        assert_eq!(e, SseEvent { id: Some("1-2".into()), event: "offer".into(), data: "{\"a\":\n1}".into() });
        assert_eq!(parse("data:x").unwrap().event, "message");
        assert_eq!(block_end(b"a\n\nb"), Some((1, 3)));
        assert_eq!(block_end(b"a\r\n\r\nb"), Some((1, 5)));
        assert_eq!(block_end(b"a\n"), None);
    }
}
