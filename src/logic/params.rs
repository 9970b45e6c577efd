//! Parsing the parameters of the `socketio_sticky` directive.
//!
//! Every parameter is `name=value` or a bare flag `name`, so later parameters (`zone=`,
//! `timeout=`, `route=`, ...) slot in as new arms of [`parse`]. Errors are worded to follow
//! nginx's `"socketio_sticky" directive ...` prefix.

use core::fmt;

use regex::bytes::{Regex, RegexBuilder};

/// Where a key value is looked for.
#[derive(Debug, Clone)]
pub enum Source {
    /// `arg:NAME`: a query argument.
    Arg(Vec<u8>),
    /// `cookie:NAME`: a cookie of the `Cookie` request header(s).
    Cookie(Vec<u8>),
    /// `header:NAME`: a request header.
    Header(Vec<u8>),
    /// `path`: the session id of a Socket.IO 0.9 path `/<resource>/1/<transport>/<sid>`.
    Path,
    /// `uri:REGEX`: the first capture group of REGEX applied to the (decoded) request URI.
    Uri(Regex),
    /// `$name`: an nginx variable.
    Variable(Vec<u8>),
}

impl PartialEq for Source {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Source::Arg(a), Source::Arg(b))
            | (Source::Cookie(a), Source::Cookie(b))
            | (Source::Header(a), Source::Header(b))
            | (Source::Variable(a), Source::Variable(b)) => a == b,
            (Source::Path, Source::Path) => true,
            (Source::Uri(a), Source::Uri(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// The parsed directive.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Sources of the Socket.IO session id, tried in order.
    pub sid: Vec<Source>,
    /// Sources of the application's device id, tried in order.
    pub device_id: Vec<Source>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            sid: vec![
                Source::Arg(b"sid".to_vec()),
                Source::Cookie(b"io".to_vec()),
                Source::Path,
            ],
            device_id: vec![Source::Arg(b"device_id".to_vec())],
        }
    }
}

/// A configuration error, displayed after `"socketio_sticky" directive `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    Unknown(String),
    Duplicate(String),
    EmptyList(String),
    BadSource { param: String, source: String },
    BadRegex { param: String, reason: String },
    NoCaptureGroup(String),
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::Unknown(p) => write!(f, "has unknown parameter \"{p}\""),
            ParamError::Duplicate(p) => write!(f, "has parameter \"{p}\" twice"),
            ParamError::EmptyList(p) => write!(f, "has no sources in \"{p}\""),
            ParamError::BadSource { param, source } => write!(
                f,
                "has invalid source \"{source}\" in \"{param}\", expected arg:NAME, \
                 cookie:NAME, header:NAME, path, uri:REGEX or $variable"
            ),
            ParamError::BadRegex { param, reason } => {
                write!(f, "has invalid regex in \"{param}\": {reason}")
            }
            ParamError::NoCaptureGroup(p) => {
                write!(f, "has a regex without a capture group in \"{p}\"")
            }
        }
    }
}

/// Parses the directive's arguments (without the directive name).
pub fn parse(args: &[&[u8]]) -> Result<Params, ParamError> {
    let mut params = Params::default();
    let mut seen_sid = false;
    let mut seen_device = false;

    for &arg in args {
        let shown = String::from_utf8_lossy(arg).into_owned();
        let (name, value) = match arg.iter().position(|&c| c == b'=') {
            Some(i) => (&arg[..i], Some(&arg[i + 1..])),
            None => (arg, None),
        };
        match (name, value) {
            (b"sid", Some(v)) => {
                mark(&mut seen_sid, "sid")?;
                params.sid = parse_sources(&shown, v)?;
            }
            (b"device_id", Some(v)) => {
                mark(&mut seen_device, "device_id")?;
                params.device_id = parse_sources(&shown, v)?;
            }
            _ => return Err(ParamError::Unknown(shown)),
        }
    }
    Ok(params)
}

fn mark(seen: &mut bool, name: &str) -> Result<(), ParamError> {
    if *seen {
        return Err(ParamError::Duplicate(name.to_string()));
    }
    *seen = true;
    Ok(())
}

const PREFIXES: [&[u8]; 6] = [b"arg:", b"cookie:", b"header:", b"path", b"uri:", b"$"];

