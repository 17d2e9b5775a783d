//! The files tier: a directory served by Rust, no Python per request.
//!
//! tower-http's `ServeDir` reads the files: Range (206, 416),
//! Last-Modified with If-Modified-Since and If-Unmodified-Since, HEAD,
//! content types from the extension, and precompressed `.gz` and `.br`
//! siblings chosen by `Accept-Encoding`. Before it is asked, the request
//! path must name a place inside the directory once symlinks are resolved
//! (else the server's own 404); this module adds what it lacks: a weak
//! ETag with If-None-Match, If-Range, `index.html` and `404.html` for an
//! `html` directory (as Starlette's `StaticFiles(html=True)`), and the
//! server's JSON 404 for a missing file instead of an empty one. Every
//! file system call runs off tokio's workers (`spawn_blocking`, or
//! `tokio::fs` inside `ServeDir`).
//!
//! A small file (at most [`SMALL_FILE`] bytes) asked for without a range
//! or a date condition (but for an If-Modified-Since that If-None-Match
//! overrides, as browsers send them), with no precompressed sibling the
//! client takes,
//! is read in the same trip to the blocking pool that found it and sent
//! with the headers ServeDir would send: one trip instead of the half
//! dozen ServeDir makes for open, metadata and reads.
//!
//! Such a file is kept too, with the headers it is sent with, in a
//! bounded cache of the mount's ([`CACHE_ENTRIES`], [`CACHE_BYTES`]),
//! when no symlink leads to it and it has not changed for [`SETTLE`].
//! A request the cache answers makes no trip at all: on the worker, one
//! `lstat` of the root, of each directory on the way and of the file
//! itself (a page-cached stat, as nginx makes on its event loop) must
//! find what was found when it was kept, and no precompressed sibling
//! the client takes may have appeared; anything else drops the entry and
//! the request goes the whole way. A file changed, removed or replaced
//! (by a symlink too) is so seen by the next request.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tower_http::services::fs::ServeFileSystemResponseBody;
use tower_http::services::{ServeDir, ServeFile};

use crate::log::{self, SufastLogLevel};
use crate::responses::{json_detail, not_found, owned};
use crate::routes::pattern;
use crate::routes::StaticResponse;

/// The largest file read whole in the trip that finds it.
pub(crate) const SMALL_FILE: u64 = 64 * 1024;

/// The most small files a mount keeps in memory.
pub(crate) const CACHE_ENTRIES: usize = 1024;

/// The most bytes of content a mount keeps in memory.
pub(crate) const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// How long a file must have been left unchanged (its status change
/// time) before it is kept: a write in the same tick of the file
/// system's clock could leave the size and times as they were, one after
/// this long cannot.
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

/// Which of a files route's router entries matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// `/static/{path:path}`: something inside the directory.
    Inside,
    /// `/static/`: the directory itself (`html` routes only).
    Root,
    /// `/static`: redirected to `/static/` (`html` routes only).
    Bare,
}

/// A directory served under a route, made once when the table is built.
#[derive(Debug)]
pub struct Files {
    /// Canonical: every file sent must resolve inside it.
    root: PathBuf,
    html: bool,
    dir: ServeDir,
    cache: Cache,
    /// [`SETTLE`], but in tests.
    settle: Duration,
}

impl Files {
    /// Serves `root`, which must be canonical (absolute, symlinks resolved).
    pub fn new(root: PathBuf, html: bool) -> Self {
        let dir = ServeDir::new(&root)
            .precompressed_gzip()
            .precompressed_br()
            // Directories are resolved here, where the mount's prefix is
            // known: ServeDir's redirect would leave it out.
            .append_index_html_on_directories(false);
        Files {
            root,
            html,
            dir,
            cache: Cache::default(),
            settle: SETTLE,
        }
    }

    pub fn directory(&self) -> &Path {
        &self.root
    }

    /// Keeps files however recently they changed.
    #[cfg(test)]
    fn settled_at_once(mut self) -> Self {
        self.settle = Duration::ZERO;
        self
    }

    /// Whether a directory answers with its `index.html` and a missing
    /// file with the root's `404.html`.
    pub fn html(&self) -> bool {
        self.html
    }
}

/// Answers a GET or HEAD `request` from `files`; `params` are the route's
/// raw parameter values ([`crate::routes::Lookup::Found`]).
pub async fn serve(
    files: Arc<Files>,
    part: Part,
    params: Vec<String>,
    request: Request,
) -> Response {
    let raw = match part {
        Part::Bare => return redirect(&request),
        Part::Root => "",
        Part::Inside => params.first().map_or("", String::as_str),
    };
    let encodings = Encodings::accepted(request.headers());
    // Ranges and date conditions are ServeDir's to answer, but for an
    // If-Modified-Since beside If-None-Match, which is not evaluated
    // (RFC 9110, 13.2.2; see `conditions`).
    let whole = {
        let has = |name| request.headers().contains_key(name);
        !(has(header::RANGE) || has(header::IF_RANGE) || has(header::IF_UNMODIFIED_SINCE))
            && (!has(header::IF_MODIFIED_SINCE) || has(header::IF_NONE_MATCH))
    };
    // Only a path found before is kept: what relative_path refuses never is.
    if whole {
        if let Some(small) = files.cache.fresh(raw, encodings) {
            return small.send(&request);
        }
    }
    let Some(relative) = relative_path(raw) else {
        return owned(not_found());
    };
    let slash = raw.is_empty() || raw.ends_with('/');
    let found = {
        let files = Arc::clone(&files);
        let key = Box::<str>::from(raw);
        tokio::task::spawn_blocking(move || {
            let started = SystemTime::now();
            let found = find(&files, &relative, slash, encodings, whole);
            if let Found::Small(small) = &found {
                if let Some(entry) = Entry::new(&files, small, started) {
                    files.cache.keep(key, entry);
                }
            }
            found
        })
        .await
    };
    match found {
        Ok(Found::Small(small)) => small.send(&request),
        Ok(Found::File(path, meta)) => send(&files, &path, &meta, request).await,
        Ok(Found::Directory) => redirect(&request),
        Ok(Found::Missing { page: true }) => not_found_page(&files, request).await,
        Ok(Found::Missing { page: false } | Found::Refused) => owned(not_found()),
        Ok(Found::Failed(why)) => failed(&request, &why),
        Err(why) => failed(&request, &io::Error::other(why)),
    }
}

