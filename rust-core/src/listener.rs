//! The listening socket as axum's server sees it: accepts connections, and
//! reports accept errors through the event log instead of dropping them
//! silently. Running out of file descriptors is logged at once and then at
//! most once a second with a count, and accepting pauses briefly so that
//! connections already open can finish and free some.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::{TcpListener, TcpStream};

use crate::log::{self, SufastLogLevel};

/// How long accepting pauses after an error that is not one connection's.
const BACKOFF: Duration = Duration::from_millis(100);
/// At most one accept-error line per this long.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// The TCP peer of a connection, for handlers to read as `ConnectInfo<Peer>`.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, Accept>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Accept>) -> Self {
        Peer(*stream.remote_addr())
    }
}

pub struct Accept {
    inner: TcpListener,
    last_report: Option<Instant>,
    unreported: u64,
}

impl Accept {
    pub fn new(inner: TcpListener) -> Self {
        Accept {
            inner,
            last_report: None,
            unreported: 0,
        }
    }

    async fn failed(&mut self, error: io::Error) {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
        ) {
            // One client gave up before it was accepted; nothing to fix.
            log::event(SufastLogLevel::Trace, format_args!("accept: {error}"));
            return;
        }
        self.unreported += 1;
        let now = Instant::now();
        if self
            .last_report
            .is_none_or(|last| now.duration_since(last) >= REPORT_EVERY)
        {
            let hint = match error.raw_os_error() {
                Some(23 | 24) => "; out of file descriptors: raise `ulimit -n` or lower the load",
                _ => "",
            };
            log::event(
                SufastLogLevel::Error,
                format_args!(
                    "cannot accept connections: {error}{hint} ({} time(s) since the last report)",
                    self.unreported
                ),
            );
            self.last_report = Some(now);
            self.unreported = 0;
        }
        tokio::time::sleep(BACKOFF).await;
    }
}

impl axum::serve::Listener for Accept {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok(accepted) => return accepted,
                Err(error) => self.failed(error).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