/// Splits a source list on commas. A comma belongs to a `uri:` regex unless the text after it
/// starts another source, so `uri:^/a{1,3}/(.+)$,arg:sid` is two sources.
fn split_sources(list: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut in_regex = list.starts_with(b"uri:");
    for (i, &c) in list.iter().enumerate() {
        if c != b',' {
            continue;
        }
        let rest = &list[i + 1..];
        let starts_source = PREFIXES.iter().any(|p| rest.starts_with(p)) || rest.is_empty();
        if in_regex && !starts_source {
            continue;
        }
        out.push(&list[start..i]);
        start = i + 1;
        in_regex = rest.starts_with(b"uri:");
    }
    out.push(&list[start..]);
    out
}

fn parse_sources(param: &str, list: &[u8]) -> Result<Vec<Source>, ParamError> {
    if list.is_empty() {
        return Err(ParamError::EmptyList(param.to_string()));
    }
    split_sources(list)
        .into_iter()
        .map(|s| parse_source(param, s))
        .collect()
}

fn parse_source(param: &str, s: &[u8]) -> Result<Source, ParamError> {
    let bad = || ParamError::BadSource {
        param: param.to_string(),
        source: String::from_utf8_lossy(s).into_owned(),
    };
    let name_ok = |n: &[u8], forbidden: &[u8]| {
        !n.is_empty()
            && n.iter()
                .all(|c| c.is_ascii_graphic() && !forbidden.contains(c))
    };

    if s == b"path" {
        return Ok(Source::Path);
    }
    if let Some(n) = s.strip_prefix(b"arg:") {
        return name_ok(n, b"&=#?")
            .then(|| Source::Arg(n.to_vec()))
            .ok_or_else(bad);
    }
    if let Some(n) = s.strip_prefix(b"cookie:") {
        return name_ok(n, b";=,\"")
            .then(|| Source::Cookie(n.to_vec()))
            .ok_or_else(bad);
    }
    if let Some(n) = s.strip_prefix(b"header:") {
        return name_ok(n, b":()<>@,;\\\"/[]?={}")
            .then(|| Source::Header(n.to_vec()))
            .ok_or_else(bad);
    }
    if let Some(n) = s.strip_prefix(b"$") {
        let ok = !n.is_empty() && n.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
        return ok.then(|| Source::Variable(n.to_vec())).ok_or_else(bad);
    }
    if let Some(pattern) = s.strip_prefix(b"uri:") {
        return compile_uri_regex(param, pattern).map(Source::Uri);
    }
    Err(bad())
}

fn compile_uri_regex(param: &str, pattern: &[u8]) -> Result<Regex, ParamError> {
    let bad = |reason: String| ParamError::BadRegex {
        param: param.to_string(),
        reason,
    };
    let pattern = core::str::from_utf8(pattern).map_err(|_| bad("not UTF-8".to_string()))?;
    if pattern.is_empty() {
        return Err(bad("empty".to_string()));
    }
    let re = RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            bad(e
                .to_string()
                .lines()
                .last()
                .unwrap_or("")
                .trim()
                .to_string())
        })?;
    if re.captures_len() < 2 {
        return Err(ParamError::NoCaptureGroup(param.to_string()));
    }
    Ok(re)
}