/// The path below the root that `raw` names: a matched value, decoded but
/// for `%2F` and `%25` ([`pattern::canonical_path`]). `None` refuses it:
/// an encoded slash, a backslash, a NUL, a `..` segment, a segment that
/// is not a plain name (a drive prefix). `.` and empty segments are
/// skipped.
pub fn relative_path(raw: &str) -> Option<PathBuf> {
    // canonical_path writes every escaped slash as `%2F`.
    if raw.contains("%2F") {
        return None;
    }
    let decoded = pattern::decode_param(raw);
    if decoded.contains(['\\', '\0']) {
        return None;
    }
    let mut path = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return None,
            name => {
                let mut parts = Path::new(name).components();
                match (parts.next(), parts.next()) {
                    (Some(Component::Normal(_)), None) => path.push(name),
                    _ => return None,
                }
            }
        }
    }
    Some(path)
}

/// What a request path resolves to.
#[derive(Debug)]
enum Found {
    /// A file to send: its path below the root and its metadata.
    File(PathBuf, Metadata),
    /// A small file, read already.
    Small(Arc<Small>),
    /// A directory with an `index.html`, asked for without the trailing
    /// slash its relative links need.
    Directory,
    /// Nothing to send; `page`: the root's `404.html` is sent instead.
    Missing {
        page: bool,
    },
    /// It, or a precompressed sibling ServeDir could send, resolves
    /// outside the root.
    Refused,
    Failed(io::Error),
}

/// Blocking: resolves `relative` under the root as Starlette's
/// `StaticFiles` does. `slash`: the request path ends with `/`; `whole`:
/// a small file may be read now.
fn find(files: &Files, relative: &Path, slash: bool, encodings: Encodings, whole: bool) -> Found {
    let found = match inside(&files.root, relative) {
        Ok(Some(meta)) if meta.is_dir() && files.html => {
            let index = relative.join("index.html");
            match file(&files.root, &index, encodings, whole && slash) {
                Found::File(..) | Found::Small(..) if !slash => Found::Directory,
                found => found,
            }
        }
        // A file asked for as a directory ("/a.txt/") is not there.
        Ok(Some(meta)) if meta.is_file() && !slash => file(&files.root, relative, encodings, whole),
        Ok(Some(_)) => Found::Missing { page: false },
        Ok(None) => Found::Refused,
        Err(why) if is_missing(&why) => Found::Missing { page: false },
        Err(why) => Found::Failed(why),
    };
    match found {
        Found::Missing { .. } if files.html => Found::Missing {
            page: matches!(
                file(&files.root, Path::new("404.html"), encodings, false),
                Found::File(..)
            ),
        },
        found => found,
    }
}

/// Blocking: `relative` as a file to send, its precompressed siblings
/// checked too; read whole when `whole`, small and without a sibling the
/// client takes.
fn file(root: &Path, relative: &Path, encodings: Encodings, whole: bool) -> Found {
    let meta = match inside(root, relative) {
        Ok(Some(meta)) if meta.is_file() => meta,
        Ok(Some(_)) => return Found::Missing { page: false },
        Ok(None) => return Found::Refused,
        Err(why) if is_missing(&why) => return Found::Missing { page: false },
        Err(why) => return Found::Failed(why),
    };
    let mut sibling_sent = false;
    for extension in encodings.extensions() {
        let mut sibling = relative.as_os_str().to_owned();
        sibling.push(extension);
        match inside(root, Path::new(&sibling)) {
            Ok(None) => return Found::Refused,
            Ok(Some(meta)) if meta.is_file() => sibling_sent = true,
            _ => {}
        }
    }
    if whole && !sibling_sent && meta.len() <= SMALL_FILE {
        // Read as found; one that changed size since is left to ServeDir.
        if let Ok(content) = std::fs::read(root.join(relative)) {
            if content.len() as u64 == meta.len() {
                return Found::Small(Arc::new(Small::new(relative, meta, content.into())));
            }
        }
    }
    Found::File(relative.to_owned(), meta)
}

/// Blocking: the metadata of `root/relative` with symlinks followed, or
/// `None` when it resolves outside `root`.
fn inside(root: &Path, relative: &Path) -> io::Result<Option<Metadata>> {
    let canonical = std::fs::canonicalize(root.join(relative))?;
    if !canonical.starts_with(root) {
        return Ok(None);
    }
    std::fs::metadata(&canonical).map(Some)
}

