//! The cached tier's store: per route, the last response of each path and
//! query, kept for a TTL. When one expires, the first request starts one
//! render and everyone keeps getting the stale copy until it lands, as
//! long as the copy is younger than the stale limit (2 x TTL unless the
//! route says otherwise); older copies are not served, their requests wait
//! for the render like those of a key never rendered. With compression,
//! a response is kept with its gzip body, made once per render.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::compression::Gzipped;
use crate::routes::StaticResponse;

/// Where the response of a render in flight will appear.
pub type Rendered = watch::Receiver<Option<Arc<Kept>>>;

/// A rendered response as kept.
#[derive(Debug)]
pub struct Kept {
    pub response: StaticResponse,
    /// Its gzip body, when the app compresses (see
    /// [`crate::compression::Compression::ahead`]).
    pub gzip: Gzipped,
}

/// The responses of one cached route.
#[derive(Debug)]
pub struct Cache {
    ttl: Duration,
    /// How old a copy may be and still be served while it is re-rendered.
    stale: Duration,
    max_entries: usize,
    slots: Mutex<HashMap<String, Slot>>,
}

#[derive(Debug, Default)]
struct Slot {
    stored: Option<(Arc<Kept>, Instant)>,
    render: Option<Rendered>,
}

impl Slot {
    /// A render is in flight and its task still lives.
    fn rendering(&self) -> Option<&Rendered> {
        self.render.as_ref().filter(|r| r.has_changed().is_ok())
    }
}

/// What to do for one request.
pub enum Plan {
    /// A stored response: fresh, or stale while a render is in flight.
    Serve(Arc<Kept>),
    /// Nothing stored yet, a render is in flight: wait for it.
    Wait(Rendered),
    /// Start the render and publish it through `done`; send `stale`
    /// meanwhile, or wait for the render when there is none.
    Render {
        done: watch::Sender<Option<Arc<Kept>>>,
        stale: Option<Arc<Kept>>,
    },
    /// Every slot has a render in flight: ask the handler without caching.
    Bypass,
}

impl Cache {
    pub fn new(ttl: Duration, stale: Duration, max_entries: usize) -> Self {
        Cache {
            ttl,
            stale: stale.max(ttl),
            max_entries,
            slots: Mutex::default(),
        }
    }

