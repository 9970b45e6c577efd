//! What `socketio_sticky_status` shows: a snapshot of every upstream with the module (its
//! table and its servers), the format a request asks for, and the snapshot written as JSON,
//! as the Prometheus text format 0.0.4, or as an HTML page for people.

use core::fmt::Write;

use super::bytes::{split_once, trim};

/// The routes a request can take to its server, in the order of a record's counters
/// (`tally::Record`) and of `Server::requests`. `strict` refusals reach no server: they are
/// counted per upstream (`Upstream::refused`), and a server's `strict` counter stays 0.
pub const ROUTES: [&str; 8] = [
    "learned",
    "device_id",
    "route",
    "cookie",
    "fallback",
    "rebound",
    "strict",
    "prefix",
];

/// Index of `strict` in [`ROUTES`].
pub const STRICT: usize = 6;

/// Index of `prefix` in [`ROUTES`].
pub const PREFIX: usize = 7;

/// Why a handshake's session id was not learned, in the order of the upstream record's first
/// counters.
pub const SKIP_REASONS: [&str; 4] = ["compressed", "unrecognised", "too_long", "not_200"];

/// Indices of [`SKIP_REASONS`].
pub const COMPRESSED: usize = 0;
pub const UNRECOGNISED: usize = 1;
pub const TOO_LONG: usize = 2;
pub const NOT_200: usize = 3;

/// Counter of the upstream record that counts `strict` refusals (after the skip reasons).
pub const REFUSED: usize = 4;

/// Everything a status request shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The module's version (Cargo's package version).
    pub module_version: String,
    /// The running nginx's version ("1.28.3").
    pub nginx_version: String,
    /// The upstreams with `socketio_sticky`, in configuration order.
    pub upstreams: Vec<Upstream>,
}

/// One upstream with `socketio_sticky`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Upstream {
    /// The upstream's name (`upstream NAME {`).
    pub name: String,
    /// Its zone's name; `None` when it has no table (then the table figures are 0).
    pub zone: Option<String>,
    /// Sessions the zone's table holds at most.
    pub capacity: u64,
    /// Sessions in the table now (all of the zone's upstreams).
    pub sessions: u64,
    /// Sessions learned so far (new, or learned again for another server).
    pub learned: u64,
    /// Sessions evicted because the table was full.
    pub evicted: u64,
    /// Of those, sessions that had been used after their handshake.
    pub evicted_in_use: u64,
    /// Sessions forgotten after their idle timeout.
    pub expired: u64,
    /// Session ids minted by two servers while the first was live.
    pub duplicate_ids: u64,
    /// Handshakes whose session id was not learned, by [`SKIP_REASONS`].
    pub learn_skipped: [u64; 4],
    /// Requests refused by `strict` (no server answered them).
    pub refused: u64,
    /// Its servers, in the order of its peer list.
    pub servers: Vec<Server>,
}

/// One server of an upstream (a peer of its list: a `server` line resolved to an address).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Server {
    /// The `server` line's name ("backend1:3000", or the address itself).
    pub name: String,
    /// The address ("10.0.0.5:3000").
    pub address: String,
    /// A `backup` server.
    pub backup: bool,
    /// "up", "down" (marked `down`, or failed now) or "drain".
    pub state: &'static str,
    /// Sessions the table holds for it.
    pub sessions: u64,
    /// Requests sent to it, by [`ROUTES`].
    pub requests: [u64; 8],
}

/// The formats of the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/json`, for programs (and the HTML page's refresh).
    Json,
    /// The Prometheus text format 0.0.4, for scrapers.
    Prometheus,
    /// A page for people.
    Html,
}

/// The format a status request asks for. `format_arg` is the raw value of the query argument
/// `format`: when present it decides alone ("json", "prometheus" or "html", in any case), and
/// any other value gives `None` (the caller answers 400). Without it the `Accept` header
/// decides (RFC 9110 media ranges and q-values); anything it does not settle gives JSON, so
/// the endpoint never answers 406.
pub fn negotiate(format_arg: Option<&[u8]>, accept: Option<&[u8]>) -> Option<Format> {
    if let Some(arg) = format_arg {
        return FORMATS
            .iter()
            .find(|(_, name, _, _)| arg.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(f, _, _, _)| *f);
    }
    Some(accept.map_or(Format::Json, from_accept))
}

/// Each format with its `format` argument value and the media type that asks for it, in the
/// order that breaks ties between equal q-values.
const FORMATS: [(Format, &str, &[u8], &[u8]); 3] = [
    (Format::Json, "json", b"application", b"json"),
    (Format::Prometheus, "prometheus", b"text", b"plain"),
    (Format::Html, "html", b"text", b"html"),
];

/// The format an `Accept` header prefers: the one with the highest q above 0, taken from the
/// most specific range that matches it; JSON when none is acceptable.
fn from_accept(accept: &[u8]) -> Format {
    // Per format: (specificity of the best range so far, its q in thousandths).
    let mut best: [Option<(u8, u16)>; 3] = [None; 3];
    split_unquoted(accept, b',', |part| {
        let Some((ty, sub, q)) = media_range(part) else {
            return;
        };
        for ((_, _, fty, fsub), slot) in FORMATS.iter().zip(best.iter_mut()) {
            let specificity = if ty == b"*" {
                0
            } else if !ty.eq_ignore_ascii_case(fty) {
                continue;
            } else if sub == b"*" {
                1
            } else if sub.eq_ignore_ascii_case(fsub) {
                2
            } else {
                continue;
            };
            *slot = match *slot {
                Some((s, old)) if s > specificity => Some((s, old)),
                Some((s, old)) if s == specificity => Some((s, old.max(q))),
                _ => Some((specificity, q)),
            };
        }
    });
    let mut pick = (Format::Json, 0u16);
    for ((f, _, _, _), slot) in FORMATS.iter().zip(best) {
        if let Some((_, q)) = slot {
            if q > pick.1 {
                pick = (*f, q);
            }
        }
    }
    pick.0
}

/// One media range of an `Accept` header: its type, its subtype and its q in thousandths.
/// `None` for a malformed range or q. Parameters other than `q` are ignored.
fn media_range(part: &[u8]) -> Option<(&[u8], &[u8], u16)> {
    let mut q = None;
    let mut first = None;
    let mut bad = false;
    split_unquoted(part, b';', |p| {
        let p = trim(p);
        if first.is_none() {
            first = Some(p);
        } else if let Some((name, value)) = split_once(p, b'=') {
            if q.is_none() && trim(name).eq_ignore_ascii_case(b"q") {
                q = parse_q(trim(value));
                bad |= q.is_none();
            }
        }
    });
    let (ty, sub) = split_once(first?, b'/')?;
    let (ty, sub) = (trim(ty), trim(sub));
    let valid = !bad && is_token(ty) && is_token(sub) && (ty != b"*" || sub == b"*");
    valid.then_some((ty, sub, q.unwrap_or(1000)))
}