/// Errors that mean "no such file here" (404), not a failure (500).
fn is_missing(why: &io::Error) -> bool {
    #[cfg(unix)]
    if let Some(code) = why.raw_os_error() {
        if [libc::ENOTDIR, libc::ENAMETOOLONG, libc::ELOOP].contains(&code) {
            return true;
        }
    }
    matches!(
        why.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::InvalidInput
    )
}

/// The precompressed variants a request's `Accept-Encoding` names (q
/// values aside: checking one too many costs only a lookup).
#[derive(Clone, Copy, Debug, Default)]
struct Encodings {
    gzip: bool,
    br: bool,
}

impl Encodings {
    fn accepted(headers: &HeaderMap) -> Self {
        let mut found = Encodings::default();
        for value in headers.get_all(header::ACCEPT_ENCODING) {
            for item in value.as_bytes().split(|b| *b == b',') {
                let name = item
                    .split(|b| *b == b';')
                    .next()
                    .unwrap_or(item)
                    .trim_ascii();
                if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
                    found.gzip = true;
                } else if name.eq_ignore_ascii_case(b"br") {
                    found.br = true;
                }
            }
        }
        found
    }

    fn extensions(self) -> impl Iterator<Item = &'static str> {
        [(self.gzip, ".gz"), (self.br, ".br")]
            .into_iter()
            .filter_map(|(on, extension)| on.then_some(extension))
    }
}

/// Sends the file at `relative` (found with `meta`) through ServeDir,
/// after the conditions ServeDir does not know.
async fn send(files: &Files, relative: &Path, meta: &Metadata, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let etag = match conditions(&mut parts.headers, meta) {
        Ok(etag) => etag,
        Err(etag) => return not_modified(etag),
    };
    let Some(uri) = uri_of(relative) else {
        return owned(not_found());
    };
    let (method, target) = (parts.method.clone(), parts.uri.path().to_owned());
    parts.uri = uri;
    match files
        .dir
        .clone()
        .try_call(Request::from_parts(parts, ()))
        .await
    {
        // The file went away since it was found.
        Ok(response) if response.status() == StatusCode::NOT_FOUND => owned(not_found()),
        Ok(response) => finish(response, etag),
        Err(why) => unreadable(&method, &target, &files.root.join(relative), &why),
    }
}

/// The conditions ServeDir and ServeFile do not know, for a file found
/// with `meta`: its ETag, or (as the error) the ETag of the 304 that
/// `If-None-Match` asks for.
/// `headers` lose what is then not to be evaluated: `If-Modified-Since`
/// beside `If-None-Match`, and a `Range` whose `If-Range` fails.
fn conditions(
    headers: &mut HeaderMap,
    meta: &Metadata,
) -> Result<Option<HeaderValue>, HeaderValue> {
    let etag = etag(meta);
    if let Some(etag) = &etag {
        if headers.contains_key(header::IF_NONE_MATCH) {
            if none_match_fails(headers, etag) {
                return Err(etag.clone());
            }
            // If-None-Match is evaluated instead of If-Modified-Since
            // (RFC 9110, 13.2.2).
            headers.remove(header::IF_MODIFIED_SINCE);
        }
    }
    if let Some(validator) = headers.get(header::IF_RANGE) {
        // A weak ETag never matches If-Range (RFC 9110, 13.1.5); the exact
        // Last-Modified date does. Otherwise the whole file is sent.
        let date = meta.modified().ok().map(httpdate::fmt_http_date);
        if date.as_deref().map(str::as_bytes) != Some(validator.as_bytes()) {
            headers.remove(header::RANGE);
        }
    }
    Ok(etag)
}

/// Sends the file at `path` that a handler answered `request` with (a
/// `FileResponse`), as a file of a directory is sent: content type,
/// `Content-Length`, `ETag`, `Last-Modified`, conditional GET and single
/// ranges. The head's headers go over the file's own (a `Content-Type`
/// the handler chose wins), and its status over a 200. A path that is no
/// file is a 404.
pub async fn send_file(path: &Path, head: StaticResponse, request: &Parts) -> Response {
    let meta = match tokio::fs::metadata(path).await {
        Ok(meta) if meta.is_file() => meta,
        Ok(_) => return owned(not_found()),
        Err(why) if is_missing(&why) => return owned(not_found()),
        Err(why) => return unreadable(&request.method, request.uri.path(), path, &why),
    };
    let mut headers = request.headers.clone();
    let etag = match conditions(&mut headers, &meta) {
        Ok(etag) => etag,
        Err(etag) => return with_head(not_modified(etag), head),
    };
    let mut ask = Request::new(());
    *ask.method_mut() = request.method.clone();
    *ask.headers_mut() = headers;
    match ServeFile::new(path).try_call(ask).await {
        Ok(response) if response.status() == StatusCode::NOT_FOUND => owned(not_found()),
        Ok(response) => with_head(finish(response, etag), head),
        Err(why) => unreadable(&request.method, request.uri.path(), path, &why),
    }
}

