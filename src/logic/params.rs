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
    /// `zone=NAME[:SIZE]`: the shared table's zone; `None` for the upstream's own zone.
    pub zone: Option<Zone>,
    /// `timeout=TIME`: idle expiry of a learned session, in whole seconds.
    pub timeout: u32,
    /// `route=REGEX`: the first capture group, applied to the session id, is a route label.
    pub route: Option<Pattern>,
    /// `cookie=NAME` and its `cookie_*` attributes: the route cookie nginx issues.
    pub cookie: Option<Cookie>,
    /// `strict`: a request of a session whose server is out fails (502) instead of going to
    /// another server.
    pub strict: bool,
    /// `balance=`: where requests without a usable key go.
    pub balance: Balance,
    /// `state=PATH`: the session table lives in this file, which outlives the master process
    /// (binary upgrade, restart).
    pub state: Option<Vec<u8>>,
    /// `sid_prefix`: nginx puts the tag of the server that minted a session id in front of
    /// it, and routes and strips the tag on the way in.
    pub sid_prefix: bool,
}

/// `balance=round_robin|least_conn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// nginx's weighted round robin (the default).
    #[default]
    RoundRobin,
    /// The fewest active connections relative to the weight.
    LeastConn,
}

/// The route cookie: `cookie=NAME` with `cookie_path=`, `cookie_domain=`, `cookie_max_age=`,
/// `cookie_secure`, `cookie_httponly`, `cookie_samesite=` and `cookie_key=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub name: Vec<u8>,
    /// `Path`, default `/`.
    pub path: Vec<u8>,
    pub domain: Option<Vec<u8>>,
    /// `Max-Age` in seconds; none for a session cookie (the default).
    pub max_age: Option<u32>,
    pub secure: bool,
    /// Default on.
    pub httponly: bool,
    pub samesite: Option<SameSite>,
    /// The secret the peer ids are keyed with (the same on every node).
    pub key: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// A compiled regex that compares by its pattern.
#[derive(Debug, Clone)]
pub struct Pattern(pub Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// A named zone and its size in bytes (`None` when another upstream gives the size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub name: Vec<u8>,
    pub size: Option<usize>,
}

/// Size of the zone an upstream gets when `zone=` is not given.
pub const DEFAULT_ZONE_SIZE: usize = 4 * 1024 * 1024;
/// Smallest zone accepted (eight 4 KiB pages, as nginx's own zones require).
pub const MIN_ZONE_SIZE: usize = 32 * 1024;
/// Idle expiry when `timeout=` is not given: 10 minutes.
pub const DEFAULT_TIMEOUT: u32 = 600;

impl Default for Params {
    fn default() -> Self {
        Params {
            sid: vec![
                Source::Arg(b"sid".to_vec()),
                Source::Cookie(b"io".to_vec()),
                Source::Path,
            ],
            device_id: vec![Source::Arg(b"device_id".to_vec())],
            zone: None,
            timeout: DEFAULT_TIMEOUT,
            route: None,
            cookie: None,
            strict: false,
            balance: Balance::RoundRobin,
            state: None,
            sid_prefix: false,
        }
    }
}