/// A q-value ("0", "0.5", "1.000", at most three decimals) in thousandths.
fn parse_q(v: &[u8]) -> Option<u16> {
    let (int, frac) = split_once(v, b'.').unwrap_or((v, b""));
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        let d = frac.get(i).map_or(0, |d| u16::from(d - b'0'));
        thousandths = thousandths * 10 + d;
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Whether `s` is a non-empty RFC 9110 token (a type or subtype).
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c))
}

/// Calls `each` with every part of `s` between `sep`s that are not inside a quoted string
/// (so a parameter value like `"a,b"` does not split a range).
fn split_unquoted<'a>(s: &'a [u8], sep: u8, mut each: impl FnMut(&'a [u8])) {
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &c) in s.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && c == b'\\' {
            escaped = true;
        } else if c == b'"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            each(s.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    each(s.get(start..).unwrap_or_default());
}

/// The `Content-Type` of an answer in format `f`.
pub fn content_type(f: Format) -> &'static str {
    match f {
        Format::Json => "application/json",
        Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        Format::Html => "text/html; charset=utf-8",
    }
}

/// The snapshot written in format `f`.
pub fn render(s: &Snapshot, f: Format) -> String {
    match f {
        Format::Json => json(s),
        Format::Prometheus => prometheus(s),
        Format::Html => html(s),
    }
}

/// Whether route `i` of [`ROUTES`] is shown per server: all but `strict` (counted per
/// upstream).
fn server_route(i: usize) -> bool {
    i != STRICT
}

/// The snapshot as compact JSON on one line (ending with a newline). The HTML page's script
/// reads this form, so its keys are part of the page's contract.
pub fn json(s: &Snapshot) -> String {
    let mut o = String::with_capacity(128 + 640 * s.upstreams.len());
    o.push_str("{\"module\":\"socketio_sticky\",\"version\":");
    json_str(&mut o, &s.module_version);
    o.push_str(",\"nginx\":");
    json_str(&mut o, &s.nginx_version);
    o.push_str(",\"upstreams\":[");
    for (i, u) in s.upstreams.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        json_upstream(&mut o, u);
    }
    o.push_str("]}\n");
    o
}

/// One upstream's JSON object.
fn json_upstream(o: &mut String, u: &Upstream) {
    o.push_str("{\"name\":");
    json_str(o, &u.name);
    o.push_str(",\"zone\":");
    match &u.zone {
        Some(z) => json_str(o, z),
        None => o.push_str("null"),
    }
    let figures = [
        ("capacity", u.capacity),
        ("sessions", u.sessions),
        ("learned", u.learned),
        ("evicted", u.evicted),
        ("evicted_in_use", u.evicted_in_use),
        ("expired", u.expired),
        ("duplicate_ids", u.duplicate_ids),
    ];
    for (k, v) in figures {
        let _ = write!(o, ",\"{k}\":{v}");
    }
    o.push_str(",\"learn_skipped\":{");
    for (i, (k, v)) in SKIP_REASONS.iter().zip(u.learn_skipped).enumerate() {
        let comma = if i > 0 { "," } else { "" };
        let _ = write!(o, "{comma}\"{k}\":{v}");
    }
    let _ = write!(o, "}},\"refused_strict\":{},\"servers\":[", u.refused);
    for (i, s) in u.servers.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"name\":");
        json_str(o, &s.name);
        o.push_str(",\"address\":");
        json_str(o, &s.address);
        let _ = write!(o, ",\"backup\":{},\"state\":", s.backup);
        json_str(o, s.state);
        let _ = write!(o, ",\"sessions\":{},\"requests\":{{", s.sessions);
        let mut comma = "";
        for (r, (k, v)) in ROUTES.iter().zip(s.requests).enumerate() {
            if server_route(r) {
                let _ = write!(o, "{comma}\"{k}\":{v}");
                comma = ",";
            }
        }
        o.push_str("}}");
    }
    o.push_str("]}");
}

/// `s` as a JSON string (RFC 8259): quotes, backslashes and control characters escaped.
fn json_str(o: &mut String, s: &str) {
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", u32::from(c));
            }
            c => o.push(c),
        }
    }
    o.push('"');
}

/// The snapshot in the Prometheus text format 0.0.4: each family once, with its `# HELP` and
/// `# TYPE` lines before its samples; a family without samples is left out.
pub fn prometheus(s: &Snapshot) -> String {
    let mut o = String::with_capacity(2048 + 1024 * s.upstreams.len());
    let us = &s.upstreams;
    let mut f = Family::new("info", "gauge", HELP_INFO);
    f.sample(
        &[("version", &s.module_version), ("nginx", &s.nginx_version)],
        1,
    );
    f.write(&mut o);

    let upstream_figure = |o: &mut String, name, kind, help, get: fn(&Upstream) -> u64| {
        let mut f = Family::new(name, kind, help);
        for u in us {
            f.sample(&[("upstream", &u.name)], get(u));
        }
        f.write(o);
    };
    upstream_figure(&mut o, "table_capacity", "gauge", HELP_CAPACITY, |u| {
        u.capacity
    });
    upstream_figure(&mut o, "table_sessions", "gauge", HELP_TABLE, |u| {
        u.sessions
    });

    let mut f = Family::new("sessions", "gauge", HELP_SESSIONS);
    for u in us {
        for sv in &u.servers {
            f.sample(
                &[("upstream", &u.name), ("server", &sv.address)],
                sv.sessions,
            );
        }
    }
    f.write(&mut o);

    let mut f = Family::new("requests_total", "counter", HELP_REQUESTS);
    for u in us {
        for sv in &u.servers {
            for (r, (route, v)) in ROUTES.iter().zip(sv.requests).enumerate() {
                if server_route(r) {
                    let labels = [
                        ("upstream", &*u.name),
                        ("server", &sv.address),
                        ("route", route),
                    ];
                    f.sample(&labels, v);
                }
            }
        }
        let strict = ROUTES.get(STRICT).copied().unwrap_or("strict");
        let labels = [("upstream", &*u.name), ("server", ""), ("route", strict)];
        f.sample(&labels, u.refused);
    }
    f.write(&mut o);

    upstream_figure(&mut o, "learned_total", "counter", HELP_LEARNED, |u| {
        u.learned
    });
    upstream_figure(&mut o, "evicted_total", "counter", HELP_EVICTED, |u| {
        u.evicted
    });
    upstream_figure(
        &mut o,
        "evicted_in_use_total",
        "counter",
        HELP_IN_USE,
        |u| u.evicted_in_use,
    );
    upstream_figure(&mut o, "expired_total", "counter", HELP_EXPIRED, |u| {
        u.expired
    });
    upstream_figure(
        &mut o,
        "duplicate_ids_total",
        "counter",
        HELP_DUPLICATE,
        |u| u.duplicate_ids,
    );

    let mut f = Family::new("learn_skipped_total", "counter", HELP_SKIPPED);
    for u in us {
        for (reason, v) in SKIP_REASONS.iter().zip(u.learn_skipped) {
            f.sample(&[("upstream", &u.name), ("reason", reason)], v);
        }
    }
    f.write(&mut o);
    o
}