/// `response` with a handler's `head` over it.
fn with_head(mut response: Response, head: StaticResponse) -> Response {
    if response.status() == StatusCode::OK {
        *response.status_mut() = head.status;
    }
    let headers = response.headers_mut();
    let mut last = None;
    for (name, value) in head.headers {
        // The first value of each name replaces the file's own.
        match name {
            Some(name) => {
                headers.insert(&name, value);
                last = Some(name);
            }
            None => {
                if let Some(name) = &last {
                    headers.append(name, value);
                }
            }
        }
    }
    response
}

fn unreadable(method: &Method, target: &str, path: &Path, why: &io::Error) -> Response {
    log::event(
        SufastLogLevel::Error,
        format_args!(
            "{method} {target}: cannot read {}: {why}; the client got a 500",
            path.display()
        ),
    );
    owned(json_detail(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal Server Error: the file could not be read",
    ))
}

/// A small file read already, with the headers ServeDir sends (and
/// [`finish`] adds) for it, made once however often it is sent.
#[derive(Debug)]
struct Small {
    /// Its path below the root.
    relative: PathBuf,
    meta: Metadata,
    content: Bytes,
    etag: Option<HeaderValue>,
    headers: HeaderMap,
}

impl Small {
    fn new(relative: &Path, meta: Metadata, content: Bytes) -> Self {
        let etag = etag(&meta);
        let mut headers = HeaderMap::with_capacity(8);
        let kind = mime_guess::from_path(relative)
            .first_raw()
            .unwrap_or("application/octet-stream");
        let kind = if kind.starts_with("text/") && !kind.contains("charset") {
            HeaderValue::try_from(format!("{kind}; charset=utf-8")).ok()
        } else {
            Some(HeaderValue::from_static(kind))
        };
        if let Some(kind) = kind {
            headers.insert(header::CONTENT_TYPE, kind);
        }
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(date) = meta
            .modified()
            .ok()
            .and_then(|time| HeaderValue::try_from(httpdate::fmt_http_date(time)).ok())
        {
            headers.insert(header::LAST_MODIFIED, date);
        }
        if let Some(etag) = &etag {
            headers.insert(header::ETAG, etag.clone());
        }
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        Small {
            relative: relative.to_owned(),
            meta,
            content,
            etag,
            headers,
        }
    }

    /// The answer to `request`: the file, or a 304 when `If-None-Match`
    /// names it.
    fn send(&self, request: &Request) -> Response {
        if let Some(etag) = &self.etag {
            if none_match_fails(request.headers(), etag) {
                return not_modified(etag.clone());
            }
        }
        let mut response = Response::new(Body::from(self.content.clone()));
        *response.headers_mut() = self.headers.clone();
        response
    }
}

/// A mount's small files kept in memory, by the raw path that found each:
/// at most [`CACHE_ENTRIES`] of them and [`CACHE_BYTES`] of content.
#[derive(Debug, Default)]
struct Cache {
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    entries: HashMap<Box<str>, Arc<Entry>>,
    /// The content of all entries.
    bytes: usize,
}

impl Cache {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The file kept for `raw`, if it is still what is on disk and no
    /// precompressed sibling of it that the client takes has appeared.
    /// Blocks on a few `lstat`s, as a page-cached stat does; an entry
    /// found stale is dropped.
    fn fresh(&self, raw: &str, encodings: Encodings) -> Option<Arc<Small>> {
        let entry = Arc::clone(self.held().entries.get(raw)?);
        if entry.fresh(encodings) {
            return Some(Arc::clone(&entry.small));
        }
        let mut held = self.held();
        if held
            .entries
            .get(raw)
            .is_some_and(|kept| Arc::ptr_eq(kept, &entry))
        {
            held.entries.remove(raw);
            held.bytes -= entry.small.content.len();
        }
        None
    }

    /// Keeps `entry` for `raw`, dropping others to stay within bounds.
    fn keep(&self, raw: Box<str>, entry: Entry) {
        let size = entry.small.content.len();
        if size > CACHE_BYTES {
            return;
        }
        let mut held = self.held();
        if let Some(old) = held.entries.remove(&raw) {
            held.bytes -= old.small.content.len();
        }
        while held.entries.len() >= CACHE_ENTRIES || held.bytes + size > CACHE_BYTES {
            // Any one: the cheapest to find.
            let Some(key) = held.entries.keys().next().cloned() else {
                break;
            };
            if let Some(old) = held.entries.remove(&key) {
                held.bytes -= old.small.content.len();
            }
        }
        held.bytes += size;
        held.entries.insert(raw, Arc::new(entry));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.held().entries.len()
    }
}

/// A small file kept, with what must be found again on disk to send it.
#[derive(Debug)]
struct Entry {
    small: Arc<Small>,
    /// The root and each directory below it on the way to the file, each
    /// with its device and inode: none may have been replaced (by a
    /// symlink either).
    directories: Vec<(PathBuf, Identity)>,
    /// The file: no symlink, its stamp unchanged.
    path: PathBuf,
    stamp: Stamp,
    /// Its `.gz` and `.br` siblings, none there when it was kept.
    gzip: PathBuf,
    br: PathBuf,
}