    /// Whether a cache made with these settings would be this one's twin,
    /// so that a new route table may keep this one's responses.
    pub fn same_settings(&self, other: &Cache) -> bool {
        (self.ttl, self.stale, self.max_entries) == (other.ttl, other.stale, other.max_entries)
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides how to answer a request for `key` (its path and query).
    pub fn plan(&self, key: &str, now: Instant) -> Plan {
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(key) {
            let stale = match &slot.stored {
                Some((response, at)) if now.duration_since(*at) < self.ttl => {
                    return Plan::Serve(response.clone())
                }
                Some((response, at)) if now.duration_since(*at) < self.stale => {
                    Some(response.clone())
                }
                _ => None,
            };
            if let Some(render) = slot.rendering() {
                return stale.map_or_else(|| Plan::Wait(render.clone()), Plan::Serve);
            }
            let (done, render) = watch::channel(None);
            slot.render = Some(render);
            return Plan::Render { done, stale };
        }
        if slots.len() >= self.max_entries && !evict_oldest(&mut slots) {
            return Plan::Bypass;
        }
        let (done, render) = watch::channel(None);
        slots.insert(
            key.to_owned(),
            Slot {
                stored: None,
                render: Some(render),
            },
        );
        Plan::Render { done, stale: None }
    }

    /// Stores the response of a finished render, unless it is a server
    /// error: those are sent but not kept, so the next request tries again.
    pub fn finish(&self, key: &str, response: &Arc<Kept>, now: Instant) {
        let mut slots = self.slots();
        let Some(slot) = slots.get_mut(key) else {
            return;
        };
        slot.render = None;
        if !response.response.status.is_server_error() {
            slot.stored = Some((response.clone(), now));
        } else if slot.stored.is_none() {
            slots.remove(key);
        }
    }

    /// Forgets every stored response (a stopped server's are not served by
    /// the next start).
    pub fn clear(&self) {
        self.slots().clear();
    }

    /// The number of keys held, rendered or in flight.
    pub fn len(&self) -> usize {
        self.slots().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops the oldest stored response that has no render in flight; false
/// if every slot is busy rendering.
fn evict_oldest(slots: &mut HashMap<String, Slot>) -> bool {
    let oldest = slots
        .iter()
        .filter(|(_, slot)| slot.rendering().is_none())
        .min_by_key(|(_, slot)| slot.stored.as_ref().map(|(_, at)| *at))
        .map(|(key, _)| key.clone());
    oldest.is_some_and(|key| slots.remove(&key).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, StatusCode};

    fn response(status: u16, body: &'static str) -> Arc<Kept> {
        Arc::new(Kept {
            response: StaticResponse {
                status: StatusCode::from_u16(status).unwrap(),
                headers: HeaderMap::new(),
                body: body.into(),
            },
            gzip: Gzipped::NotYet,
        })
    }

    fn render(cache: &Cache, key: &str, now: Instant, body: &'static str) {
        match cache.plan(key, now) {
            Plan::Render { done, .. } => {
                let r = response(200, body);
                cache.finish(key, &r, now);
                done.send(Some(r)).unwrap_or(());
            }
            _ => panic!("expected a render of {key}"),
        }
    }

    fn served(plan: Plan) -> &'static str {
        match plan {
            Plan::Serve(r) => std::str::from_utf8(&r.response.body)
                .unwrap()
                .to_owned()
                .leak(),
            Plan::Wait(_) => "wait",
            Plan::Render { .. } => "render",
            Plan::Bypass => "bypass",
        }
    }

    #[test]
    fn one_render_per_expiry_and_stale_meanwhile() {
        let t0 = Instant::now();
        let cache = Cache::new(Duration::from_secs(5), Duration::from_secs(10), 8);
        let first = cache.plan("/s", t0);
        assert!(matches!(first, Plan::Render { stale: None, .. }));
        // Others wait for the render in flight instead of starting theirs.
        assert_eq!(served(cache.plan("/s", t0)), "wait");
        if let Plan::Render { done, .. } = first {
            let r = response(200, "v1");
            cache.finish("/s", &r, t0);
            done.send(Some(r)).unwrap_or(());
        }
        assert_eq!(served(cache.plan("/s", t0 + Duration::from_secs(4))), "v1");
        let later = t0 + Duration::from_secs(6);
        let refresh = cache.plan("/s", later);
        assert!(matches!(&refresh, Plan::Render { stale: Some(_), .. }));
        assert_eq!(served(cache.plan("/s", later)), "v1");
        drop(refresh);
        // A render whose task died does not block the next one.
        assert_eq!(served(cache.plan("/s", later)), "render");
    }

    #[test]
    fn a_copy_past_the_stale_limit_is_not_served() {
        let t0 = Instant::now();
        let cache = Cache::new(Duration::from_secs(5), Duration::from_secs(10), 8);
        render(&cache, "/s", t0, "v1");
        // Stale but within the limit: served while the one render runs.
        let within = t0 + Duration::from_secs(9);
        let refresh = cache.plan("/s", within);
        assert!(matches!(&refresh, Plan::Render { stale: Some(_), .. }));
        drop(refresh);
        // Past it: the render is started without a copy to send meanwhile,
        // and the others wait for it.
        let past = t0 + Duration::from_secs(11);
        let refresh = cache.plan("/s", past);
        assert!(matches!(&refresh, Plan::Render { stale: None, .. }));
        assert_eq!(served(cache.plan("/s", past)), "wait");
        drop(refresh);
        // A limit below the TTL means the TTL.
        let tight = Cache::new(Duration::from_secs(5), Duration::from_secs(1), 8);
        render(&tight, "/s", t0, "v1");
        assert_eq!(served(tight.plan("/s", t0 + Duration::from_secs(4))), "v1");
    }

    #[test]
    fn keys_are_bounded_and_the_oldest_goes() {
        let t0 = Instant::now();
        let cache = Cache::new(Duration::from_secs(60), Duration::from_secs(120), 2);
        render(&cache, "/?k=1", t0, "1");
        render(&cache, "/?k=2", t0 + Duration::from_millis(1), "2");
        render(&cache, "/?k=3", t0 + Duration::from_millis(2), "3");
        assert_eq!(cache.len(), 2);
        let now = t0 + Duration::from_millis(3);
        assert_eq!(served(cache.plan("/?k=3", now)), "3");
        assert_eq!(served(cache.plan("/?k=2", now)), "2");
        assert_eq!(served(cache.plan("/?k=1", now)), "render");
    }

    #[test]
    fn busy_slots_are_not_evicted_and_server_errors_not_kept() {
        let t0 = Instant::now();
        let cache = Cache::new(Duration::from_secs(60), Duration::from_secs(120), 1);
        let _busy = cache.plan("/a", t0);
        assert_eq!(served(cache.plan("/b", t0)), "bypass");
        let cache = Cache::new(Duration::from_secs(60), Duration::from_secs(120), 4);
        if let Plan::Render { .. } = cache.plan("/e", t0) {
            cache.finish("/e", &response(500, "boom"), t0);
        }
        assert!(cache.is_empty());
    }
}