// The families' HELP texts, for an operator reading a scrape or a dashboard.
const HELP_INFO: &str =
    "Version of the socketio_sticky module and of the nginx it runs in (always 1).";
const HELP_CAPACITY: &str =
    "Sessions the session table of the upstream's zone can hold (0 without a zone).";
const HELP_TABLE: &str =
    "Sessions in the session table of the upstream's zone now (all upstreams of the zone).";
const HELP_SESSIONS: &str = "Sessions the table holds for the server (label server: its address).";
const HELP_REQUESTS: &str = concat!(
    "Requests sent to the server, by how it was chosen (route). route=\"strict\" (server=\"\") ",
    "counts the upstream's requests refused by strict, which reached no server."
);
const HELP_LEARNED: &str =
    "Session ids learned from handshake responses (new, or learned again for another server).";
const HELP_EVICTED: &str =
    "Sessions dropped from the table because it was full; if this grows, give the zone more room.";
const HELP_IN_USE: &str =
    "Evicted sessions that had been used after their handshake (their clients may change server).";
const HELP_EXPIRED: &str = "Sessions forgotten after their idle timeout.";
const HELP_DUPLICATE: &str =
    "Session ids minted by a second server while the first server's session was live.";
const HELP_SKIPPED: &str = concat!(
    "Handshakes whose session id was not learned, by reason: compressed response, ",
    "unrecognised body, id too long, status not 200."
);

/// One metric family being written: its header and the samples collected so far.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: String,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Self {
        Family {
            name,
            kind,
            help,
            samples: String::new(),
        }
    }

    /// Adds the sample `name{labels} value`.
    fn sample(&mut self, labels: &[(&str, &str)], value: u64) {
        let o = &mut self.samples;
        let _ = write!(o, "socketio_sticky_{}", self.name);
        for (i, (k, v)) in labels.iter().enumerate() {
            o.push(if i == 0 { '{' } else { ',' });
            o.push_str(k);
            o.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => o.push_str("\\\\"),
                    '"' => o.push_str("\\\""),
                    '\n' => o.push_str("\\n"),
                    c => o.push(c),
                }
            }
            o.push('"');
        }
        if !labels.is_empty() {
            o.push('}');
        }
        let _ = writeln!(o, " {value}");
    }

    /// Writes the family (`# HELP`, `# TYPE`, samples) to `o`, or nothing without samples.
    fn write(&self, o: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let help = self.help.replace('\\', "\\\\").replace('\n', "\\n");
        let name = self.name;
        let _ = writeln!(o, "# HELP socketio_sticky_{name} {help}");
        let _ = writeln!(o, "# TYPE socketio_sticky_{name} {}", self.kind);
        o.push_str(&self.samples);
    }
}

/// The snapshot as a self-contained HTML page (inline style and script, no external asset).
/// The page shows the snapshot without JavaScript; its script then fetches the JSON form
/// every 2 seconds and rebuilds the same elements, so the hooks (`data-upstream`,
/// `data-address`, `data-sessions`, `span.sessions`) hold in both.
pub fn html(s: &Snapshot) -> String {
    let mut o = String::with_capacity(8192 + 2048 * s.upstreams.len());
    o.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        "<link rel=\"icon\" href=\"data:,\">\n",
        "<title>socketio_sticky status</title>\n<style>\n",
    ));
    o.push_str(PAGE_STYLE);
    o.push_str("</style>\n</head>\n<body>\n<header><h1>socketio_sticky status</h1>");
    o.push_str("<span class=\"meta\">module <b id=\"module\">");
    esc(&mut o, &s.module_version);
    o.push_str("</b></span><span class=\"meta\">nginx <b id=\"nginx\">");
    esc(&mut o, &s.nginx_version);
    o.push_str("</b></span><span class=\"meta\">updated <span id=\"updated\">at page load</span>");
    o.push_str("</span></header>\n<main id=\"upstreams\">\n");
    if s.upstreams.is_empty() {
        o.push_str("<p class=\"empty\">No upstream uses socketio_sticky.</p>\n");
    }
    for u in &s.upstreams {
        html_upstream(&mut o, u);
    }
    o.push_str("</main>\n<script>\n");
    o.push_str(PAGE_SCRIPT);
    o.push_str("</script>\n</body>\n</html>\n");
    o
}

/// One upstream's section. The script's `upstream()` builds the same elements.
fn html_upstream(o: &mut String, u: &Upstream) {
    o.push_str("<section class=\"upstream\" data-upstream=\"");
    esc(o, &u.name);
    o.push_str("\"><h2><span class=\"uname\">");
    esc(o, &u.name);
    o.push_str("</span><span class=\"zone\">");
    match &u.zone {
        Some(z) => {
            o.push_str("zone ");
            esc(o, z);
        }
        None => o.push_str("no zone"),
    }
    let [compressed, unrecognised, too_long, not_200] = u.learn_skipped;
    let _ = write!(
        o,
        concat!(
            "</span></h2><p class=\"figures\">",
            "<span>capacity <b>{}</b></span>",
            "<span>sessions <b>{}</b></span>",
            "<span>learned <b>{}</b></span>",
            "<span>evicted <b>{}</b> (<b>{}</b> in use)</span>",
            "<span>expired <b>{}</b></span>",
            "<span>duplicate ids <b>{}</b></span>",
            "<span>learning skipped: compressed <b>{}</b>, unrecognised <b>{}</b>, ",
            "too long <b>{}</b>, not 200 <b>{}</b></span>",
            "<span>refused by strict <b>{}</b></span></p>\n"
        ),
        u.capacity,
        u.sessions,
        u.learned,
        u.evicted,
        u.evicted_in_use,
        u.expired,
        u.duplicate_ids,
        compressed,
        unrecognised,
        too_long,
        not_200,
        u.refused,
    );
    if !u.servers.is_empty() {
        o.push_str(concat!(
            "<div class=\"cols\"><span>server</span><span class=\"wide\">sessions</span>",
            "<span>requests by route</span></div>\n",
        ));
    }
    let max = u.servers.iter().map(|s| s.sessions).max().unwrap_or(0);
    for s in &u.servers {
        html_server(o, &u.name, s, max);
    }
    o.push_str("</section>\n");
}