/// A configuration error, displayed after `"socketio_sticky" directive `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    Unknown(String),
    Duplicate(String),
    EmptyList(String),
    BadSource {
        param: String,
        source: String,
    },
    BadRegex {
        param: String,
        reason: String,
    },
    NoCaptureGroup(String),
    BadZone(String),
    BadZoneSize(String),
    ZoneTooSmall(String),
    BadTimeout(String),
    BadCookieName(String),
    /// A `cookie_*` parameter with a value it does not accept (the whole parameter).
    BadCookieValue(String),
    /// A `cookie_*` parameter without `cookie=`.
    CookieAttrWithoutCookie(String),
    SameSiteNoneWithoutSecure,
    BadBalance(String),
    /// `state=` with an empty path.
    EmptyState,
    /// `cookie=NAME` names a cookie the session id is read from.
    CookieIsSidCookie(String),
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
            ParamError::BadZone(z) => write!(f, "has invalid zone \"{z}\""),
            ParamError::BadZoneSize(z) => write!(f, "has invalid zone size \"{z}\""),
            ParamError::ZoneTooSmall(z) => write!(
                f,
                "has zone \"{z}\" that is too small, the minimum is {}k",
                MIN_ZONE_SIZE / 1024
            ),
            ParamError::BadTimeout(t) => write!(f, "has invalid timeout \"{t}\""),
            ParamError::BadBalance(b) => write!(
                f,
                "has invalid balance \"{b}\", expected round_robin or least_conn"
            ),
            ParamError::EmptyState => write!(f, "has an empty path in \"state=\""),
            ParamError::CookieIsSidCookie(name) => write!(
                f,
                "has \"cookie={name}\", the cookie the session id is read from (\"cookie:{name}\" \
                 of \"sid=\"): the route cookie needs a name of its own"
            ),
            ParamError::BadCookieName(n) => write!(f, "has invalid cookie name \"{n}\""),
            ParamError::BadCookieValue(p) => write!(f, "has invalid value in \"{p}\""),
            ParamError::CookieAttrWithoutCookie(p) => {
                write!(f, "has \"{p}\" without \"cookie=\"")
            }
            ParamError::SameSiteNoneWithoutSecure => write!(
                f,
                "has \"cookie_samesite=none\" without \"cookie_secure\" (browsers reject such \
                 cookies)"
            ),
        }
    }
}

/// Parses the directive's arguments (without the directive name).
pub fn parse(args: &[&[u8]]) -> Result<Params, ParamError> {
    let mut params = Params::default();
    let mut seen_sid = false;
    let mut seen_device = false;
    let mut seen_zone = false;
    let mut seen_timeout = false;
    let mut seen_route = false;
    let mut seen_strict = false;
    let mut seen_balance = false;
    let mut seen_state = false;
    let mut seen_prefix = false;
    let mut cookie = CookieParts::default();

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
            (b"zone", Some(v)) => {
                mark(&mut seen_zone, "zone")?;
                params.zone = Some(parse_zone(v)?);
            }
            (b"timeout", Some(v)) => {
                mark(&mut seen_timeout, "timeout")?;
                let shown = String::from_utf8_lossy(v).into_owned();
                params.timeout = parse_time(v)
                    .filter(|&s| s > 0)
                    .ok_or(ParamError::BadTimeout(shown))?;
            }
            (b"route", Some(v)) => {
                mark(&mut seen_route, "route")?;
                params.route = Some(Pattern(compile_capture_regex(&shown, v)?));
            }
            (b"strict", None) => {
                mark(&mut seen_strict, "strict")?;
                params.strict = true;
            }
            (b"sid_prefix", None) => {
                mark(&mut seen_prefix, "sid_prefix")?;
                params.sid_prefix = true;
            }
            (b"balance", Some(v)) => {
                mark(&mut seen_balance, "balance")?;
                params.balance = match v {
                    b"round_robin" => Balance::RoundRobin,
                    b"least_conn" => Balance::LeastConn,
                    _ => return Err(ParamError::BadBalance(lossy(v))),
                };
            }
            (b"state", Some(v)) => {
                mark(&mut seen_state, "state")?;
                if v.is_empty() {
                    return Err(ParamError::EmptyState);
                }
                params.state = Some(v.to_vec());
            }
            _ if name.starts_with(b"cookie") => cookie.take(name, value, &shown)?,
            _ => return Err(ParamError::Unknown(shown)),
        }
    }
    params.cookie = cookie.finish()?;
    // The route cookie would overwrite the cookie the backends mint the session id in.
    if let Some(c) = &params.cookie {
        let sid_cookie = params.sid.iter().any(|s| match s {
            Source::Cookie(n) => n.eq_ignore_ascii_case(&c.name),
            _ => false,
        });
        if sid_cookie {
            return Err(ParamError::CookieIsSidCookie(lossy(&c.name)));
        }
    }
    Ok(params)
}

