//! The route table: built from validated specs, matched per request by a
//! radix router (`matchit`, the router axum itself uses). Pure: no I/O but
//! a files route's check that its directory exists, when it is parsed.

pub mod app_wide;
pub mod cors;
pub mod forwarded;
mod json;
pub mod pattern;
pub mod spec;

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderValue, Method};

use crate::cache::Cache;
use crate::error::Error;
use crate::files::{Files, Part};
use app_wide::AppWide;
use pattern::Param;
pub use spec::{Action, BodyKind, RouteSpec, StaticResponse};

/// How a matched route is answered.
#[derive(Debug)]
pub enum Serve {
    /// The stored response, and its gzip variant when the app compresses
    /// and the response is worth it (made once, with the table).
    Static(StaticResponse, Option<Box<StaticResponse>>),
    /// By the handler with this id, per request; `body`: how it gets the body.
    Dynamic { handler: u32, body: BodyKind },
    /// A WebSocket connection for the handler with this id.
    WebSocket { handler: u32 },
    /// By the handler, through the route's cache.
    Cached { handler: u32, cache: Arc<Cache> },
    /// From a directory; `part`: which of the route's entries matched.
    Files { files: Arc<Files>, part: Part },
}

/// One route as served: its parameters (for convertor checks) and how it
/// is answered.
#[derive(Debug)]
pub struct Route {
    pub params: Vec<Param>,
    pub serve: Serve,
}

impl Route {
    fn new(params: Vec<Param>, action: Action) -> Self {
        let serve = match action {
            Action::Static(response) => Serve::Static(response, None),
            Action::Dynamic { handler, body } => Serve::Dynamic { handler, body },
            Action::WebSocket { handler } => Serve::WebSocket { handler },
            Action::Cached {
                handler,
                ttl,
                stale,
                max_entries,
            } => Serve::Cached {
                handler,
                cache: Arc::new(Cache::new(ttl, stale, max_entries)),
            },
            Action::Files { directory, html } => Serve::Files {
                files: Arc::new(Files::new(directory, html)),
                part: Part::Inside,
            },
        };
        Route { params, serve }
    }
}

/// All routes that share one router key, by method.
#[derive(Debug, Default)]
struct PathEntry {
    routes: Vec<(Method, Route)>,
}

/// What a request resolves to.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// The route, with the percent-decoded parameter values when the route
    /// has a handler to give them to (static routes get none); a files
    /// route gets its value as matched, `%2F` and `%25` still escaped, to
    /// refuse an escaped slash.
    Found(&'a Route, Vec<String>),
    NotFound,
    /// The path exists under other methods; the value is the `Allow` header.
    MethodNotAllowed(HeaderValue),
    /// The path does not percent-decode to UTF-8.
    BadPath,
}

/// An immutable route table; a new one replaces it as a whole.
#[derive(Debug, Default)]
pub struct RouteTable {
    router: matchit::Router<usize>,
    entries: Vec<PathEntry>,
    /// Each entry's index by its router key, to find a route again in the
    /// next table (`keep_caches`).
    by_key: HashMap<String, usize>,
    len: usize,
    /// Shared so that a request answered by a handler keeps the section of
    /// the table it started with, whatever is swapped in meanwhile.
    app: Arc<AppWide>,
}

