//! Form bodies, for the routes whose handler reads a form (`"form": true`
//! in the route table): parsed here as they arrive, so that the handler is
//! given fields and files, and a file part larger than `upload_spool_size`
//! goes to a temporary file instead of staying in memory.
//!
//! A request is a form when its Content-Type, up to the first `;` and
//! without surrounding spaces, is `multipart/form-data` or
//! `application/x-www-form-urlencoded` in any case. On a form route such a
//! request reaches its handler with a form record as its body (held for
//! `sufast_take_body` when large, as any body), or not at all: a malformed
//! form is a 400, one over a limit a 413. Any other body passes as it came.
//!
//! # A form record
//! ```text
//! u32 number of parts
//! per part: u8 kind (0 a field, 1 a file in the record, 2 a file on disk)
//!           u32 × 4 lengths of: name, file name, content type, data
//!           the bytes of: name, file name, content type, data
//! ```
//! A field's data is its value; a file's data is its content or, for kind
//! 2, the path of the temporary file that holds it. The library deletes
//! that file once the request is answered or withdrawn: a handler opens it
//! before it answers. A part's content type is its Content-Type header as
//! sent, empty if it had none.

use std::fmt;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, HeaderMap};
use futures_util::stream;
use http_body_util::BodyExt;
use tempfile::{NamedTempFile, TempPath};
use tokio::io::AsyncWriteExt;

use crate::tiers::{read_body, BodyError};

/// The form kinds a route reads.
pub enum Kind {
    /// `multipart/form-data`, with its boundary.
    Multipart(String),
    Urlencoded,
}

/// The form kind of a request with `headers`: `None` if it is no form,
/// `Some(Err)` for multipart without a usable boundary.
pub fn kind(headers: &HeaderMap) -> Option<Result<Kind, String>> {
    let value = headers.get(header::CONTENT_TYPE)?.as_bytes();
    let essence = value.split(|b| *b == b';').next().unwrap_or_default();
    let essence = essence.trim_ascii();
    if essence.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
        return Some(Ok(Kind::Urlencoded));
    }
    if !essence.eq_ignore_ascii_case(b"multipart/form-data") {
        return None;
    }
    Some(boundary(&String::from_utf8_lossy(value)).map(Kind::Multipart))
}