/// The `cookie=` and `cookie_*` parameters as they are met, checked together at the end.
#[derive(Default)]
struct CookieParts {
    /// Each parameter as written, for the error of an attribute without `cookie=`.
    seen: Vec<(&'static str, String)>,
    cookie: Option<Cookie>,
    path: Option<Vec<u8>>,
    domain: Option<Vec<u8>>,
    max_age: Option<u32>,
    secure: Option<bool>,
    httponly: Option<bool>,
    samesite: Option<SameSite>,
    key: Option<Vec<u8>>,
}

impl CookieParts {
    fn take(&mut self, name: &[u8], value: Option<&[u8]>, shown: &str) -> Result<(), ParamError> {
        let bad = || ParamError::BadCookieValue(shown.to_string());
        let label: &'static str = match name {
            b"cookie" => "cookie",
            b"cookie_path" => "cookie_path",
            b"cookie_domain" => "cookie_domain",
            b"cookie_max_age" => "cookie_max_age",
            b"cookie_secure" => "cookie_secure",
            b"cookie_httponly" => "cookie_httponly",
            b"cookie_samesite" => "cookie_samesite",
            b"cookie_key" => "cookie_key",
            _ => return Err(ParamError::Unknown(shown.to_string())),
        };
        if self.seen.iter().any(|(l, _)| *l == label) {
            return Err(ParamError::Duplicate(label.to_string()));
        }
        self.seen.push((label, shown.to_string()));
        match (label, value) {
            ("cookie", Some(v)) => {
                if !cookie_name_ok(v) {
                    return Err(ParamError::BadCookieName(lossy(v)));
                }
                self.cookie = Some(Cookie {
                    name: v.to_vec(),
                    path: b"/".to_vec(),
                    domain: None,
                    max_age: None,
                    secure: false,
                    httponly: true,
                    samesite: None,
                    key: None,
                });
            }
            ("cookie_path", Some(v)) => {
                let ok = v.first() == Some(&b'/') && v.iter().all(|&c| attr_char(c));
                self.path = Some(ok.then(|| v.to_vec()).ok_or_else(bad)?);
            }
            ("cookie_domain", Some(v)) => {
                let host = v.strip_prefix(b".").unwrap_or(v);
                let ok = !host.is_empty()
                    && host
                        .iter()
                        .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
                self.domain = Some(ok.then(|| v.to_vec()).ok_or_else(bad)?);
            }
            ("cookie_max_age", Some(v)) => {
                self.max_age = Some(parse_time(v).filter(|&s| s > 0).ok_or_else(bad)?);
            }
            ("cookie_secure", v) => self.secure = Some(on_off(v).ok_or_else(bad)?),
            ("cookie_httponly", v) => self.httponly = Some(on_off(v).ok_or_else(bad)?),
            ("cookie_samesite", Some(v)) => {
                self.samesite = Some(match v.to_ascii_lowercase().as_slice() {
                    b"strict" => SameSite::Strict,
                    b"lax" => SameSite::Lax,
                    b"none" => SameSite::None,
                    _ => return Err(bad()),
                });
            }
            ("cookie_key", Some(v)) => {
                if v.is_empty() {
                    return Err(bad());
                }
                self.key = Some(v.to_vec());
            }
            // `cookie`, `cookie_path`, ... without a value.
            _ => return Err(ParamError::Unknown(shown.to_string())),
        }
        Ok(())
    }