impl RouteTable {
    /// Parses, validates and builds a table from route-table JSON.
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        let spec::TableSpec { routes, app } = spec::parse_table(json)?;
        let mut table = Self::build(routes)?;
        table.set_app_wide(app);
        Ok(table)
    }

    /// Sets the app-wide section. What it adds to every response goes into
    /// each stored response now, once, so that serving one costs nothing
    /// more; with compression, the gzip variant is made now too.
    fn set_app_wide(&mut self, app: AppWide) {
        for entry in &mut self.entries {
            for (_, route) in &mut entry.routes {
                if let Serve::Static(response, gzip) = &mut route.serve {
                    app.prepare(&mut response.headers);
                    if let Some(compression) = app.compression() {
                        *gzip = compression.variant(response);
                    }
                }
            }
        }
        self.app = Arc::new(app);
    }

    /// The app-wide section, for what depends on the request.
    pub fn app_wide(&self) -> &Arc<AppWide> {
        &self.app
    }

    /// Builds a table, rejecting duplicate and conflicting routes.
    pub fn build(specs: Vec<RouteSpec>) -> Result<Self, Error> {
        let mut table = RouteTable::default();
        // router key -> (entry index, the pattern that created it)
        let mut by_key: HashMap<String, (usize, String)> = HashMap::new();
        // html files routes, which also answer their directory's own path.
        let mut roots = Vec::new();
        for spec in specs {
            let name = spec.name();
            let index = match by_key.get(&spec.pattern.router_key) {
                Some((index, first)) => {
                    let entry = &table.entries[*index];
                    if entry.routes.iter().any(|(m, _)| *m == spec.method) {
                        return Err(Error::routes(if *first == spec.pattern.source {
                            format!("duplicate route {name}")
                        } else {
                            format!("route {name} duplicates {} {first}", spec.method)
                        }));
                    }
                    *index
                }
                None => {
                    let index = table.entries.len();
                    table
                        .router
                        .insert(spec.pattern.router_key.clone(), index)
                        .map_err(|e| conflict(&name, e, &by_key))?;
                    table.entries.push(PathEntry::default());
                    by_key.insert(
                        spec.pattern.router_key.clone(),
                        (index, spec.pattern.source.clone()),
                    );
                    index
                }
            };
            let route = Route::new(spec.pattern.params, spec.action);
            if let Serve::Files { files, .. } = &route.serve {
                if files.html() {
                    roots.push((spec.pattern.router_key.clone(), Arc::clone(files), name));
                }
            }
            table.entries[index].routes.push((spec.method, route));
            table.len += 1;
        }
        for (key, files, name) in roots {
            table.add_root(&mut by_key, &key, files, &name)?;
        }
        table.by_key = by_key
            .into_iter()
            .map(|(key, (index, _))| (key, index))
            .collect();
        Ok(table)
    }

    /// An html files route at `/static/{*p0}` (its router key) also
    /// answers GET `/static/` (the directory) and `/static` (a redirect to
    /// it), unless other GET routes have those paths.
    fn add_root(
        &mut self,
        by_key: &mut HashMap<String, (usize, String)>,
        key: &str,
        files: Arc<Files>,
        name: &str,
    ) -> Result<(), Error> {
        let root = key.rfind('/').map_or("/", |slash| &key[..=slash]);
        let bare = root.trim_end_matches('/');
        let parts = [(root, Part::Root), (bare, Part::Bare)];
        for (path, part) in parts.into_iter().filter(|(path, _)| !path.is_empty()) {
            let index = match by_key.get(path) {
                Some((index, _)) => *index,
                None => {
                    let index = self.entries.len();
                    self.router
                        .insert(path, index)
                        .map_err(|e| conflict(name, e, by_key))?;
                    self.entries.push(PathEntry::default());
                    by_key.insert(path.to_owned(), (index, path.to_owned()));
                    index
                }
            };
            let routes = &mut self.entries[index].routes;
            if routes.iter().all(|(method, _)| *method != Method::GET) {
                let files = Arc::clone(&files);
                let serve = Serve::Files { files, part };
                routes.push((
                    Method::GET,
                    Route {
                        params: Vec::new(),
                        serve,
                    },
                ));
            }
        }
        Ok(())
    }

    /// Forgets every cached route's stored responses.
    pub fn clear_caches(&self) {
        for entry in &self.entries {
            for (_, route) in &entry.routes {
                if let Serve::Cached { cache, .. } = &route.serve {
                    cache.clear();
                }
            }
        }
    }

    /// Takes over the caches of `old`'s cached routes that this table has
    /// too, with the same handler and cache settings: swapping in a table
    /// that adds or changes other routes keeps their stored responses.
    pub fn keep_caches(&mut self, old: &RouteTable) {
        for (key, &index) in &self.by_key {
            let Some(&old_index) = old.by_key.get(key) else {
                continue;
            };
            for (method, route) in &mut self.entries[index].routes {
                let Serve::Cached { handler, cache } = &mut route.serve else {
                    continue;
                };
                let kept = old.entries[old_index]
                    .routes
                    .iter()
                    .find_map(|(m, r)| match &r.serve {
                        Serve::Cached {
                            handler: h,
                            cache: c,
                        } if m == method && h == handler && c.same_settings(cache) => Some(c),
                        _ => None,
                    });
                if let Some(kept) = kept {
                    *cache = Arc::clone(kept);
                }
            }
        }
    }

    /// The number of routes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Resolves a request. `path` is the raw (still percent-encoded) path.
    /// HEAD falls back to the GET route of the same path.
    pub fn lookup<'a>(&'a self, method: &Method, path: &str) -> Lookup<'a> {
        let Some(path) = pattern::canonical_path(path) else {
            return Lookup::BadPath;
        };
        let Ok(matched) = self.router.at(&path) else {
            return Lookup::NotFound;
        };
        let entry = &self.entries[*matched.value];
        let accepts = |route: &Route| {
            route.params.is_empty()
                || matched
                    .params
                    .iter()
                    .zip(&route.params)
                    .all(|((_, raw), p)| p.convertor.accepts(&pattern::decode_param(raw)))
        };
        let find = |wanted: &Method| {
            entry
                .routes
                .iter()
                .find(|(m, r)| m == wanted && accepts(r))
                .map(|(_, r)| r)
        };
        let found = |route: &'a Route| {
            let values = match route.serve {
                Serve::Static(..) => Vec::new(),
                Serve::Files { .. } => matched
                    .params
                    .iter()
                    .map(|(_, raw)| (*raw).to_owned())
                    .collect(),
                _ => matched
                    .params
                    .iter()
                    .map(|(_, raw)| pattern::decode_param(raw).into_owned())
                    .collect(),
            };
            Lookup::Found(route, values)
        };
        if let Some(route) = find(method) {
            return found(route);
        }
        if *method == Method::HEAD {
            if let Some(route) = find(&Method::GET) {
                return found(route);
            }
        }
        let allowed: Vec<&Method> = spec::METHODS
            .iter()
            .filter(|m| find(m).is_some() || (**m == Method::HEAD && find(&Method::GET).is_some()))
            .collect();
        if allowed.is_empty() {
            return Lookup::NotFound;
        }
        let allow = allowed
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        match HeaderValue::from_str(&allow) {
            Ok(value) => Lookup::MethodNotAllowed(value),
            Err(_) => Lookup::NotFound,
        }
    }
}