/// The first capture group of a `uri:` regex, if it matched and is non-empty.
pub fn uri_capture<'a>(re: &Regex, uri: &'a [u8]) -> Option<&'a [u8]> {
    let m = re.captures(uri)?.get(1)?;
    let v = m.as_bytes();
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Params, ParamError> {
        let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        parse(&v)
    }

    #[test]
    fn defaults() {
        let d = p(&[]).unwrap();
        assert_eq!(
            d.sid,
            vec![
                Source::Arg(b"sid".to_vec()),
                Source::Cookie(b"io".to_vec()),
                Source::Path
            ]
        );
        assert_eq!(d.device_id, vec![Source::Arg(b"device_id".to_vec())]);
    }

    #[test]
    fn every_source_kind_in_order() {
        let d = p(&["device_id=header:X-Device,cookie:dev,$http_x_id,arg:d,path,uri:^/u/(\\d+)$"])
            .unwrap();
        assert_eq!(d.device_id.len(), 6);
        assert_eq!(d.device_id[0], Source::Header(b"X-Device".to_vec()));
        assert_eq!(d.device_id[1], Source::Cookie(b"dev".to_vec()));
        assert_eq!(d.device_id[2], Source::Variable(b"http_x_id".to_vec()));
        assert_eq!(d.device_id[3], Source::Arg(b"d".to_vec()));
        assert_eq!(d.device_id[4], Source::Path);
        match &d.device_id[5] {
            Source::Uri(re) => assert_eq!(re.as_str(), "^/u/(\\d+)$"),
            other => panic!("{other:?}"),
        }
        // sid keeps its default.
        assert_eq!(d.sid.len(), 3);
    }

    #[test]
    fn commas_inside_regex() {
        let d = p(&["sid=uri:^/a{1,3}/(.+)$,arg:sid"]).unwrap();
        assert_eq!(d.sid.len(), 2);
        match &d.sid[0] {
            Source::Uri(re) => assert_eq!(re.as_str(), "^/a{1,3}/(.+)$"),
            other => panic!("{other:?}"),
        }
        assert_eq!(d.sid[1], Source::Arg(b"sid".to_vec()));
        let d = p(&["sid=arg:a,uri:x(y),z{1,2}"]).unwrap();
        assert_eq!(d.sid.len(), 2);
    }

    #[test]
    fn errors_are_specific() {
        assert_eq!(
            p(&["foo=bar"]).unwrap_err(),
            ParamError::Unknown("foo=bar".into())
        );
        assert_eq!(p(&["sid"]).unwrap_err(), ParamError::Unknown("sid".into()));
        assert_eq!(
            p(&["sid=arg:a", "sid=arg:b"]).unwrap_err(),
            ParamError::Duplicate("sid".into())
        );
        assert_eq!(
            p(&["sid="]).unwrap_err(),
            ParamError::EmptyList("sid=".into())
        );
        for bad in [
            "sid=bogus",
            "sid=arg:",
            "sid=cookie:",
            "sid=header:",
            "sid=$",
            "sid=$a-b",
            "sid=arg:a,",
            "sid=,arg:a",
            "sid=paths",
            "sid=arg:a b",
        ] {
            assert!(
                matches!(p(&[bad]).unwrap_err(), ParamError::BadSource { .. }),
                "{bad}"
            );
        }
        assert!(matches!(
            p(&["device_id=uri:("]).unwrap_err(),
            ParamError::BadRegex { .. }
        ));
        assert!(matches!(
            p(&["device_id=uri:"]).unwrap_err(),
            ParamError::BadRegex { .. }
        ));
        assert_eq!(
            p(&["device_id=uri:^/x$"]).unwrap_err(),
            ParamError::NoCaptureGroup("device_id=uri:^/x$".into())
        );
        let raw: &[u8] = b"device_id=uri:\xff(a)";
        assert!(matches!(
            parse(&[raw]).unwrap_err(),
            ParamError::BadRegex { .. }
        ));
    }

    #[test]
    fn error_messages_read_like_nginx() {
        let e = p(&["bogus=1"]).unwrap_err().to_string();
        assert_eq!(e, "has unknown parameter \"bogus=1\"");
        let e = p(&["device_id=uri:("]).unwrap_err().to_string();
        assert!(
            e.starts_with("has invalid regex in \"device_id=uri:(\": "),
            "{e}"
        );
    }

    #[test]
    fn uri_capture_matches_raw_bytes() {
        let d = p(&["device_id=uri:^/dev/([^/]+)"]).unwrap();
        let Source::Uri(re) = &d.device_id[0] else {
            panic!()
        };
        assert_eq!(uri_capture(re, b"/dev/abc/x"), Some(&b"abc"[..]));
        assert_eq!(uri_capture(re, b"/dev/\xff\xfe"), Some(&b"\xff\xfe"[..]));
        assert_eq!(uri_capture(re, b"/other"), None);
        let d = p(&["device_id=uri:^/dev/([0-9]*)"]).unwrap();
        let Source::Uri(re) = &d.device_id[0] else {
            panic!()
        };
        assert_eq!(uri_capture(re, b"/dev/x"), None);
    }
}