    fn finish(self) -> Result<Option<Cookie>, ParamError> {
        let Some(mut c) = self.cookie else {
            return match self.seen.into_iter().next() {
                Some((_, shown)) => Err(ParamError::CookieAttrWithoutCookie(shown)),
                None => Ok(None),
            };
        };
        if let Some(p) = self.path {
            c.path = p;
        }
        c.domain = self.domain;
        c.max_age = self.max_age;
        c.secure = self.secure.unwrap_or(false);
        c.httponly = self.httponly.unwrap_or(true);
        c.samesite = self.samesite;
        c.key = self.key;
        if c.samesite == Some(SameSite::None) && !c.secure {
            return Err(ParamError::SameSiteNoneWithoutSecure);
        }
        Ok(Some(c))
    }
}

/// A cookie name is an RFC 6265 token: visible ASCII without separators.
fn cookie_name_ok(n: &[u8]) -> bool {
    !n.is_empty()
        && n.iter()
            .all(|&c| c.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&c))
}

/// A byte allowed in a `Path` attribute value: visible ASCII except `;` (RFC 6265).
fn attr_char(c: u8) -> bool {
    c.is_ascii_graphic() && c != b';'
}

/// A flag: bare (on), `=on` or `=off`.
fn on_off(v: Option<&[u8]>) -> Option<bool> {
    match v {
        None | Some(b"on") => Some(true),
        Some(b"off") => Some(false),
        _ => None,
    }
}

fn mark(seen: &mut bool, name: &str) -> Result<(), ParamError> {
    if *seen {
        return Err(ParamError::Duplicate(name.to_string()));
    }
    *seen = true;
    Ok(())
}

/// `NAME[:SIZE]`.
fn parse_zone(v: &[u8]) -> Result<Zone, ParamError> {
    let shown = String::from_utf8_lossy(v).into_owned();
    let (name, size) = match v.iter().position(|&c| c == b':') {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    if name.is_empty()
        || name
            .iter()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err(ParamError::BadZone(shown));
    }
    let size = match size {
        None => None,
        Some(s) => {
            let bytes = parse_size(s).ok_or_else(|| ParamError::BadZoneSize(lossy(s)))?;
            if bytes < MIN_ZONE_SIZE {
                return Err(ParamError::ZoneTooSmall(lossy(name)));
            }
            Some(bytes)
        }
    };
    Ok(Zone {
        name: name.to_vec(),
        size,
    })
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// nginx's size syntax: digits with an optional `k`/`K`, `m`/`M` or `g`/`G` suffix.
pub fn parse_size(s: &[u8]) -> Option<usize> {
    let (digits, scale) = match s.last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1usize << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    decimal(digits)?.checked_mul(scale)
}

/// nginx's time syntax in seconds, rounded up: a sequence of numbers with units `ms`, `s`,
/// `m`, `h`, `d`, `w`, `M` (30 days), `y` (365 days), each unit at most once and in
/// decreasing order; a bare number is seconds (`1h30m`, `90`, `500ms`).
pub fn parse_time(s: &[u8]) -> Option<u32> {
    // Units in decreasing order with their length in milliseconds.
    const UNITS: [(&[u8], u64); 8] = [
        (b"y", 365 * 86_400_000),
        (b"M", 30 * 86_400_000),
        (b"w", 7 * 86_400_000),
        (b"d", 86_400_000),
        (b"h", 3_600_000),
        (b"ms", 1),
        (b"m", 60_000),
        (b"s", 1000),
    ];
    // Order rank of each unit for the "decreasing" rule (ms is the smallest).
    const RANK: [u8; 8] = [7, 6, 5, 4, 3, 0, 2, 1];
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut last_rank = u8::MAX;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let value = decimal(&rest[..n])? as u64;
        rest = &rest[n..];
        let (len, ms, rank) = if rest.is_empty() {
            // A bare trailing number is seconds, allowed only alone or after larger units.
            (0, 1000, 1)
        } else {
            let i = UNITS.iter().position(|(u, _)| rest.starts_with(u))?;
            (UNITS[i].0.len(), UNITS[i].1, RANK[i])
        };
        if rank >= last_rank {
            return None;
        }
        last_rank = rank;
        total = total.checked_add(value.checked_mul(ms)?)?;
        rest = &rest[len..];
    }
    u32::try_from(total.div_ceil(1000)).ok()
}