fn conflict(
    name: &str,
    err: matchit::InsertError,
    by_key: &HashMap<String, (usize, String)>,
) -> Error {
    match err {
        matchit::InsertError::Conflict { with } => {
            let other = by_key.get(&with).map_or(with.as_str(), |(_, src)| src);
            Error::routes(format!(
                "route {name} conflicts with route path {other}; both could match the same request"
            ))
        }
        other => Error::routes(format!("route {name}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(json: &str) -> RouteTable {
        RouteTable::from_json(json.as_bytes()).unwrap()
    }

    fn body(t: &RouteTable, method: Method, path: &str) -> String {
        match t.lookup(&method, path) {
            Lookup::Found(
                Route {
                    serve: Serve::Static(r, _),
                    ..
                },
                _,
            ) => String::from_utf8(r.body.to_vec()).unwrap(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn exact_beats_parameter_beats_catch_all() {
        let t = table(
            r#"{"GET": {"/users/{id}": "param", "/users/me": "exact",
                        "/files/{rest:path}": "catch", "/files/readme": "file"}}"#,
        );
        assert_eq!(body(&t, Method::GET, "/users/me"), "exact");
        assert_eq!(body(&t, Method::GET, "/users/42"), "param");
        assert_eq!(body(&t, Method::GET, "/files/readme"), "file");
        assert_eq!(body(&t, Method::GET, "/files/a/b/c"), "catch");
        assert!(matches!(
            t.lookup(&Method::GET, "/users/"),
            Lookup::NotFound
        ));
        assert!(matches!(
            t.lookup(&Method::GET, "/users/1/x"),
            Lookup::NotFound
        ));
    }

    #[test]
    fn matching_sees_percent_decoded_segments() {
        let t = table(r#"{"GET": {"/café": "cafe", "/n/{id:int}": "n", "/s/{x}": "s"}}"#);
        assert_eq!(body(&t, Method::GET, "/caf%C3%A9"), "cafe");
        assert_eq!(body(&t, Method::GET, "/n/%34%32"), "n");
        // An escaped slash stays inside one segment.
        assert_eq!(body(&t, Method::GET, "/s/a%2Fb"), "s");
        assert!(matches!(t.lookup(&Method::GET, "/s/%FF"), Lookup::BadPath));
    }

    #[test]
    fn convertor_mismatch_is_not_found() {
        let t = table(r#"{"GET": {"/n/{id:int}": "n"}, "DELETE": {"/n/{id}": "d"}}"#);
        assert_eq!(body(&t, Method::GET, "/n/7"), "n");
        match t.lookup(&Method::GET, "/n/x") {
            Lookup::MethodNotAllowed(allow) => assert_eq!(allow, "DELETE"),
            other => panic!("{other:?}"),
        }
        let t = table(r#"{"GET": {"/n/{id:int}": "n"}}"#);
        assert!(matches!(t.lookup(&Method::GET, "/n/x"), Lookup::NotFound));
    }

    #[test]
    fn other_methods_get_405_with_allow_and_head_uses_get() {
        let t = table(r#"{"GET": {"/a": "g"}, "POST": {"/a": "p"}, "PUT": {"/b": "u"}}"#);
        assert_eq!(body(&t, Method::HEAD, "/a"), "g");
        match t.lookup(&Method::DELETE, "/a") {
            Lookup::MethodNotAllowed(allow) => assert_eq!(allow, "GET, HEAD, POST"),
            other => panic!("{other:?}"),
        }
        match t.lookup(&Method::HEAD, "/b") {
            Lookup::MethodNotAllowed(allow) => assert_eq!(allow, "PUT"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(t.lookup(&Method::GET, "/c"), Lookup::NotFound));
    }

    #[test]
    fn handler_routes_get_their_decoded_parameter_values() {
        let t = table(
            r#"{"GET": {"/u/{id:int}/{rest:path}": {"kind": "dynamic", "handler": 4},
                        "/s/{x}": "static"}}"#,
        );
        match t.lookup(&Method::GET, "/u/42/a%20b/c") {
            Lookup::Found(route, values) => {
                assert!(matches!(route.serve, Serve::Dynamic { handler: 4, .. }));
                assert_eq!(values, ["42", "a b/c"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(t.lookup(&Method::GET, "/s/1"), Lookup::Found(_, v) if v.is_empty()));
    }

    fn files_table(routes: &str) -> (tempfile::TempDir, RouteTable) {
        let dir = tempfile::tempdir().unwrap();
        let json = routes.replace("DIR", dir.path().to_str().unwrap());
        (dir, table(&json))
    }

    fn files_part(t: &RouteTable, method: Method, path: &str) -> Option<(Part, Vec<String>)> {
        match t.lookup(&method, path) {
            Lookup::Found(
                Route {
                    serve: Serve::Files { part, .. },
                    ..
                },
                values,
            ) => Some((*part, values)),
            _ => None,
        }
    }

    #[test]
    fn files_routes_get_raw_values_and_html_ones_their_directory_too() {
        let (_dir, t) = files_table(
            r#"{"GET": {"/static/{path:path}": {"kind": "files", "directory": "DIR", "html": true},
                        "/plain/{path:path}": {"kind": "files", "directory": "DIR"},
                        "/static/api": "api"}}"#,
        );
        assert_eq!(t.len(), 3);
        let (part, values) = files_part(&t, Method::GET, "/static/a%2fb/%2e%2e").unwrap();
        assert_eq!(part, Part::Inside);
        assert_eq!(values, ["a%2Fb/.."]);
        assert_eq!(
            files_part(&t, Method::HEAD, "/static/"),
            Some((Part::Root, vec![]))
        );
        assert_eq!(
            files_part(&t, Method::GET, "/static"),
            Some((Part::Bare, vec![]))
        );
        // Exact routes still win; a files route takes GET and HEAD only.
        assert_eq!(body(&t, Method::GET, "/static/api"), "api");
        match t.lookup(&Method::POST, "/static/x") {
            Lookup::MethodNotAllowed(allow) => assert_eq!(allow, "GET, HEAD"),
            other => panic!("{other:?}"),
        }
        // Without html, the directory's own paths are not routes.
        assert!(files_part(&t, Method::GET, "/plain/x").is_some());
        assert!(matches!(
            t.lookup(&Method::GET, "/plain/"),
            Lookup::NotFound
        ));
        assert!(matches!(t.lookup(&Method::GET, "/plain"), Lookup::NotFound));
    }

    #[test]
    fn a_route_of_its_own_at_an_html_directory_path_wins() {
        let (_dir, t) = files_table(
            r#"{"GET": {"/s/{path:path}": {"kind": "files", "directory": "DIR", "html": true},
                        "/s/": "own"},
                "POST": {"/s": "posted"}}"#,
        );
        assert_eq!(body(&t, Method::GET, "/s/"), "own");
        assert_eq!(
            files_part(&t, Method::GET, "/s"),
            Some((Part::Bare, vec![]))
        );
        assert_eq!(body(&t, Method::POST, "/s"), "posted");
        // At the root, the directory is "/" itself.
        let (_dir, t) = files_table(
            r#"{"GET": {"/{path:path}": {"kind": "files", "directory": "DIR", "html": true}}}"#,
        );
        assert_eq!(files_part(&t, Method::GET, "/"), Some((Part::Root, vec![])));
    }

    #[test]
    fn same_shape_under_other_methods_shares_a_node() {
        let t = table(r#"{"GET": {"/u/{id}": "g"}, "DELETE": {"/u/{uid}": "d"}}"#);
        assert_eq!(body(&t, Method::DELETE, "/u/1"), "d");
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn duplicates_and_conflicts_are_errors_naming_both_routes() {
        let cases = [
            (
                r#"{"GET": {"/a": "1", "/a": "2"}}"#,
                "duplicate route GET /a",
            ),
            (
                r#"{"GET": {"/u/{id}": "1", "/u/{name}": "2"}}"#,
                "route GET /u/{name} duplicates GET /u/{id}",
            ),
            (
                r#"{"GET": {"/u/{id}": "1"}, "POST": {"/u/{rest:path}": "2"}}"#,
                "route POST /u/{rest:path} conflicts with route path /u/{id}",
            ),
        ];
        for (json, needle) in cases {
            let err = RouteTable::from_json(json.as_bytes()).unwrap_err();
            assert!(err.message.contains(needle), "{json}: {}", err.message);
        }
    }
}