/// One server's row; `max` is the largest sessions count of the upstream's servers (the
/// full bar). The script's `server()` builds the same elements.
fn html_server(o: &mut String, upstream: &str, s: &Server, max: u64) {
    let pct = (u128::from(s.sessions) * 100)
        .checked_div(u128::from(max))
        .unwrap_or(0);
    o.push_str("<div class=\"server\" data-upstream=\"");
    esc(o, upstream);
    o.push_str("\" data-address=\"");
    esc(o, &s.address);
    let _ = write!(o, "\" data-sessions=\"{}\">", s.sessions);
    o.push_str("<div class=\"who\"><span class=\"name\">");
    esc(o, &s.name);
    o.push_str("</span>");
    if s.address != s.name {
        o.push_str("<span class=\"address\">");
        esc(o, &s.address);
        o.push_str("</span>");
    }
    o.push_str("<span class=\"state state-");
    esc(o, s.state);
    o.push_str("\">");
    esc(o, s.state);
    o.push_str("</span>");
    if s.backup {
        o.push_str("<span class=\"backup\">backup</span>");
    }
    let _ = write!(
        o,
        concat!(
            "</div><div class=\"bar\"><div class=\"fill\" style=\"width:{}%\"></div></div>",
            "<span class=\"sessions\">{}</span><table class=\"routes\"><tbody><tr>"
        ),
        pct, s.sessions
    );
    for (r, route) in ROUTES.iter().enumerate() {
        if server_route(r) {
            let _ = write!(o, "<th>{route}</th>");
        }
    }
    o.push_str("</tr><tr>");
    for (r, n) in s.requests.iter().enumerate() {
        if server_route(r) {
            let class = if *n == 0 { " class=\"zero\"" } else { "" };
            let _ = write!(o, "<td{class}>{n}</td>");
        }
    }
    o.push_str("</tr></tbody></table></div>\n");
}

/// `s` as HTML text or a double-quoted attribute value.
fn esc(o: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
}

/// The page's style sheet: system fonts, a light palette, one grid row per server.
const PAGE_STYLE: &str = r#":root{--fg:#1f2328;--muted:#59636e;--faint:#b0b8c1;--line:#d8dee4;
  --bg:#f6f8fa;--card:#fff;--track:#e6eaef;--fill:#2f6fde}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
  font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:6px 20px;padding:12px 24px;
  background:var(--card);border-bottom:1px solid var(--line)}
h1{margin:0;font-size:18px}
.meta{color:var(--muted)}
.meta b{color:var(--fg);font-weight:600}
#updated.failed{color:#c0262d;font-weight:600}
main{padding:16px 24px;max-width:1600px}
.empty{color:var(--muted)}
.upstream{margin:0 0 16px;padding:12px 16px;background:var(--card);border:1px solid var(--line);
  border-radius:8px}
h2{margin:0 0 4px;font-size:16px;overflow-wrap:anywhere}
.zone{margin-left:10px;color:var(--muted);font-size:13px;font-weight:normal}
.figures{display:flex;flex-wrap:wrap;gap:2px 18px;margin:0 0 10px;color:var(--muted)}
.figures b,.sessions,.routes{font-variant-numeric:tabular-nums}
.figures b{color:var(--fg);font-weight:600}
.cols,.server{display:grid;grid-template-columns:minmax(12rem,20rem) minmax(8rem,1fr) 6rem 30rem;
  gap:16px;align-items:center}