fn decimal(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0usize, |acc, &d| {
        acc.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    })
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
        return compile_capture_regex(param, pattern).map(Source::Uri);
    }
    Err(bad())
}

fn compile_capture_regex(param: &str, pattern: &[u8]) -> Result<Regex, ParamError> {
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

#[cfg(test)]
mod tests {
    use super::super::extract::first_capture;
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
    fn zone_and_timeout() {
        let d = p(&[]).unwrap();
        assert_eq!(d.zone, None);
        assert_eq!(d.timeout, 600);
        let z = p(&["zone=chat:10m", "timeout=1h30m"]).unwrap();
        assert_eq!(
            z.zone,
            Some(Zone {
                name: b"chat".to_vec(),
                size: Some(10 << 20)
            })
        );
        assert_eq!(z.timeout, 5400);
        assert_eq!(p(&["zone=shared"]).unwrap().zone.unwrap().size, None);
        assert_eq!(p(&["timeout=500ms"]).unwrap().timeout, 1);
        assert_eq!(p(&["timeout=90"]).unwrap().timeout, 90);
        assert_eq!(p(&["timeout=1d"]).unwrap().timeout, 86_400);
        assert_eq!(p(&["zone=a:32k"]).unwrap().zone.unwrap().size, Some(32768));

        let err = |a: &str| p(&[a]).unwrap_err().to_string();
        assert_eq!(err("zone=:1m"), "has invalid zone \":1m\"");
        assert_eq!(err("zone=a:1x"), "has invalid zone size \"1x\"");
        assert_eq!(err("zone=a:"), "has invalid zone size \"\"");
        assert_eq!(
            err("zone=a:1k"),
            "has zone \"a\" that is too small, the minimum is 32k"
        );
        for bad in [
            "timeout=",
            "timeout=0",
            "timeout=x",
            "timeout=5m1h",
            "timeout=1s1s",
            "timeout=10q",
            "timeout=99999999999d",
        ] {
            assert!(err(bad).starts_with("has invalid timeout"), "{bad}");
        }
        assert_eq!(
            p(&["zone=a:1m", "zone=b:1m"]).unwrap_err(),
            ParamError::Duplicate("zone".into())
        );
    }

    #[test]
    fn state_file() {
        let err = |a: &str| p(&[a]).unwrap_err().to_string();
        assert_eq!(p(&[]).unwrap().state, None);
        let s = p(&["zone=chat:1m", "state=/var/lib/nginx/chat.sticky"]).unwrap();
        assert_eq!(s.state.as_deref(), Some(&b"/var/lib/nginx/chat.sticky"[..]));
        assert_eq!(err("state="), "has an empty path in \"state=\"");
        assert_eq!(
            p(&["state=a", "state=b"]).unwrap_err(),
            ParamError::Duplicate("state".into())
        );
        assert_eq!(err("state"), "has unknown parameter \"state\"");
    }

    #[test]
    fn sizes_and_times() {
        assert_eq!(parse_size(b"4m"), Some(4 << 20));
        assert_eq!(parse_size(b"512K"), Some(512 << 10));
        assert_eq!(parse_size(b"1g"), Some(1 << 30));
        assert_eq!(parse_size(b"100"), Some(100));
        assert_eq!(parse_size(b"m"), None);
        assert_eq!(parse_size(b"-1m"), None);
        assert_eq!(parse_size(b"99999999999999999999999g"), None);
        assert_eq!(parse_time(b"10m"), Some(600));
        assert_eq!(parse_time(b"1h1m1s"), Some(3661));
        assert_eq!(parse_time(b"1s500ms"), Some(2));
        assert_eq!(parse_time(b"1M"), Some(30 * 86_400));
        assert_eq!(parse_time(b"1y"), Some(365 * 86_400));
        assert_eq!(parse_time(b"1m30"), Some(90));
        assert_eq!(parse_time(b"30 s"), None);
    }

    #[test]
    fn route_cookie_is_not_a_sid_cookie() {
        let err = |a: &[&str]| p(a).unwrap_err().to_string();
        assert_eq!(
            err(&["cookie=io"]),
            "has \"cookie=io\", the cookie the session id is read from (\"cookie:io\" of \
             \"sid=\"): the route cookie needs a name of its own"
        );
        assert_eq!(
            p(&["cookie=IO"]),
            Err(ParamError::CookieIsSidCookie("IO".into()))
        );
        assert_eq!(
            p(&["sid=arg:sid,cookie:engine", "cookie=engine"]),
            Err(ParamError::CookieIsSidCookie("engine".into()))
        );
        // Without a cookie: source of that name, the name is free.
        assert!(p(&["sid=arg:sid", "cookie=io"]).is_ok());
        assert!(p(&["cookie=srv"]).is_ok());
    }

    #[test]
    fn route_regex() {
        let r = p(&["route=^(b[0-9]+)-"]).unwrap();
        let re = &r.route.as_ref().unwrap().0;
        assert_eq!(first_capture(re, b"b2-AbCdEf"), Some(&b"b2"[..]));
        assert_eq!(first_capture(re, b"AbCdEf"), None);
        assert_eq!(
            p(&["route=^b[0-9]+-"]),
            Err(ParamError::NoCaptureGroup("route=^b[0-9]+-".into()))
        );
        assert!(matches!(p(&["route=("]), Err(ParamError::BadRegex { .. })));
        assert_eq!(
            p(&["route=(.)", "route=(.)"]),
            Err(ParamError::Duplicate("route".into()))
        );
        assert_eq!(p(&[]).unwrap().route, None);
    }

    #[test]
    fn sid_prefix_is_a_flag() {
        assert!(!p(&[]).unwrap().sid_prefix);
        assert!(p(&["sid_prefix"]).unwrap().sid_prefix);
        let err = |a: &[&str]| p(a).unwrap_err().to_string();
        assert_eq!(
            err(&["sid_prefix=on"]),
            "has unknown parameter \"sid_prefix=on\""
        );
        assert_eq!(
            err(&["sid_prefix", "sid_prefix"]),
            "has parameter \"sid_prefix\" twice"
        );
    }

    #[test]
    fn strict_and_balance() {
        let d = p(&[]).unwrap();
        assert!(!d.strict);
        assert_eq!(d.balance, Balance::RoundRobin);
        let d = p(&["strict", "balance=least_conn"]).unwrap();
        assert!(d.strict);
        assert_eq!(d.balance, Balance::LeastConn);
        assert_eq!(
            p(&["balance=round_robin"]).unwrap().balance,
            Balance::RoundRobin
        );
        let err = |a: &[&str]| p(a).unwrap_err().to_string();
        assert_eq!(
            err(&["balance=random"]),
            "has invalid balance \"random\", expected round_robin or least_conn"
        );
        assert_eq!(err(&["strict=on"]), "has unknown parameter \"strict=on\"");
        assert_eq!(err(&["strict", "strict"]), "has parameter \"strict\" twice");
        assert_eq!(
            err(&["balance=least_conn", "balance=least_conn"]),
            "has parameter \"balance\" twice"
        );
    }

    #[test]
    fn cookie_params() {
        assert_eq!(p(&[]).unwrap().cookie, None);
        let c = p(&["cookie=route"]).unwrap().cookie.unwrap();
        assert_eq!(c.name, b"route");
        assert_eq!(c.path, b"/");
        assert!(c.httponly && !c.secure);
        assert_eq!(
            (c.domain, c.max_age, c.samesite, c.key),
            (None, None, None, None)
        );
        let c = p(&[
            "cookie_key=k3y",
            "cookie=srv_id",
            "cookie_path=/socket.io/",
            "cookie_domain=.example.com",
            "cookie_max_age=1h",
            "cookie_secure",
            "cookie_httponly=off",
            "cookie_samesite=None",
        ])
        .unwrap()
        .cookie
        .unwrap();
        assert_eq!(c.name, b"srv_id");
        assert_eq!(c.path, b"/socket.io/");
        assert_eq!(c.domain.as_deref(), Some(&b".example.com"[..]));
        assert_eq!(c.max_age, Some(3600));
        assert!(c.secure && !c.httponly);
        assert_eq!(c.samesite, Some(SameSite::None));
        assert_eq!(c.key.as_deref(), Some(&b"k3y"[..]));
        let c = p(&[
            "cookie=r",
            "cookie_secure=off",
            "cookie_httponly=on",
            "cookie_samesite=lax",
        ])
        .unwrap()
        .cookie
        .unwrap();
        assert!(!c.secure && c.httponly);
        assert_eq!(c.samesite, Some(SameSite::Lax));
    }

    #[test]
    fn bad_cookie_params() {
        let err = |a: &[&str]| p(a).unwrap_err().to_string();
        assert_eq!(err(&["cookie=a;b"]), "has invalid cookie name \"a;b\"");
        assert_eq!(err(&["cookie="]), "has invalid cookie name \"\"");
        assert_eq!(err(&["cookie=a=b"]), "has invalid cookie name \"a=b\"");
        assert_eq!(err(&["cookie"]), "has unknown parameter \"cookie\"");
        assert_eq!(
            err(&["cookie_path=/x"]),
            "has \"cookie_path=/x\" without \"cookie=\""
        );
        assert_eq!(
            err(&["cookie_secure"]),
            "has \"cookie_secure\" without \"cookie=\""
        );
        for bad in [
            "cookie_path=x",
            "cookie_path=/a;b",
            "cookie_path=/a b",
            "cookie_domain=",
            "cookie_domain=a;b",
            "cookie_domain=.",
            "cookie_max_age=0",
            "cookie_max_age=1x",
            "cookie_secure=yes",
            "cookie_httponly=",
            "cookie_samesite=sometimes",
            "cookie_key=",
        ] {
            assert_eq!(
                err(&["cookie=r", bad]),
                format!("has invalid value in \"{bad}\""),
                "{bad}"
            );
        }
        assert_eq!(
            err(&["cookie=r", "cookie_samesite=none"]),
            "has \"cookie_samesite=none\" without \"cookie_secure\" (browsers reject such cookies)"
        );
        assert_eq!(
            err(&["cookie=r", "cookie=s"]),
            "has parameter \"cookie\" twice"
        );
        assert_eq!(
            err(&["cookie=r", "cookie_path=/", "cookie_path=/a"]),
            "has parameter \"cookie_path\" twice"
        );
        assert_eq!(err(&["cookies=r"]), "has unknown parameter \"cookies=r\"");
    }

    #[test]
    fn uri_capture_matches_raw_bytes() {
        let d = p(&["device_id=uri:^/dev/([^/]+)"]).unwrap();
        let Source::Uri(re) = &d.device_id[0] else {
            panic!()
        };
        assert_eq!(first_capture(re, b"/dev/abc/x"), Some(&b"abc"[..]));
        assert_eq!(first_capture(re, b"/dev/\xff\xfe"), Some(&b"\xff\xfe"[..]));
        assert_eq!(first_capture(re, b"/other"), None);
        let d = p(&["device_id=uri:^/dev/([0-9]*)"]).unwrap();
        let Source::Uri(re) = &d.device_id[0] else {
            panic!()
        };
        assert_eq!(first_capture(re, b"/dev/x"), None);
    }
}