impl Entry {
    /// Blocking: `small` (found under `files` in a search begun at
    /// `started`) as an entry to keep, or `None` when it may not be kept:
    /// reached through a symlink, changed less than the settle time
    /// before, changed since it was read, or where stamps are unknown.
    fn new(files: &Files, small: &Arc<Small>, started: SystemTime) -> Option<Entry> {
        let stamp = Stamp::of(&small.meta)?;
        if !stamp.settled(started, files.settle) {
            return None;
        }
        let path = files.root.join(&small.relative);
        let mut directories = Vec::new();
        let mut directory = files.root.clone();
        let mut parts = small.relative.components().peekable();
        loop {
            let meta = std::fs::symlink_metadata(&directory).ok()?;
            if !meta.is_dir() {
                return None;
            }
            directories.push((directory.clone(), Identity::of(&meta)?));
            match parts.next() {
                Some(part) if parts.peek().is_some() => directory.push(part),
                _ => break,
            }
        }
        // Read after the metadata was taken: the same stamp now means the
        // content read is the file's.
        let now = std::fs::symlink_metadata(&path).ok()?;
        if !now.is_file() || Stamp::of(&now)? != stamp {
            return None;
        }
        let sibling = |extension: &str| {
            let mut name = path.as_os_str().to_owned();
            name.push(extension);
            PathBuf::from(name)
        };
        Some(Entry {
            small: Arc::clone(small),
            directories,
            gzip: sibling(".gz"),
            br: sibling(".br"),
            path,
            stamp,
        })
    }

    /// Blocking (a few `lstat`s): whether the entry may answer a request
    /// that takes `encodings`.
    fn fresh(&self, encodings: Encodings) -> bool {
        let same_directory = |(path, identity): &(PathBuf, Identity)| {
            std::fs::symlink_metadata(path)
                .is_ok_and(|meta| meta.is_dir() && Identity::of(&meta) == Some(*identity))
        };
        if !self.directories.iter().all(same_directory) {
            return false;
        }
        let same_file = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| meta.is_file() && Stamp::of(&meta) == Some(self.stamp));
        if !same_file {
            return false;
        }
        // A sibling that appeared is sent instead, or refuses the file.
        let absent = |path: &PathBuf| matches!(std::fs::symlink_metadata(path), Err(why) if why.kind() == io::ErrorKind::NotFound);
        (!encodings.gzip || absent(&self.gzip)) && (!encodings.br || absent(&self.br))
    }
}

/// Which file a directory entry is: device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Identity {
    device: u64,
    inode: u64,
}

impl Identity {
    #[cfg(unix)]
    fn of(meta: &Metadata) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        Some(Identity {
            device: meta.dev(),
            inode: meta.ino(),
        })
    }

    #[cfg(not(unix))]
    fn of(_: &Metadata) -> Option<Self> {
        None
    }
}

/// What a new version of a file changes: which file it is, its size and
/// its modification and status change times, to the nanosecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    identity: Identity,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Stamp {
    #[cfg(unix)]
    fn of(meta: &Metadata) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        Some(Stamp {
            identity: Identity::of(meta)?,
            len: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
        })
    }

    #[cfg(not(unix))]
    fn of(_: &Metadata) -> Option<Self> {
        None
    }

    /// Whether the file's last change was `settle` or more before `started`.
    fn settled(&self, started: SystemTime, settle: Duration) -> bool {
        let Ok(started) = started.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let (seconds, nanos) = self.changed;
        let changed = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
        let started = i128::try_from(started.as_nanos()).unwrap_or(i128::MAX);
        let settle = i128::try_from(settle.as_nanos()).unwrap_or(i128::MAX);
        changed.saturating_add(settle) <= started
    }
}

/// The root's `404.html`, with status 404, whatever the request's
/// conditions and ranges.
async fn not_found_page(files: &Files, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    for name in [
        header::RANGE,
        header::IF_RANGE,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
        header::IF_NONE_MATCH,
    ] {
        parts.headers.remove(name);
    }
    parts.uri = Uri::from_static("/404.html");
    match files
        .dir
        .clone()
        .try_call(Request::from_parts(parts, ()))
        .await
    {
        Ok(response) if response.status() == StatusCode::OK => {
            let mut response = finish(response, None);
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
        _ => owned(not_found()),
    }
}

/// `W/"size-mtime"`, in hex: a new version of the file gets a new one.
fn etag(meta: &Metadata) -> Option<HeaderValue> {
    let modified = meta
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_nanos());
    HeaderValue::try_from(format!("W/\"{:x}-{modified:x}\"", meta.len())).ok()
}

/// Whether `If-None-Match` names `etag` (or is `*`): the weak comparison
/// RFC 9110 (13.1.2) asks for.
fn none_match_fails(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    fn opaque(tag: &[u8]) -> &[u8] {
        tag.strip_prefix(b"W/").unwrap_or(tag)
    }
    let ours = opaque(etag.as_bytes());
    headers.get_all(header::IF_NONE_MATCH).iter().any(|value| {
        value
            .as_bytes()
            .split(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|tag| tag == b"*" || opaque(tag) == ours)
    })
}

fn not_modified(etag: HeaderValue) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    response
}

