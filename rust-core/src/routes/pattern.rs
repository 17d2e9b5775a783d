//! Route path patterns (`/users/{id:int}`), the key they are stored under
//! in the radix router, convertor checks, and percent-decoding of request
//! paths so that routes match what the client meant, not how it was escaped.

use std::borrow::Cow;

/// How a path parameter must look for the route to match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Convertor {
    Str,
    Int,
    Float,
    Uuid,
    Path,
}

impl Convertor {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "str" => Convertor::Str,
            "int" => Convertor::Int,
            "float" => Convertor::Float,
            "uuid" => Convertor::Uuid,
            "path" => Convertor::Path,
            _ => return None,
        })
    }

    /// Whether a percent-decoded parameter value matches this convertor.
    pub fn accepts(self, value: &str) -> bool {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match self {
            Convertor::Str | Convertor::Path => !value.is_empty(),
            Convertor::Int => digits(value),
            Convertor::Float => match value.split_once('.') {
                Some((whole, frac)) => digits(whole) && digits(frac),
                None => digits(value),
            },
            Convertor::Uuid => is_uuid(value),
        }
    }
}

fn is_uuid(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// One `{name}` or `{name:convertor}` in a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub convertor: Convertor,
}

/// A validated route pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// The pattern as the user wrote it, for messages.
    pub source: String,
    /// The key in the radix router. Parameters are renamed by position
    /// (`{p0}`, `{*p1}`), so `/u/{id}` for GET and `/u/{uid}` for DELETE
    /// share one node instead of conflicting.
    pub router_key: String,
    /// The parameters in path order.
    pub params: Vec<Param>,
}

const FORBIDDEN: &[char] = &['?', '#', '%', '\\', ' '];

/// Parses and validates a route pattern; the error says what is wrong.
pub fn parse(source: &str) -> Result<Pattern, String> {
    if !source.starts_with('/') {
        return Err("must start with '/'".into());
    }
    if let Some(c) = source
        .chars()
        .find(|c| c.is_control() || FORBIDDEN.contains(c))
    {
        return Err(format!(
            "contains the character {c:?}, which a route path cannot hold"
        ));
    }
    let segments: Vec<&str> = source[1..].split('/').collect();
    let mut router_key = String::with_capacity(source.len());
    let mut params: Vec<Param> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        router_key.push('/');
        if segment.is_empty() && !last {
            return Err("has an empty segment (\"//\")".into());
        }
        if !segment.contains(['{', '}']) {
            router_key.push_str(segment);
            continue;
        }
        let param = parse_param(segment)?;
        if params.iter().any(|p| p.name == param.name) {
            return Err(format!("uses the parameter name {:?} twice", param.name));
        }
        if param.convertor == Convertor::Path {
            if !last {
                return Err(format!("{{{}:path}} must be the last segment", param.name));
            }
            router_key.push_str(&format!("{{*p{}}}", params.len()));
        } else {
            router_key.push_str(&format!("{{p{}}}", params.len()));
        }
        params.push(param);
    }
    Ok(Pattern {
        source: source.to_owned(),
        router_key,
        params,
    })
}

