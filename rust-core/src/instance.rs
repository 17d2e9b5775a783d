//! The one `Instance`: everything a running server needs, in the one
//! static of the library. The route table (swapped whole, lock-free for
//! requests), the running listener, the handler queue, the limits and the
//! log settings live here rather than in statics of their own, so that
//! what the process holds is in one place and a handle API can later give
//! each server its own.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicUsize};
use std::sync::Mutex;

use arc_swap::ArcSwap;
use once_cell::sync::Lazy;

use crate::dispatch::Queue;
use crate::limits::LimitSet;
use crate::log::LogSettings;
use crate::routes::RouteTable;
use crate::server::Running;
use crate::stream::Streams;
use crate::tiers::DEFAULT_MAX_BODY;

pub struct Instance {
    /// The live route table: a request loads it once, `set_routes` swaps
    /// in a whole new one, so a request sees the old one or the new one.
    pub routes: ArcSwap<RouteTable>,
    /// The running server, if any; held while starting and stopping so
    /// that those never interleave.
    pub server: Mutex<Option<Running>>,
    /// Its port, or 0: readable without waiting for a start or a stop.
    pub port: AtomicU16,
    /// The process that started it (a fork child inherits the memory, not
    /// the threads).
    pub owner: AtomicU32,
    /// Requests for handlers outside Rust.
    pub queue: Queue,
    /// Streamed replies in flight.
    pub streams: Streams,
    /// The largest request body a handler is given.
    pub max_body: AtomicUsize,
    pub limits: LimitSet,
    pub log: LogSettings,
}

static INSTANCE: Lazy<Instance> = Lazy::new(|| Instance {
    routes: ArcSwap::default(),
    server: Mutex::new(None),
    port: AtomicU16::new(0),
    owner: AtomicU32::new(0),
    queue: Queue::new(),
    streams: Streams::new(),
    max_body: AtomicUsize::new(DEFAULT_MAX_BODY),
    limits: LimitSet::new(),
    log: LogSettings::new(),
});

/// The process's instance.
pub fn instance() -> &'static Instance {
    &INSTANCE
}