/// ServeDir's response as sent: the ETag, `Vary` (a precompressed sibling
/// may be chosen), `charset=utf-8` on text types as Starlette sends them,
/// and a body that states its length.
fn finish(
    response: axum::http::Response<ServeFileSystemResponseBody>,
    etag: Option<HeaderValue>,
) -> Response {
    let (mut parts, body) = response.into_parts();
    let headers = &mut parts.headers;
    if let Some(etag) = etag {
        if matches!(
            parts.status,
            StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
        ) {
            headers.insert(header::ETAG, etag);
        }
    }
    headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Some(text) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .filter(|value| value.starts_with("text/") && !value.contains("charset"))
        .and_then(|value| HeaderValue::try_from(format!("{value}; charset=utf-8")).ok())
    {
        headers.insert(header::CONTENT_TYPE, text);
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    Response::from_parts(parts, Body::new(Stated { body, length }))
}

/// 307 to the request's path with a `/` added, its query kept.
fn redirect(request: &Request) -> Response {
    let uri = request.uri();
    let location = match uri.query() {
        Some(query) => format!("{}/?{query}", uri.path()),
        None => format!("{}/", uri.path()),
    };
    let Ok(location) = HeaderValue::try_from(location) else {
        return owned(not_found());
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    response.headers_mut().insert(header::LOCATION, location);
    response
}

fn failed(request: &Request, why: &io::Error) -> Response {
    log::event(
        SufastLogLevel::Error,
        format_args!(
            "{} {}: cannot look the file up: {why}; the client got a 500",
            request.method(),
            request.uri().path()
        ),
    );
    owned(json_detail(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal Server Error: the file could not be read",
    ))
}

/// `relative` as the request path ServeDir decodes again.
fn uri_of(relative: &Path) -> Option<Uri> {
    let mut path = String::from("/");
    for (i, part) in relative.components().enumerate() {
        if i > 0 {
            path.push('/');
        }
        for byte in part.as_os_str().to_str()?.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                path.push(byte as char);
            } else {
                path.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    Uri::try_from(path).ok()
}

/// ServeDir's body, stating the length its `Content-Length` says, so that
/// the server's HEAD answer keeps that length and the access log counts
/// the bytes. (For HEAD the body is empty and is replaced unsent.)
struct Stated {
    body: ServeFileSystemResponseBody,
    length: Option<u64>,
}

impl http_body::Body for Stated {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(length) => SizeHint::with_exact(length),
            None => self.body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn relative_paths_refuse_what_could_leave_the_root() {
        let ok = |raw: &str| relative_path(raw).map(|p| p.display().to_string());
        assert_eq!(ok("a/b.txt").as_deref(), Some("a/b.txt"));
        assert_eq!(ok("a/./b//c/").as_deref(), Some("a/b/c"));
        assert_eq!(ok("").as_deref(), Some(""));
        assert_eq!(ok("café é.txt").as_deref(), Some("café é.txt"));
        // What canonical_path leaves escaped: a percent is a name's own.
        assert_eq!(ok("100%25.txt").as_deref(), Some("100%.txt"));
        for raw in [
            "..",
            "../x",
            "a/../../x",
            "a/..",
            "a%2Fb",
            "%2F..%2Fx",
            "\\..\\x",
            "a\\b",
            "a\0b",
        ] {
            assert_eq!(relative_path(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn request_paths_through_the_router_reach_the_checks_decoded() {
        // What the router hands over for the raw request paths.
        let matched = |raw: &str| pattern::canonical_path(raw).unwrap().into_owned();
        for raw in ["%2e%2e/x", "%2E%2E", "a%2fb", "%5c..", "a%00b"] {
            assert_eq!(relative_path(&matched(raw)), None, "{raw:?}");
        }
        assert_eq!(
            relative_path(&matched("a%20b.txt")),
            Some(PathBuf::from("a b.txt"))
        );
    }

    #[test]
    fn uris_for_servedir_escape_all_but_plain_characters() {
        let uri = uri_of(Path::new("dir/a b?#%é.txt")).unwrap();
        assert_eq!(uri.path(), "/dir/a%20b%3F%23%25%C3%A9.txt");
        assert_eq!(uri_of(Path::new("")).unwrap().path(), "/");
    }

    #[test]
    fn if_none_match_compares_weakly_and_star_matches() {
        let etag = HeaderValue::from_static("W/\"5-abc\"");
        let with = |value: &'static str| {
            HeaderMap::from_iter([(header::IF_NONE_MATCH, HeaderValue::from_static(value))])
        };
        assert!(none_match_fails(&with("W/\"5-abc\""), &etag));
        assert!(none_match_fails(&with("\"5-abc\""), &etag));
        assert!(none_match_fails(&with("\"x\", W/\"5-abc\""), &etag));
        assert!(none_match_fails(&with("*"), &etag));
        assert!(!none_match_fails(&with("W/\"5-abd\""), &etag));
    }

    #[test]
    fn accepted_encodings_name_the_siblings_to_check() {
        let of = |value: &'static str| {
            let headers =
                HeaderMap::from_iter([(header::ACCEPT_ENCODING, HeaderValue::from_static(value))]);
            Encodings::accepted(&headers)
                .extensions()
                .collect::<Vec<_>>()
        };
        assert_eq!(of("gzip, deflate, br"), [".gz", ".br"]);
        assert_eq!(of("BR;q=0.5"), [".br"]);
        assert!(of("identity").is_empty());
    }

    fn get(path: &str, headers: &[(header::HeaderName, &'static str)]) -> Request {
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(name.clone(), HeaderValue::from_static(value));
        }
        request
    }

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn serves_files_with_etags_indexes_and_the_404_page() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("a.txt"), "hello").unwrap();
        std::fs::create_dir(root.join("docs")).unwrap();
        std::fs::write(root.join("docs/index.html"), "<p>docs</p>").unwrap();
        let files = Arc::new(Files::new(root.clone(), true));
        let inside = |raw: &str| vec![raw.to_owned()];

        let r = serve(
            files.clone(),
            Part::Inside,
            inside("a.txt"),
            get("/s/a.txt", &[]),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(r.headers()[header::VARY], "Accept-Encoding");
        assert_eq!(axum::body::HttpBody::size_hint(r.body()).exact(), Some(5));
        let etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
        assert!(etag.starts_with("W/\"5-"), "{etag}");
        assert_eq!(body(r).await, "hello");

        let tag: &'static str = Box::leak(etag.into_boxed_str());
        let r = serve(
            files.clone(),
            Part::Inside,
            inside("a.txt"),
            get("/s/a.txt", &[(header::IF_NONE_MATCH, tag)]),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()[header::ETAG], tag);

        let r = serve(
            files.clone(),
            Part::Inside,
            inside("docs"),
            get("/s/docs?x=1", &[]),
        )
        .await;
        assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(r.headers()[header::LOCATION], "/s/docs/?x=1");
        let r = serve(
            files.clone(),
            Part::Inside,
            inside("docs/"),
            get("/s/docs/", &[]),
        )
        .await;
        assert_eq!(body(r).await, "<p>docs</p>");
        let r = serve(files.clone(), Part::Bare, vec![], get("/s", &[])).await;
        assert_eq!(r.headers()[header::LOCATION], "/s/");

        // Without 404.html, the server's own 404; with it, the page.
        let r = serve(
            files.clone(),
            Part::Inside,
            inside("nope"),
            get("/s/nope", &[]),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(body(r).await, r#"{"detail": "Not Found"}"#);
        std::fs::write(root.join("404.html"), "gone").unwrap();
        let r = serve(
            files.clone(),
            Part::Inside,
            inside("nope"),
            get("/s/nope", &[]),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(body(r).await, "gone");
        // A file asked for as a directory is not there.
        let r = serve(
            files.clone(),
            Part::Inside,
            inside("a.txt/"),
            get("/s/a.txt/", &[]),
        )
        .await;
        assert_eq!(body(r).await, "gone");
        // The root without index.html: missing too.
        let r = serve(files.clone(), Part::Root, vec![], get("/s/", &[])).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlinks_out_of_the_root_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("in.txt"), "in").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("dir")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("in.txt.gz")).unwrap();
        std::os::unix::fs::symlink(root.join("in.txt"), root.join("alias.txt")).unwrap();
        let files = Arc::new(Files::new(root, false));
        for raw in ["out", "dir/secret"] {
            let r = serve(
                files.clone(),
                Part::Inside,
                vec![raw.into()],
                get("/s/x", &[]),
            )
            .await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{raw}");
            assert_eq!(body(r).await, r#"{"detail": "Not Found"}"#);
        }
        // A precompressed sibling that leaves the root refuses the file.
        let gzip = [(header::ACCEPT_ENCODING, "gzip")];
        let r = serve(
            files.clone(),
            Part::Inside,
            vec!["in.txt".into()],
            get("/s/x", &gzip),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = serve(
            files.clone(),
            Part::Inside,
            vec!["in.txt".into()],
            get("/s/x", &[]),
        )
        .await;
        assert_eq!(body(r).await, "in");
        // A symlink that stays inside is followed.
        let r = serve(
            files,
            Part::Inside,
            vec!["alias.txt".into()],
            get("/s/x", &[]),
        )
        .await;
        assert_eq!(body(r).await, "in");
    }

    async fn fetch(
        files: &Arc<Files>,
        raw: &str,
        headers: &[(header::HeaderName, &'static str)],
    ) -> (StatusCode, HeaderMap, String) {
        let r = serve(
            files.clone(),
            Part::Inside,
            vec![raw.into()],
            get("/s/x", headers),
        )
        .await;
        let (status, headers) = (r.status(), r.headers().clone());
        (status, headers, body(r).await)
    }

    #[tokio::test]
    async fn files_changed_since_they_were_kept_are_sent_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), "hello").unwrap();
        let files = Arc::new(Files::new(root.clone(), false).settled_at_once());

        let (status, first, text) = fetch(&files, "sub/a.txt", &[]).await;
        assert_eq!((status, text.as_str()), (StatusCode::OK, "hello"));
        assert_eq!(files.cache.len(), 1);
        // Kept: the same headers, and a 304 for its ETag.
        let (_, again, text) = fetch(&files, "sub/a.txt", &[]).await;
        assert_eq!((again, text.as_str()), (first.clone(), "hello"));
        let tag: &'static str = Box::leak(first[header::ETAG].to_str().unwrap().into());
        let (status, headers, _) =
            fetch(&files, "sub/a.txt", &[(header::IF_NONE_MATCH, tag)]).await;
        assert_eq!(
            (status, &headers[header::ETAG]),
            (StatusCode::NOT_MODIFIED, &first[header::ETAG])
        );

        // A new size.
        std::fs::write(root.join("sub/a.txt"), "hello, again").unwrap();
        let (_, headers, text) = fetch(&files, "sub/a.txt", &[]).await;
        assert_eq!(text, "hello, again");
        assert_ne!(headers[header::ETAG], first[header::ETAG]);
        // The same size, an older modification time (as `cp -p` leaves).
        std::fs::write(root.join("sub/a.txt"), "HELLO, AGAIN").unwrap();
        std::fs::File::options()
            .write(true)
            .open(root.join("sub/a.txt"))
            .unwrap()
            .set_modified(UNIX_EPOCH + Duration::from_secs(1_000_000_000))
            .unwrap();
        assert_eq!(fetch(&files, "sub/a.txt", &[]).await.2, "HELLO, AGAIN");
        // Replaced by another file renamed over it.
        std::fs::write(root.join("new"), "hello, world").unwrap();
        std::fs::rename(root.join("new"), root.join("sub/a.txt")).unwrap();
        assert_eq!(fetch(&files, "sub/a.txt", &[]).await.2, "hello, world");
        assert_eq!(fetch(&files, "sub/a.txt", &[]).await.2, "hello, world");

        // A precompressed sibling that appears is sent to who takes it.
        std::fs::write(root.join("sub/a.txt.gz"), "zipped").unwrap();
        let (_, headers, text) =
            fetch(&files, "sub/a.txt", &[(header::ACCEPT_ENCODING, "gzip")]).await;
        assert_eq!(
            (text.as_str(), &headers[header::CONTENT_ENCODING]),
            ("zipped", &HeaderValue::from_static("gzip"))
        );
        assert_eq!(fetch(&files, "sub/a.txt", &[]).await.2, "hello, world");

        // Removed: not found, the entry dropped.
        std::fs::remove_file(root.join("sub/a.txt")).unwrap();
        assert_eq!(
            fetch(&files, "sub/a.txt", &[]).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(files.cache.len(), 0);

        // A file changed a moment ago is not kept: a write in the same
        // tick could leave its stamp as it was.
        let files = Arc::new(Files::new(root.clone(), false));
        std::fs::write(root.join("b.txt"), "b").unwrap();
        assert_eq!(fetch(&files, "b.txt", &[]).await.2, "b");
        assert_eq!(files.cache.len(), 0);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn files_kept_then_replaced_by_symlinks_out_of_the_root_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let away = outside.path().canonicalize().unwrap();
        std::fs::write(away.join("secret"), "s").unwrap();
        std::fs::create_dir(away.join("sub")).unwrap();
        std::fs::write(away.join("sub/a.txt"), "secret a").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), "in a").unwrap();
        std::fs::write(root.join("b.txt"), "in b").unwrap();
        std::fs::write(root.join("c.txt"), "in c").unwrap();
        std::os::unix::fs::symlink(root.join("c.txt"), root.join("alias.txt")).unwrap();
        let files = Arc::new(Files::new(root.clone(), false).settled_at_once());
        for (raw, text) in [("sub/a.txt", "in a"), ("b.txt", "in b"), ("c.txt", "in c")] {
            assert_eq!(fetch(&files, raw, &[]).await.2, text);
        }
        // What a symlink leads to is not kept: the link could change.
        assert_eq!(fetch(&files, "alias.txt", &[]).await.2, "in c");
        assert_eq!(files.cache.len(), 3);

        let not_found = (
            StatusCode::NOT_FOUND,
            r#"{"detail": "Not Found"}"#.to_owned(),
        );
        // The file replaced by a symlink out of the root.
        std::fs::remove_file(root.join("b.txt")).unwrap();
        std::os::unix::fs::symlink(away.join("secret"), root.join("b.txt")).unwrap();
        let (status, _, text) = fetch(&files, "b.txt", &[]).await;
        assert_eq!((status, text), not_found);
        // A directory on the way replaced by one.
        std::fs::rename(root.join("sub"), root.join("moved")).unwrap();
        std::os::unix::fs::symlink(away.join("sub"), root.join("sub")).unwrap();
        let (status, _, text) = fetch(&files, "sub/a.txt", &[]).await;
        assert_eq!((status, text), not_found);
        // A precompressed sibling out of the root that appears refuses it.
        std::os::unix::fs::symlink(away.join("secret"), root.join("c.txt.gz")).unwrap();
        let (status, _, text) = fetch(&files, "c.txt", &[(header::ACCEPT_ENCODING, "gzip")]).await;
        assert_eq!((status, text), not_found);
        assert_eq!(files.cache.len(), 0);
    }

    #[test]
    fn the_cache_stays_within_its_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("a"), "a").unwrap();
        let files = Files::new(root.clone(), false).settled_at_once();
        let meta = std::fs::metadata(root.join("a")).unwrap();
        let entry = |size: usize| {
            let small = Arc::new(Small::new(
                Path::new("a"),
                meta.clone(),
                vec![0; size].into(),
            ));
            Entry::new(&files, &small, SystemTime::now()).unwrap()
        };
        for i in 0..CACHE_ENTRIES + 10 {
            files.cache.keep(i.to_string().into(), entry(1));
        }
        assert_eq!(files.cache.len(), CACHE_ENTRIES);
        assert_eq!(files.cache.held().bytes, CACHE_ENTRIES);
        let big = usize::try_from(SMALL_FILE).unwrap();
        for i in 0..CACHE_BYTES / big + 10 {
            files.cache.keep(format!("big{i}").into(), entry(big));
        }
        let held = files.cache.held();
        assert!(held.bytes <= CACHE_BYTES, "{}", held.bytes);
        assert_eq!(
            held.bytes,
            held.entries
                .values()
                .map(|e| e.small.content.len())
                .sum::<usize>()
        );
    }
}