fn parse_param(segment: &str) -> Result<Param, String> {
    let inner = segment
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .filter(|s| !s.contains(['{', '}']))
        .ok_or_else(|| {
            format!("segment {segment:?} must be a whole parameter like {{name}} or plain text without braces")
        })?;
    let (name, convertor) = match inner.split_once(':') {
        Some((name, conv)) => {
            let convertor = Convertor::parse(conv).ok_or_else(|| {
                format!("parameter {name:?} has unknown convertor {conv:?} (expected str, int, float, uuid or path)")
            })?;
            (name, convertor)
        }
        None => (inner, Convertor::Str),
    };
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric());
    if !valid {
        return Err(format!(
            "parameter name {name:?} must be an identifier (letters, digits, '_')"
        ));
    }
    Ok(Param {
        name: name.to_owned(),
        convertor,
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn escaped_byte(bytes: &[u8], i: usize) -> Option<u8> {
    if bytes.get(i) != Some(&b'%') {
        return None;
    }
    Some(hex(*bytes.get(i + 1)?)? << 4 | hex(*bytes.get(i + 2)?)?)
}

/// Percent-decodes a request path for matching. Escapes of `/` and `%` stay
/// escaped (as `%2F`, `%25`) so that they cannot split or forge segments;
/// [`decode_param`] finishes them inside a parameter value. `None` when the
/// decoded path is not UTF-8.
pub fn canonical_path(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('%') {
        return Some(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match escaped_byte(bytes, i) {
            Some(b'/') => out.extend_from_slice(b"%2F"),
            Some(b'%') => out.extend_from_slice(b"%25"),
            Some(b) => out.push(b),
            None => {
                out.push(bytes[i]);
                i += 1;
                continue;
            }
        }
        i += 3;
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// Decodes what [`canonical_path`] left escaped in a matched parameter.
pub fn decode_param(value: &str) -> Cow<'_, str> {
    if !value.contains('%') {
        return Cow::Borrowed(value);
    }
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    while i < bytes.len() {
        match escaped_byte(bytes, i) {
            Some(b @ (b'/' | b'%')) => {
                out.push(b as char);
                i += 3;
            }
            _ => {
                let ch_len = value[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&value[i..i + ch_len]);
                i += ch_len;
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_params_and_positional_router_keys() {
        let p = parse("/users/{id:int}/files/{rest:path}").unwrap();
        assert_eq!(p.router_key, "/users/{p0}/files/{*p1}");
        assert_eq!(
            p.params,
            vec![
                Param {
                    name: "id".into(),
                    convertor: Convertor::Int
                },
                Param {
                    name: "rest".into(),
                    convertor: Convertor::Path
                },
            ]
        );
        assert_eq!(parse("/").unwrap().router_key, "/");
        assert_eq!(parse("/a/").unwrap().router_key, "/a/");
        assert_eq!(parse("/café").unwrap().router_key, "/café");
    }

    #[test]
    fn rejects_malformed_patterns_with_a_reason() {
        let cases = [
            ("", "must start with '/'"),
            ("users", "must start with '/'"),
            ("/a?b", "'?'"),
            ("/a b", "' '"),
            ("/a\r\n", "'\\r'"),
            ("/a%20", "'%'"),
            ("/a//b", "empty segment"),
            ("/{id", "whole parameter"),
            ("/x{id}", "whole parameter"),
            ("/{id}}", "whole parameter"),
            ("/{}", "identifier"),
            ("/{1x}", "identifier"),
            ("/{id:number}", "unknown convertor"),
            ("/{id}/{id}", "twice"),
            ("/{p:path}/x", "last segment"),
        ];
        for (pattern, reason) in cases {
            let err = parse(pattern).unwrap_err();
            assert!(err.contains(reason), "{pattern:?}: {err}");
        }
    }

    #[test]
    fn convertors_accept_only_their_shape() {
        assert!(Convertor::Int.accepts("42"));
        assert!(!Convertor::Int.accepts("-1"));
        assert!(!Convertor::Int.accepts("4x"));
        assert!(!Convertor::Int.accepts(""));
        assert!(Convertor::Float.accepts("1.5"));
        assert!(Convertor::Float.accepts("7"));
        assert!(!Convertor::Float.accepts("1."));
        assert!(!Convertor::Float.accepts("nan"));
        assert!(Convertor::Uuid.accepts("123e4567-e89b-12d3-a456-426614174000"));
        assert!(!Convertor::Uuid.accepts("123e4567e89b12d3a456426614174000"));
        assert!(Convertor::Str.accepts("anything"));
    }

    #[test]
    fn canonical_path_decodes_all_but_slash_and_percent() {
        assert!(matches!(
            canonical_path("/plain"),
            Some(Cow::Borrowed("/plain"))
        ));
        assert_eq!(canonical_path("/caf%C3%A9").unwrap(), "/café");
        assert_eq!(canonical_path("/caf%c3%a9").unwrap(), "/café");
        assert_eq!(canonical_path("/a%2fb").unwrap(), "/a%2Fb");
        assert_eq!(canonical_path("/a%252F").unwrap(), "/a%252F");
        assert_eq!(canonical_path("/100%").unwrap(), "/100%");
        assert_eq!(canonical_path("/%zz").unwrap(), "/%zz");
        assert_eq!(canonical_path("/%ff"), None);
    }

    #[test]
    fn decode_param_finishes_the_job() {
        assert_eq!(decode_param("a%2Fb"), "a/b");
        assert_eq!(decode_param("%252F"), "%2F");
        assert_eq!(decode_param("100%"), "100%");
        assert_eq!(decode_param("café%2F"), "café/");
    }
}
