//! WebSocket connections for handlers outside Rust. axum's
//! `WebSocketUpgrade` (tokio-tungstenite) does the handshake, framing,
//! ping/pong and the message size limit; this module joins an upgraded
//! socket to its handler through the request's stream
//! ([`crate::stream`]): the handler accepts with `sufast_respond_head`,
//! sends each message as one chunk and closes with one, and reads the
//! client's messages as frames with `sufast_stream_read`.
//!
//! # Frames, both ways
//! ```text
//! u8 kind, then its payload:
//!   1 text     the message, UTF-8
//!   2 binary   the message
//!   8 close    u16 close code (little-endian), then the reason, UTF-8
//! ```
//! A client's close (or a broken connection, 1006; an oversize message,
//! 1009; a server stop, 1001) is the last frame the handler reads. A
//! stream the handler ends without a close frame closes with 1000, or
//! with 1011 when it ends as failed (the handler raised).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use http_body_util::BodyExt;
use once_cell::sync::Lazy;
use tokio::sync::watch;

use crate::stream::StreamBody;

/// Frame kinds, as documented above.
pub(crate) const TEXT: u8 = 1;
pub(crate) const BINARY: u8 = 2;
pub(crate) const CLOSE: u8 = 8;

/// How long a socket waits for the client's answer to its close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Raised to close every open socket (a stop).
static CLOSING: Lazy<watch::Sender<u64>> = Lazy::new(|| watch::channel(0).0);
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// Tells every open socket to close with 1001 (the server stops).
pub fn close_all() {
    CLOSING.send_modify(|generation| *generation += 1);
}

/// How many sockets are open.
pub fn open() -> usize {
    OPEN.load(Ordering::Acquire)
}

fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut frame = Vec::with_capacity(3 + reason.len());
    frame.push(CLOSE);
    frame.extend_from_slice(&code.to_le_bytes());
    frame.extend_from_slice(reason.as_bytes());
    Bytes::from(frame)
}

fn frame(kind: u8, payload: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(1 + payload.len());
    frame.push(kind);
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

/// A chunk the handler sent, as a message; `None` if it is malformed.
fn message(chunk: Bytes) -> Option<Message> {
    let kind = *chunk.first()?;
    let payload = chunk.slice(1..);
    match kind {
        TEXT => Utf8Bytes::try_from(payload).ok().map(Message::Text),
        BINARY => Some(Message::Binary(payload)),
        CLOSE if payload.len() >= 2 => {
            let code = u16::from_le_bytes([payload[0], payload[1]]);
            let reason = Utf8Bytes::try_from(payload.slice(2..)).ok()?;
            Some(Message::Close(Some(CloseFrame { code, reason })))
        }
        _ => None,
    }
}

/// Serves one upgraded socket until it closes: the client's messages go
/// to the handler as frames, the handler's chunks to the client.
pub async fn run(mut socket: WebSocket, mut body: StreamBody) {
    OPEN.fetch_add(1, Ordering::AcqRel);
    body.keep_until_end();
    let inbound = body.inbound();
    let mut closing_rx = CLOSING.subscribe();
    closing_rx.mark_unchanged();
    // When a close frame went out: the client's answer ends the socket.
    let mut closed_at: Option<tokio::time::Instant> = None;
    let mut full = false;
    loop {
        let close_wait = async {
            match closed_at {
                Some(at) => tokio::time::sleep_until(at + CLOSE_WAIT).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = socket.recv(), if !full => match received {
                None => {
                    if closed_at.is_none() {
                        inbound.push(close_frame(1006, ""));
                    }
                    break;
                }
                Some(Err(why)) => {
                    let text = why.to_string();
                    let code = if text.contains("too long") || text.contains("Space limit") {
                        1009
                    } else {
                        1002
                    };
                    inbound.push(close_frame(code, ""));
                    if closed_at.is_none() {
                        let _ = socket
                            .send(Message::Close(Some(CloseFrame {
                                code,
                                reason: Utf8Bytes::from_static(""),
                            })))
                            .await;
                    }
                    break;
                }
                Some(Ok(Message::Text(text))) => {
                    full = inbound.push(frame(TEXT, text.as_bytes()));
                }
                Some(Ok(Message::Binary(data))) => {
                    full = inbound.push(frame(BINARY, &data));
                }
                Some(Ok(Message::Close(close))) => {
                    if closed_at.is_none() {
                        let (code, reason) = match &close {
                            Some(close) => (close.code, close.reason.as_str()),
                            None => (1005, ""),
                        };
                        inbound.push(close_frame(code, reason));
                    }
                    // tungstenite answers the close; the socket then ends.
                }
                // tungstenite answers pings itself.
                Some(Ok(_)) => {}
            },
            () = inbound.room(), if full => full = false,
            sent = body.frame(), if closed_at.is_none() => {
                let outgoing = match sent {
                    Some(Ok(chunk)) => match chunk.into_data().ok().and_then(message) {
                        Some(message) => message,
                        None => Message::Close(Some(CloseFrame {
                            code: 1011,
                            reason: Utf8Bytes::from_static("malformed message from the handler"),
                        })),
                    },
                    // Ended without a close frame: a normal close.
                    None => Message::Close(Some(CloseFrame {
                        code: 1000,
                        reason: Utf8Bytes::from_static(""),
                    })),
                    // The handler failed, or the client stalled past send_timeout.
                    Some(Err(_)) => Message::Close(Some(CloseFrame {
                        code: 1011,
                        reason: Utf8Bytes::from_static(""),
                    })),
                };
                let closing = matches!(outgoing, Message::Close(_));
                if socket.send(outgoing).await.is_err() {
                    if closed_at.is_none() {
                        inbound.push(close_frame(1006, ""));
                    }
                    break;
                }
                if closing {
                    closed_at = Some(tokio::time::Instant::now());
                }
            },
            changed = closing_rx.changed(), if closed_at.is_none() => {
                if changed.is_err() {
                    continue;
                }
                inbound.push(close_frame(1001, "the server is stopping"));
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: 1001,
                        reason: Utf8Bytes::from_static("the server is stopping"),
                    })))
                    .await;
                closed_at = Some(tokio::time::Instant::now());
            },
            () = close_wait => break,
        }
    }
    inbound.end();
    drop(body);
    OPEN.fetch_sub(1, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_become_messages_and_malformed_ones_none() {
        assert_eq!(
            message(Bytes::from_static(b"\x01hi")),
            Some(Message::Text(Utf8Bytes::from_static("hi")))
        );
        assert_eq!(
            message(Bytes::from_static(b"\x02\x00\xff")),
            Some(Message::Binary(Bytes::from_static(b"\x00\xff")))
        );
        assert_eq!(
            message(close_frame(4000, "bye")),
            Some(Message::Close(Some(CloseFrame {
                code: 4000,
                reason: Utf8Bytes::from_static("bye")
            })))
        );
        assert_eq!(message(Bytes::from_static(b"\x01\xff")), None);
        assert_eq!(message(Bytes::from_static(b"\x08\x01")), None);
        assert_eq!(message(Bytes::new()), None);
    }
}