/// The `boundary` parameter of a multipart Content-Type, unquoted.
fn boundary(content_type: &str) -> Result<String, String> {
    content_type
        .split(';')
        .skip(1)
        .filter_map(|param| param.split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim().trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
        .ok_or_else(|| "the multipart/form-data Content-Type has no boundary".to_owned())
}

/// What a form may be, read when its request arrives.
#[derive(Clone, Copy)]
pub struct FormLimits {
    /// The largest body, as for any request (`max_body_size`).
    pub max_body: usize,
    /// The longest pause between two reads of the body (`body_timeout`).
    pub pause: Duration,
    /// The most parts, fields and files together (`max_form_parts`).
    pub max_parts: usize,
    /// The largest field that is not a file (`max_part_size`).
    pub max_part: usize,
    /// A file part larger than this goes to disk (`upload_spool_size`).
    pub spool: usize,
}

/// A parsed form: its record, in pieces, and the paths of the temporary
/// files that hold its larger files, deleted when dropped. No file stays
/// open: a form of many files costs no descriptors while it waits.
pub struct Form {
    pub record: Vec<Bytes>,
    pub files: Vec<TempPath>,
}

/// Why a form was refused.
#[derive(Debug)]
pub enum FormError {
    Body(BodyError),
    /// 400, with the reason.
    Malformed(String),
    /// 413, with the reason.
    TooLarge(String),
    /// A temporary file could not be written: a 500, and the reason logged.
    Disk(String),
}

/// Reads and parses the form `body` of `kind` within `limits`.
pub async fn read(body: Body, kind: Kind, limits: &FormLimits) -> Result<Form, FormError> {
    match kind {
        Kind::Urlencoded => {
            let chunks = read_body(body, limits.max_body, limits.pause)
                .await
                .map_err(FormError::Body)?;
            let whole: Vec<u8> = chunks.concat();
            let mut record = Record::default();
            for (name, value) in form_urlencoded::parse(&whole) {
                record.count_part(limits)?;
                record.push(0, &name, "", b"", Bytes::from(value.into_owned()));
            }
            Ok(record.finish(Vec::new()))
        }
        Kind::Multipart(boundary) => multipart(body, boundary, limits).await,
    }
}

/// Parses a form body already in memory (`request.form()` on a route not
/// marked as reading forms): the record, or the status (400 or 413) and
/// detail it is refused with. Nothing goes to disk: the body is in memory
/// already. Runs on the caller's thread.
pub fn parse(
    content_type: &[u8],
    body: &[u8],
    limits: &FormLimits,
) -> Result<Vec<u8>, (u16, String)> {
    let mut headers = HeaderMap::new();
    if let Ok(value) = header::HeaderValue::from_bytes(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    let kind = match kind(&headers) {
        None => return Err((400, "Bad Request: the body is not a form (its Content-Type is neither multipart/form-data nor application/x-www-form-urlencoded)".into())),
        Some(Err(why)) => return Err((400, format!("Bad Request: {why}"))),
        Some(Ok(kind)) => kind,
    };
    let limits = FormLimits {
        spool: usize::MAX,
        ..*limits
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| (500, format!("the form could not be parsed: {e}")))?;
    let body = Body::from(Bytes::copy_from_slice(body));
    match runtime.block_on(read(body, kind, &limits)) {
        Ok(form) => Ok(form.record.concat()),
        Err(FormError::Body(BodyError::TooLarge)) => Err((
            413,
            "Payload Too Large: the body is larger than max_body_size".into(),
        )),
        Err(FormError::Body(_)) => Err((400, "Bad Request: the body could not be read".into())),
        Err(FormError::Malformed(why)) => Err((400, format!("Bad Request: {why}"))),
        Err(FormError::TooLarge(why)) => Err((413, why)),
        Err(FormError::Disk(why)) => Err((500, why)),
    }
}

/// A stop in reading the body, carried through the multipart parser.
#[derive(Debug)]
struct Stopped(BodyError);

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::error::Error for Stopped {}

/// The body as a stream of its pieces, held to `limit` bytes in all and
/// to `pause` between two reads.
fn pieces(
    body: Body,
    limit: usize,
    pause: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, Stopped>> {
    stream::unfold(Some((body, 0usize)), move |state| async move {
        let (mut body, mut size) = state?;
        loop {
            let frame = match tokio::time::timeout(pause, body.frame()).await {
                Err(_) => return Some((Err(Stopped(BodyError::Slow)), None)),
                Ok(None) => return None,
                Ok(Some(Err(_))) => return Some((Err(Stopped(BodyError::Broken)), None)),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            size += data.len();
            if size > limit {
                return Some((Err(Stopped(BodyError::TooLarge)), None));
            }
            return Some((Ok(data), Some((body, size))));
        }
    })
}

fn parse_error(error: multer::Error) -> FormError {
    if let multer::Error::StreamReadFailed(inner) = &error {
        if let Some(Stopped(why)) = inner.downcast_ref::<Stopped>() {
            return FormError::Body(*why);
        }
    }
    FormError::Malformed(format!("the multipart body is malformed: {error}"))
}

async fn multipart(body: Body, boundary: String, limits: &FormLimits) -> Result<Form, FormError> {
    if body.size_hint().lower() > limits.max_body as u64 {
        return Err(FormError::Body(BodyError::TooLarge));
    }
    let mut parts = multer::Multipart::new(pieces(body, limits.max_body, limits.pause), boundary);
    let mut record = Record::default();
    let mut files = Vec::new();
    while let Some(mut field) = parts.next_field().await.map_err(parse_error)? {
        record.count_part(limits)?;
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default();
        let mut data: Vec<Bytes> = Vec::new();
        let mut size = 0;
        let mut disk: Option<(NamedTempFile, tokio::fs::File)> = None;
        while let Some(chunk) = field.chunk().await.map_err(parse_error)? {
            size += chunk.len();
            if file_name.is_none() && size > limits.max_part {
                return Err(FormError::TooLarge(format!(
                    "Payload Too Large: form field {name:?} is larger than max_part_size ({} bytes)",
                    limits.max_part
                )));
            }
            if let Some((_, file)) = &mut disk {
                file.write_all(&chunk).await.map_err(disk_error)?;
                continue;
            }
            data.push(chunk);
            if file_name.is_some() && size > limits.spool {
                let (named, mut file) = spool().await?;
                for piece in data.drain(..) {
                    file.write_all(&piece).await.map_err(disk_error)?;
                }
                disk = Some((named, file));
            }
        }
        let Some(file_name) = file_name else {
            let value = Bytes::from(data.concat());
            record.push(0, &name, "", &content_type, value);
            continue;
        };
        match disk {
            None => {
                let content = match data.len() {
                    1 => data.pop().unwrap_or_default(),
                    _ => Bytes::from(data.concat()),
                };
                record.push(1, &name, &file_name, &content_type, content);
            }
            Some((named, mut file)) => {
                // Written through before the handler reads it, then closed.
                file.flush().await.map_err(disk_error)?;
                drop(file);
                let path = named.into_temp_path();
                let bytes = path.as_os_str().as_encoded_bytes().to_vec();
                record.push(2, &name, &file_name, &content_type, Bytes::from(bytes));
                files.push(path);
            }
        }
    }
    Ok(record.finish(files))
}

fn disk_error(error: std::io::Error) -> FormError {
    FormError::Disk(format!(
        "an uploaded file could not be written to a temporary file: {error}"
    ))
}

/// A new temporary file for an upload, and a handle to write it through.
async fn spool() -> Result<(NamedTempFile, tokio::fs::File), FormError> {
    let made = tokio::task::spawn_blocking(|| {
        let named = tempfile::Builder::new()
            .prefix("sufast-upload-")
            .tempfile()?;
        let file = named.as_file().try_clone()?;
        Ok::<_, std::io::Error>((named, file))
    })
    .await
    .map_err(|e| FormError::Disk(format!("an upload could not be spooled: {e}")))?;
    let (named, file) = made.map_err(disk_error)?;
    Ok((named, tokio::fs::File::from_std(file)))
}

/// A form record being written.
#[derive(Default)]
struct Record {
    pieces: Vec<Bytes>,
    count: u32,
}

impl Record {
    fn count_part(&mut self, limits: &FormLimits) -> Result<(), FormError> {
        if self.count as usize >= limits.max_parts {
            return Err(FormError::TooLarge(format!(
                "Payload Too Large: the form has more than max_form_parts ({}) parts",
                limits.max_parts
            )));
        }
        self.count += 1;
        Ok(())
    }

    fn push(&mut self, kind: u8, name: &str, file_name: &str, content_type: &[u8], data: Bytes) {
        let mut head = Vec::with_capacity(17 + name.len() + file_name.len() + content_type.len());
        head.push(kind);
        // Every length fits: the body is at most max_body_size, below 4 GiB.
        for len in [name.len(), file_name.len(), content_type.len(), data.len()] {
            head.extend_from_slice(&(len as u32).to_le_bytes());
        }
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(file_name.as_bytes());
        head.extend_from_slice(content_type);
        self.pieces.push(Bytes::from(head));
        if !data.is_empty() {
            self.pieces.push(data);
        }
    }

    fn finish(mut self, files: Vec<TempPath>) -> Form {
        self.pieces
            .insert(0, Bytes::copy_from_slice(&self.count.to_le_bytes()));
        Form {
            record: self.pieces,
            files,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> FormLimits {
        FormLimits {
            max_body: 1 << 20,
            pause: Duration::from_secs(5),
            max_parts: 3,
            max_part: 8,
            spool: 4,
        }
    }

    /// The parts of a record: kind, name, file name, content type, data.
    fn parts(record: &[Bytes]) -> Vec<(u8, String, String, String, Vec<u8>)> {
        let bytes = record.concat();
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let mut out = Vec::new();
        let mut at = 4;
        for _ in 0..u32_at(0) {
            let kind = bytes[at];
            let lens = [
                u32_at(at + 1),
                u32_at(at + 5),
                u32_at(at + 9),
                u32_at(at + 13),
            ];
            at += 17;
            let mut next = |len: usize| {
                let piece = bytes[at..at + len].to_vec();
                at += len;
                piece
            };
            let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
            out.push((
                kind,
                text(next(lens[0])),
                text(next(lens[1])),
                text(next(lens[2])),
                next(lens[3]),
            ));
        }
        assert_eq!(at, bytes.len());
        out
    }

    fn multipart_body(parts: &[(&str, Option<&str>, &str)]) -> Body {
        let mut body = String::new();
        for (name, file, value) in parts {
            body += "--XyZ\r\nContent-Disposition: form-data; name=\"";
            body += name;
            body += "\"";
            if let Some(file) = file {
                body += "; filename=\"";
                body += file;
                body += "\"\r\nContent-Type: text/plain";
            }
            body += "\r\n\r\n";
            body += value;
            body += "\r\n";
        }
        body += "--XyZ--\r\n";
        Body::from(body)
    }

    fn multipart() -> Kind {
        Kind::Multipart("XyZ".into())
    }

    #[test]
    fn the_content_type_names_the_kind() {
        let kind_of = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            match kind(&headers) {
                None => "none",
                Some(Ok(Kind::Urlencoded)) => "urlencoded",
                Some(Ok(Kind::Multipart(_))) => "multipart",
                Some(Err(_)) => "error",
            }
        };
        assert_eq!(
            kind_of("application/x-www-form-urlencoded; charset=utf-8"),
            "urlencoded"
        );
        assert_eq!(kind_of(" Multipart/Form-Data ; boundary=abc"), "multipart");
        assert_eq!(kind_of("multipart/form-data"), "error");
        assert_eq!(kind_of("multipart/form-data; boundary=\"\""), "error");
        assert_eq!(
            boundary("multipart/form-data; charset=x; BOUNDARY=\"a b\"").unwrap(),
            "a b"
        );
        assert_eq!(kind_of("application/json"), "none");
        assert!(kind(&HeaderMap::new()).is_none());
    }

    #[tokio::test]
    async fn fields_and_files_become_a_record_and_a_large_file_goes_to_disk() {
        let body = multipart_body(&[
            ("a", None, "1"),
            ("f", Some("x.txt"), "abc"),
            ("g", Some("y.txt"), "abcdefghij"),
        ]);
        let form = read(body, multipart(), &limits()).await.unwrap();
        let got = parts(&form.record);
        assert_eq!(got[0], (0, "a".into(), "".into(), "".into(), b"1".to_vec()));
        assert_eq!(
            got[1],
            (
                1,
                "f".into(),
                "x.txt".into(),
                "text/plain".into(),
                b"abc".to_vec()
            )
        );
        assert_eq!((got[2].0, got[2].2.as_str()), (2, "y.txt"));
        let path = String::from_utf8(got[2].4.clone()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdefghij");
        drop(form);
        assert!(
            !std::path::Path::new(&path).exists(),
            "dropping the form deletes its file"
        );
    }

    #[tokio::test]
    async fn limits_and_malformed_bodies_are_refused() {
        let too_many = multipart_body(&[
            ("a", None, "1"),
            ("b", None, "2"),
            ("c", None, "3"),
            ("d", None, "4"),
        ]);
        let refused = read(too_many, multipart(), &limits()).await.err().unwrap();
        assert!(matches!(refused, FormError::TooLarge(ref why) if why.contains("max_form_parts")));
        let long_field = multipart_body(&[("a", None, "123456789")]);
        let refused = read(long_field, multipart(), &limits())
            .await
            .err()
            .unwrap();
        assert!(matches!(refused, FormError::TooLarge(ref why) if why.contains("max_part_size")));
        let broken =
            Body::from("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end");
        let refused = read(broken, multipart(), &limits()).await.err().unwrap();
        assert!(matches!(refused, FormError::Malformed(_)), "{refused:?}");
        let small = FormLimits {
            max_body: 10,
            ..limits()
        };
        let refused = read(multipart_body(&[("a", None, "1")]), multipart(), &small)
            .await
            .err()
            .unwrap();
        assert!(matches!(refused, FormError::Body(BodyError::TooLarge)));
    }

    #[tokio::test]
    async fn an_urlencoded_form_is_decoded() {
        let form = read(Body::from("a=1&b=x+y%21&a=2"), Kind::Urlencoded, &limits())
            .await
            .unwrap();
        let got: Vec<_> = parts(&form.record)
            .into_iter()
            .map(|p| (p.1, p.4))
            .collect();
        assert_eq!(
            got,
            [
                ("a".into(), b"1".to_vec()),
                ("b".into(), b"x y!".to_vec()),
                ("a".into(), b"2".to_vec())
            ]
        );
    }
}