.cols{padding:4px 0;border-bottom:1px solid var(--line);color:var(--muted);font-size:12px}
.cols .wide{grid-column:span 2}
.server{padding:6px 0;border-bottom:1px solid var(--line)}
.server:last-child{border-bottom:0}
.name,.address{overflow-wrap:anywhere}
.name{font-weight:600}
.address{margin-left:8px;color:var(--muted)}
.state,.backup{display:inline-block;margin-left:8px;padding:0 7px;border-radius:9px;font-size:12px}
.state{background:#dcf5e3;color:#14622e}
.backup{background:#e8ecf0;color:var(--muted)}
.state-down{background:#fde4e4;color:#a11d24}
.state-drain{background:#fdf3c8;color:#7a4d00}
.bar{height:16px;background:var(--track);border-radius:8px;overflow:hidden}
.fill{height:100%;background:var(--fill)}
.sessions{text-align:right;font-size:16px;font-weight:600}
.routes{width:100%;table-layout:fixed;border-collapse:collapse;font-size:12px}
.routes th{padding:0 6px;color:var(--muted);font-weight:normal;text-align:right}
.routes td{padding:0 6px;text-align:right}
.routes td.zero{color:var(--faint)}
@media (max-width:1000px){
  .cols{display:none}
  .server{grid-template-columns:minmax(8rem,1fr) minmax(6rem,1fr) 5rem}
  .server .routes{grid-column:1/-1}
}
"#;

/// The page's script: every 2 seconds it fetches the JSON form and rebuilds the upstreams
/// with the elements `html` writes (text and attributes only, never markup from data).
const PAGE_SCRIPT: &str = r#""use strict";
(() => {
  const ROUTES = ["learned", "device_id", "route", "cookie", "fallback", "rebound", "prefix"];
  const updated = document.getElementById("updated");

  // An element with attributes and children (strings become text nodes).
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const k of kids) e.append(k instanceof Node ? k : String(k));
    return e;
  };
  const b = (n) => el("b", null, n);

  const server = (u, s, max) => {
    const who = el("div", {class: "who"}, el("span", {class: "name"}, s.name));
    if (s.address !== s.name) who.append(el("span", {class: "address"}, s.address));
    who.append(el("span", {class: "state state-" + s.state}, s.state));
    if (s.backup) who.append(el("span", {class: "backup"}, "backup"));
    const pct = max > 0 ? Math.floor(s.sessions * 100 / max) : 0;
    const names = el("tr"), counts = el("tr");
    for (const r of ROUTES) {
      const n = s.requests[r] || 0;
      names.append(el("th", null, r));
      counts.append(el("td", n ? null : {class: "zero"}, n));
    }
    return el("div", {class: "server", "data-upstream": u.name, "data-address": s.address,
                      "data-sessions": s.sessions},
      who,
      el("div", {class: "bar"}, el("div", {class: "fill", style: "width:" + pct + "%"})),
      el("span", {class: "sessions"}, s.sessions),
      el("table", {class: "routes"}, el("tbody", null, names, counts)));
  };

  const upstream = (u) => {
    const k = u.learn_skipped;
    const sec = el("section", {class: "upstream", "data-upstream": u.name},
      el("h2", null, el("span", {class: "uname"}, u.name),
        el("span", {class: "zone"}, u.zone === null ? "no zone" : "zone " + u.zone)),
      el("p", {class: "figures"},
        el("span", null, "capacity ", b(u.capacity)),
        el("span", null, "sessions ", b(u.sessions)),
        el("span", null, "learned ", b(u.learned)),
        el("span", null, "evicted ", b(u.evicted), " (", b(u.evicted_in_use), " in use)"),
        el("span", null, "expired ", b(u.expired)),
        el("span", null, "duplicate ids ", b(u.duplicate_ids)),
        el("span", null, "learning skipped: compressed ", b(k.compressed), ", unrecognised ",
          b(k.unrecognised), ", too long ", b(k.too_long), ", not 200 ", b(k.not_200)),
        el("span", null, "refused by strict ", b(u.refused_strict))));
    if (u.servers.length) {
      sec.append(el("div", {class: "cols"}, el("span", null, "server"),
        el("span", {class: "wide"}, "sessions"), el("span", null, "requests by route")));
      const max = Math.max(...u.servers.map((s) => s.sessions));
      for (const s of u.servers) sec.append(server(u, s, max));
    }
    return sec;
  };

  const show = (d) => {
    document.getElementById("module").textContent = d.version;
    document.getElementById("nginx").textContent = d.nginx;
    const sections = d.upstreams.map(upstream);
    if (!sections.length) {
      sections.push(el("p", {class: "empty"}, "No upstream uses socketio_sticky."));
    }
    document.getElementById("upstreams").replaceChildren(...sections);
  };

  const refresh = () => {
    fetch(location.pathname + "?format=json", {cache: "no-store"})
      .then((r) => {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then((d) => {
        show(d);
        updated.textContent = new Date().toLocaleTimeString();
        updated.removeAttribute("class");
      })
      .catch((e) => {
        updated.textContent = "refresh failed: " + e.message + " (showing the last data)";
        updated.setAttribute("class", "failed");
      })
      .finally(() => setTimeout(refresh, 2000));
  };

  updated.textContent = new Date().toLocaleTimeString();
  setTimeout(refresh, 2000);
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn small() -> Snapshot {
        Snapshot {
            module_version: "0.1.0".into(),
            nginx_version: "1.28.3".into(),
            upstreams: vec![Upstream {
                name: "app".into(),
                zone: Some("sio".into()),
                capacity: 1000,
                sessions: 3,
                learned: 5,
                evicted: 2,
                evicted_in_use: 1,
                expired: 4,
                duplicate_ids: 0,
                learn_skipped: [1, 2, 3, 4],
                refused: 6,
                servers: vec![
                    Server {
                        name: "backend1:3000".into(),
                        address: "10.0.0.5:3000".into(),
                        backup: false,
                        state: "up",
                        sessions: 2,
                        requests: [5, 1, 0, 0, 3, 0, 0, 0],
                    },
                    Server {
                        name: "10.0.0.6:3000".into(),
                        address: "10.0.0.6:3000".into(),
                        backup: true,
                        state: "down",
                        sessions: 1,
                        requests: [0, 0, 7, 0, 0, 1, 0, 2],
                    },
                ],
            }],
        }
    }

    /// A snapshot whose upstream and server names need escaping everywhere.
    fn hostile(name: &str) -> Snapshot {
        let mut s = small();
        if let Some(u) = s.upstreams.first_mut() {
            u.name = name.into();
            u.zone = None;
            if let Some(sv) = u.servers.first_mut() {
                sv.name = name.into();
                sv.address = name.into();
            }
        }
        s
    }

    fn neg(arg: Option<&str>, accept: Option<&str>) -> Option<Format> {
        negotiate(arg.map(str::as_bytes), accept.map(str::as_bytes))
    }

    #[test]
    fn status_negotiate_table() {
        use Format::*;
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,\
                       image/webp,*/*;q=0.8";
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                    version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let cases: &[(&str, Format)] = &[
            (browser, Html),
            ("*/*", Json),
            (prom, Prometheus),
            ("text/plain;version=0.0.4;q=1,*/*;q=0.1", Prometheus),
            ("application/json, text/plain;q=0.5", Json),
            ("text/*", Prometheus),
            ("text/html;q=0, */*", Json),
            ("application/json;q=0,text/html;q=0,text/plain;q=0", Json),
            // More edge cases.
            ("", Json),
            ("   ", Json),
            (",,, ;", Json),
            ("image/png", Json),
            ("  text/html  ;  q=0.9 , application/json ; q=0.8 ", Html),
            ("TEXT/HTML", Html),
            ("Text/Plain;Q=0.5, application/json;q=0.4", Prometheus),
            ("text/html;q=0.000, */*;q=0.001", Json),
            ("application/json;q=0.000,text/plain;q=0.001", Prometheus),
            ("text/html;q=1.0,application/json;q=0.999", Html),
            ("text/html;q=1.000,application/json", Json),
            ("text/html;q=2, text/plain;q=0.1", Prometheus),
            ("text/html;q=0.5000, text/plain;q=0.1", Prometheus),
            ("text/html;q=1.5, text/plain;q=0.1", Prometheus),
            ("text/html;q=abc, text/plain;q=0.1", Prometheus),
            ("text/html;q=, text/plain;q=0.1", Prometheus),
            ("text/html;q=-1, text/plain;q=0.1", Prometheus),
            ("text/html;q=0., text/plain;q=0.1", Prometheus),
            ("text/html, text/plain", Prometheus),
            ("text/html, application/json", Json),
            ("text/*;q=0.5, text/html", Html),
            ("text/html;q=0.2, text/*;q=0.9", Prometheus),
            ("*/*;q=0.9, application/json;q=0.1", Prometheus),
            ("application/*;q=0.3, text/*;q=0.2", Json),
            ("*/html, text/plain;q=0.1", Prometheus),
            ("text, text/html;q=0.1", Html),
            ("text/, /html, /, text/html;q=0.1", Html),
            (
                "text/html;charset=\"a,b;q=0\";q=0.7, text/plain;q=0.6",
                Html,
            ),
            ("text/html;foo;q=0.7, text/plain;q=0.6", Html),
            (
                "text/plain;q=0.2, text/plain;q=0.6, application/json;q=0.5",
                Prometheus,
            ),
            ("text/html; q=0.5; level=1, application/json;q=0.4", Html),
        ];
        for (accept, want) in cases {
            assert_eq!(neg(None, Some(accept)), Some(*want), "Accept: {accept:?}");
        }
        assert_eq!(neg(None, None), Some(Json));
    }

    #[test]
    fn status_negotiate_format_arg() {
        use Format::*;
        assert_eq!(neg(Some("json"), Some("text/html")), Some(Json));
        assert_eq!(neg(Some("prometheus"), Some("text/html")), Some(Prometheus));
        assert_eq!(neg(Some("html"), Some("application/json")), Some(Html));
        assert_eq!(neg(Some("HTML"), None), Some(Html));
        assert_eq!(neg(Some("Prometheus"), None), Some(Prometheus));
        assert_eq!(neg(Some("JSON"), Some("*/*")), Some(Json));
        for bad in ["", "xml", "jsonp", " json", "json ", "text/html", "prom"] {
            assert_eq!(neg(Some(bad), Some("text/html")), None, "format={bad:?}");
            assert_eq!(neg(Some(bad), None), None, "format={bad:?}");
        }
        assert_eq!(negotiate(Some(b"\xff\x00"), None), None);
        assert_eq!(
            negotiate(None, Some(b"\xff/\xfe, text/html;q=\xff")),
            Some(Json)
        );
    }

    #[test]
    fn status_q_values() {
        assert_eq!(parse_q(b"0"), Some(0));
        assert_eq!(parse_q(b"0.000"), Some(0));
        assert_eq!(parse_q(b"0.5"), Some(500));
        assert_eq!(parse_q(b"0.05"), Some(50));
        assert_eq!(parse_q(b"0.123"), Some(123));
        assert_eq!(parse_q(b"1"), Some(1000));
        assert_eq!(parse_q(b"1.0"), Some(1000));
        assert_eq!(parse_q(b"1.000"), Some(1000));
        for bad in [
            "", ".5", "1.001", "0.1234", "2", "01", "0,5", "0.a", "+0.5", "1e0",
        ] {
            assert_eq!(parse_q(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn status_content_types() {
        assert_eq!(content_type(Format::Json), "application/json");
        assert_eq!(
            content_type(Format::Prometheus),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(content_type(Format::Html), "text/html; charset=utf-8");
        let s = small();
        assert_eq!(render(&s, Format::Json), json(&s));
        assert_eq!(render(&s, Format::Prometheus), prometheus(&s));
        assert_eq!(render(&s, Format::Html), html(&s));
    }

    const SMALL_JSON: &str = concat!(
        r#"{"module":"socketio_sticky","version":"0.1.0","nginx":"1.28.3","upstreams":[{"#,
        r#""name":"app","zone":"sio","capacity":1000,"sessions":3,"learned":5,"evicted":2,"#,
        r#""evicted_in_use":1,"expired":4,"duplicate_ids":0,"learn_skipped":{"compressed":1,"#,
        r#""unrecognised":2,"too_long":3,"not_200":4},"refused_strict":6,"servers":["#,
        r#"{"name":"backend1:3000","address":"10.0.0.5:3000","backup":false,"state":"up","#,
        r#""sessions":2,"requests":{"learned":5,"device_id":1,"route":0,"cookie":0,"#,
        r#""fallback":3,"rebound":0,"prefix":0}},"#,
        r#"{"name":"10.0.0.6:3000","address":"10.0.0.6:3000","backup":true,"state":"down","#,
        r#""sessions":1,"requests":{"learned":0,"device_id":0,"route":7,"cookie":0,"#,
        r#""fallback":0,"rebound":1,"prefix":2}}]}]}"#,
        "\n"
    );

    #[test]
    fn status_json_exact() {
        let out = json(&small());
        assert_eq!(out, SMALL_JSON);
        assert!(valid_json(&out));
        assert_eq!(out.matches('\n').count(), 1);
        let empty = json(&Snapshot::default());
        assert_eq!(
            empty,
            "{\"module\":\"socketio_sticky\",\"version\":\"\",\"nginx\":\"\",\"upstreams\":[]}\n"
        );
        assert!(valid_json(&empty));
    }

    #[test]
    fn status_json_escaping() {
        let out = json(&hostile("a\"b\\c\nd<e\u{1}\t\r\u{1f}é"));
        assert!(
            out.contains(r#""name":"a\"b\\c\nd<e\u0001\t\r\u001fé""#),
            "{out}"
        );
        assert!(out.contains(r#""zone":null"#));
        assert!(valid_json(&out), "{out}");
        assert_eq!(out.matches('\n').count(), 1);
    }

    #[test]
    fn status_json_validator() {
        for good in [
            "{}",
            "[]",
            "[1,-2.5e3,\"a\\u00e9\",true,false,null,{\"a\":[{}]}]",
            " 0 ",
        ] {
            assert!(valid_json(good), "{good}");
        }
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":1",
            "{\"a\" 1}",
            "[1}",
            "\"\n\"",
            "[01]",
            "{}]",
        ] {
            assert!(!valid_json(bad), "{bad}");
        }
    }

    const SMALL_PROMETHEUS: &str = concat!(
        "# HELP socketio_sticky_info Version of the socketio_sticky module and of the nginx ",
        "it runs in (always 1).\n",
        "# TYPE socketio_sticky_info gauge\n",
        "socketio_sticky_info{version=\"0.1.0\",nginx=\"1.28.3\"} 1\n",
        "# HELP socketio_sticky_table_capacity Sessions the session table of the upstream's ",
        "zone can hold (0 without a zone).\n",
        "# TYPE socketio_sticky_table_capacity gauge\n",
        "socketio_sticky_table_capacity{upstream=\"app\"} 1000\n",
        "# HELP socketio_sticky_table_sessions Sessions in the session table of the ",
        "upstream's zone now (all upstreams of the zone).\n",
        "# TYPE socketio_sticky_table_sessions gauge\n",
        "socketio_sticky_table_sessions{upstream=\"app\"} 3\n",
        "# HELP socketio_sticky_sessions Sessions the table holds for the server (label ",
        "server: its address).\n",
        "# TYPE socketio_sticky_sessions gauge\n",
        "socketio_sticky_sessions{upstream=\"app\",server=\"10.0.0.5:3000\"} 2\n",
        "socketio_sticky_sessions{upstream=\"app\",server=\"10.0.0.6:3000\"} 1\n",
        "# HELP socketio_sticky_requests_total Requests sent to the server, by how it was ",
        "chosen (route). route=\"strict\" (server=\"\") counts the upstream's requests ",
        "refused by strict, which reached no server.\n",
        "# TYPE socketio_sticky_requests_total counter\n",
        "socketio_sticky_requests_total{upstream=\"app\",server=\"10.0.0.5:3000\",",
        "route=\"learned\"} 5\n",
        "socketio_sticky_requests_total{upstream=\"app\",server=\"10.0.0.5:3000\",",
        "route=\"device_id\"} 1\n",
        "socketio_sticky_requests_total{upstream=\"app\",server=\"10.0.0.5:3000\",",
        "route=\"route\"} 0\n",
        "socketio_sticky_requests_total{upstream=\"app\",server=\"10.0.0.5:3000\",",
        "route=\"cookie\"} 0\n",
        "socketio_sticky_requests_total{upstream=\"app\",server=\"10.0.0.5:3000\",",
        "route=\"fallback\"} 3\n",
        "socketio_sticky_requests_total{upstream=\"app\",server=\"10.0.0.5:3000\",",
        "route=\"rebound\"} 0\n",
        "socketio_sticky_requests_total{upstream=\"app\",server=\"10.0.0.5:3000\",",
        "route=\"prefix\"} 0\n",
        "socketio_sticky_requests_total{upstream=\"app\",server=\"10.0.0.6:3000\",",
        "route=\"learned\"} 0\n",
        "socketio_sticky_requests_total{upstream=\"app\",server=\"10.0.0.6:3000\",",
        "route=\"device_id\"} 0\n",
        "socketio_sticky_requests_total{upstream=\"app\",server=\"10.0.0.6:3000\",",
        "route=\"route\"} 7\n",
        "socketio_sticky_requests_total{upstream=\"app\",server=\"10.0.0.6:3000\",",
        "route=\"cookie\"} 0\n",
        "socketio_sticky_requests_total{upstream=\"app\",server=\"10.0.0.6:3000\",",
        "route=\"fallback\"} 0\n",
        "socketio_sticky_requests_total{upstream=\"app\",server=\"10.0.0.6:3000\",",
        "route=\"rebound\"} 1\n",
        "socketio_sticky_requests_total{upstream=\"app\",server=\"10.0.0.6:3000\",",
        "route=\"prefix\"} 2\n",
        "socketio_sticky_requests_total{upstream=\"app\",server=\"\",route=\"strict\"} 6\n",
        "# HELP socketio_sticky_learned_total Session ids learned from handshake responses ",
        "(new, or learned again for another server).\n",
        "# TYPE socketio_sticky_learned_total counter\n",
        "socketio_sticky_learned_total{upstream=\"app\"} 5\n",
        "# HELP socketio_sticky_evicted_total Sessions dropped from the table because it ",
        "was full; if this grows, give the zone more room.\n",
        "# TYPE socketio_sticky_evicted_total counter\n",
        "socketio_sticky_evicted_total{upstream=\"app\"} 2\n",
        "# HELP socketio_sticky_evicted_in_use_total Evicted sessions that had been used ",
        "after their handshake (their clients may change server).\n",
        "# TYPE socketio_sticky_evicted_in_use_total counter\n",
        "socketio_sticky_evicted_in_use_total{upstream=\"app\"} 1\n",
        "# HELP socketio_sticky_expired_total Sessions forgotten after their idle ",
        "timeout.\n",
        "# TYPE socketio_sticky_expired_total counter\n",
        "socketio_sticky_expired_total{upstream=\"app\"} 4\n",
        "# HELP socketio_sticky_duplicate_ids_total Session ids minted by a second server ",
        "while the first server's session was live.\n",
        "# TYPE socketio_sticky_duplicate_ids_total counter\n",
        "socketio_sticky_duplicate_ids_total{upstream=\"app\"} 0\n",
        "# HELP socketio_sticky_learn_skipped_total Handshakes whose session id was not ",
        "learned, by reason: compressed response, unrecognised body, id too long, status ",
        "not 200.\n",
        "# TYPE socketio_sticky_learn_skipped_total counter\n",
        "socketio_sticky_learn_skipped_total{upstream=\"app\",reason=\"compressed\"} 1\n",
        "socketio_sticky_learn_skipped_total{upstream=\"app\",reason=\"unrecognised\"} 2\n",
        "socketio_sticky_learn_skipped_total{upstream=\"app\",reason=\"too_long\"} 3\n",
        "socketio_sticky_learn_skipped_total{upstream=\"app\",reason=\"not_200\"} 4\n",
    );

    #[test]
    fn status_prometheus_exact() {
        let out = prometheus(&small());
        assert_eq!(out, SMALL_PROMETHEUS);
        check_families(&out);
    }

    #[test]
    fn status_prometheus_escaping() {
        let out = prometheus(&hostile("a\"b\\c\nd"));
        assert!(
            out.contains("{upstream=\"a\\\"b\\\\c\\nd\"} 1000\n"),
            "{out}"
        );
        assert!(out.contains("{upstream=\"a\\\"b\\\\c\\nd\",server=\"a\\\"b\\\\c\\nd\"} 2\n"));
        check_families(&out);
        // No upstreams: only the info family.
        let out = prometheus(&Snapshot::default());
        assert_eq!(
            out,
            concat!(
                "# HELP socketio_sticky_info Version of the socketio_sticky module and of the ",
                "nginx it runs in (always 1).\n",
                "# TYPE socketio_sticky_info gauge\n",
                "socketio_sticky_info{version=\"\",nginx=\"\"} 1\n",
            )
        );
        // Upstreams without servers: no `sessions` family, the rest stay.
        let mut s = small();
        for u in &mut s.upstreams {
            u.servers.clear();
        }
        let out = prometheus(&s);
        assert!(!out.contains("socketio_sticky_sessions"));
        assert!(out.contains(
            "socketio_sticky_requests_total{upstream=\"app\",server=\"\",route=\"strict\"} 6\n"
        ));
        check_families(&out);
    }

    /// Every family has one `# HELP` and one `# TYPE` line, in that order, right before its
    /// samples, which are contiguous; every line ends with a newline.
    fn check_families(out: &str) {
        assert!(out.ends_with('\n'));
        let mut seen = HashSet::new();
        let mut current = None;
        let mut pending_help = None;
        let mut samples = 0;
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                assert!(pending_help.is_none(), "HELP twice: {line}");
                assert!(
                    current.is_none() || samples > 0,
                    "empty family before {line}"
                );
                let name = rest.split(' ').next().unwrap_or_default();
                assert!(seen.insert(name.to_string()), "family twice: {name}");
                pending_help = Some(name);
                current = None;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split(' ');
                let name = it.next();
                assert_eq!(name, pending_help.take(), "TYPE not after its HELP: {line}");
                assert!(matches!(it.next(), Some("gauge" | "counter")));
                current = name;
                samples = 0;
            } else {
                let name = line.split(['{', ' ']).next();
                assert!(
                    name.is_some() && name == current,
                    "sample outside its family: {line}"
                );
                assert!(name.is_some_and(|n| n.starts_with("socketio_sticky_")));
                samples += 1;
            }
        }
        assert!(samples > 0 && pending_help.is_none());
    }

    #[test]
    fn status_html_hooks() {
        let s = small();
        let out = html(&s);
        assert!(out.starts_with("<!DOCTYPE html>"));
        assert!(out.contains("<meta charset=\"utf-8\">"));
        assert!(out.contains("<title>socketio_sticky status</title>"));
        assert!(out.contains("<span id=\"updated\">"));
        assert!(out.contains("<section class=\"upstream\" data-upstream=\"app\">"));
        assert!(out.contains(
            "<div class=\"server\" data-upstream=\"app\" data-address=\"10.0.0.5:3000\" \
             data-sessions=\"2\">"
        ));
        assert!(out.contains(
            "<div class=\"server\" data-upstream=\"app\" data-address=\"10.0.0.6:3000\" \
             data-sessions=\"1\">"
        ));
        assert!(out.contains("<span class=\"sessions\">2</span>"));
        assert!(out.contains("<div class=\"fill\" style=\"width:100%\"></div>"));
        assert!(out.contains("<div class=\"fill\" style=\"width:50%\"></div>"));
        // The address is shown apart only when it differs from the name.
        assert_eq!(out.matches("<span class=\"address\">").count(), 1);
        assert!(out.contains("location.pathname + \"?format=json\""));
        assert!(out.contains("cache: \"no-store\""));
        // Self-contained.
        for external in [
            "http://",
            "https://",
            "src=",
            "@import",
            "url(",
            "innerHTML",
        ] {
            assert!(!out.contains(external), "{external}");
        }
        // Route counters: every route but strict.
        for (r, route) in ROUTES.iter().enumerate() {
            assert_eq!(
                out.contains(&format!("<th>{route}</th>")),
                r != STRICT,
                "{route}"
            );
        }
        let none = html(&Snapshot::default());
        assert!(none.contains("No upstream uses socketio_sticky."));
    }

    #[test]
    fn status_html_bars_without_sessions() {
        let mut s = small();
        for sv in s.upstreams.iter_mut().flat_map(|u| u.servers.iter_mut()) {
            sv.sessions = 0;
        }
        let out = html(&s);
        assert_eq!(out.matches("style=\"width:0%\"").count(), 2);
        let mut s = small();
        for sv in s.upstreams.iter_mut().flat_map(|u| u.servers.iter_mut()) {
            sv.sessions = u64::MAX;
        }
        assert_eq!(html(&s).matches("style=\"width:100%\"").count(), 2);
    }

    #[test]
    fn status_html_escaping() {
        let evil = "<script>alert(1)</script>";
        let out = html(&hostile(evil));
        assert_eq!(
            out.matches("<script").count(),
            1,
            "only the page's own script"
        );
        assert!(!out.contains("alert(1)</script>"));
        assert!(out.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        let out = html(&hostile("a\"b'c&d"));
        assert!(out.contains("data-upstream=\"a&quot;b&#39;c&amp;d\""));
        assert!(!out.contains("a\"b'c&d"));
    }

    /// Whether `s` is one JSON value (RFC 8259), with whitespace around it.
    fn valid_json(s: &str) -> bool {
        let b = s.as_bytes();
        let mut i = 0;
        value(b, &mut i) && {
            ws(b, &mut i);
            i == b.len()
        }
    }

    fn ws(b: &[u8], i: &mut usize) {
        while matches!(b.get(*i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            *i += 1;
        }
    }

    fn eat(b: &[u8], i: &mut usize, c: u8) -> bool {
        ws(b, i);
        let ok = b.get(*i) == Some(&c);
        *i += usize::from(ok);
        ok
    }

    fn value(b: &[u8], i: &mut usize) -> bool {
        ws(b, i);
        match b.get(*i) {
            Some(b'{') => {
                *i += 1;
                if eat(b, i, b'}') {
                    return true;
                }
                loop {
                    ws(b, i);
                    if !string(b, i) || !eat(b, i, b':') || !value(b, i) {
                        return false;
                    }
                    if eat(b, i, b'}') {
                        return true;
                    }
                    if !eat(b, i, b',') {
                        return false;
                    }
                }
            }
            Some(b'[') => {
                *i += 1;
                if eat(b, i, b']') {
                    return true;
                }
                loop {
                    if !value(b, i) {
                        return false;
                    }
                    if eat(b, i, b']') {
                        return true;
                    }
                    if !eat(b, i, b',') {
                        return false;
                    }
                }
            }
            Some(b'"') => string(b, i),
            Some(b't') => literal(b, i, "true"),
            Some(b'f') => literal(b, i, "false"),
            Some(b'n') => literal(b, i, "null"),
            Some(_) => number(b, i),
            None => false,
        }
    }

    fn literal(b: &[u8], i: &mut usize, word: &str) -> bool {
        let ok = b.get(*i..*i + word.len()) == Some(word.as_bytes());
        *i += word.len();
        ok
    }

    fn string(b: &[u8], i: &mut usize) -> bool {
        if b.get(*i) != Some(&b'"') {
            return false;
        }
        *i += 1;
        loop {
            match b.get(*i) {
                None => return false,
                Some(b'"') => {
                    *i += 1;
                    return true;
                }
                Some(c) if *c < 0x20 => return false,
                Some(b'\\') => {
                    *i += 1;
                    match b.get(*i) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => *i += 1,
                        Some(b'u') => {
                            let hex = b.get(*i + 1..*i + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return false;
                            }
                            *i += 5;
                        }
                        _ => return false,
                    }
                }
                Some(_) => *i += 1,
            }
        }
    }

    fn number(b: &[u8], i: &mut usize) -> bool {
        let digits = |i: &mut usize| {
            let start = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - start
        };
        if b.get(*i) == Some(&b'-') {
            *i += 1;
        }
        let start = *i;
        let n = digits(i);
        if n == 0 || (n > 1 && b.get(start) == Some(&b'0')) {
            return false;
        }
        if b.get(*i) == Some(&b'.') {
            *i += 1;
            if digits(i) == 0 {
                return false;
            }
        }
        if matches!(b.get(*i), Some(b'e' | b'E')) {
            *i += 1;
            if matches!(b.get(*i), Some(b'+' | b'-')) {
                *i += 1;
            }
            if digits(i) == 0 {
                return false;
            }
        }
        true
    }

    #[test]
    fn skip_reason_indices_name_their_reasons() {
        assert_eq!(SKIP_REASONS[COMPRESSED], "compressed");
        assert_eq!(SKIP_REASONS[UNRECOGNISED], "unrecognised");
        assert_eq!(SKIP_REASONS[TOO_LONG], "too_long");
        assert_eq!(SKIP_REASONS[NOT_200], "not_200");
        assert_eq!(ROUTES[STRICT], "strict");
        assert!(REFUSED >= SKIP_REASONS.len() && REFUSED < super::super::tally::COUNTS);
    }
}
