//! Which requests are handshakes: the request shapes of Socket.IO's handshake, whose
//! response mints the session id (learned from it by `sniff`).

/// Which protocol generation a handshake request belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Engine.IO 3 or 4 (Socket.IO 1.x to 4.x): `?EIO=N&transport=...` without `sid`.
    EngineIo,
    /// Socket.IO 0.9: `GET /<resource>/1/`.
    Legacy09,
}

/// Whether a request is handshake-shaped. `args` is the raw query string without `?` (may be
/// empty), `uri` the raw (not decoded) path.
///
/// [`Kind::EngineIo`]: the query has an `EIO=` argument (any value) and no non-empty `sid`
/// argument (`sid=` or a bare `sid` is absent, as for Engine.IO's own query parser). Names
/// match exactly and case-sensitively; arguments are split on `&` only. Such a request is
/// never [`Kind::Legacy09`], even when its path looks like one.
///
/// [`Kind::Legacy09`]: the path is `/<resource>/1/`: it ends with `/1/` and has a non-empty
/// segment before the `1` (`/socket.io/1/`, `/chat/io/1/`; not `/1/`). Anything from a `?` on
/// is ignored, should a path with its query be passed.
#[cfg(test)]
pub fn handshake_kind(args: &[u8], uri: &[u8]) -> Option<Kind> {
    let mut scan = super::extract::QueryScan::default();
    super::extract::scan_query(args, &super::extract::ArgNames::default(), &mut scan);
    handshake_shape(scan.eio, scan.sid, uri)
}

/// [`handshake_kind`] from the facts a query scan (`extract::scan_query`) found: an `EIO`
/// argument, a non-empty `sid` argument.
pub fn handshake_shape(eio: bool, sid: bool, uri: &[u8]) -> Option<Kind> {
    if eio {
        return (!sid).then_some(Kind::EngineIo);
    }
    let path = uri.split(|&c| c == b'?').next().unwrap_or(&[]);
    let resource = path.strip_suffix(b"/1/")?;
    resource
        .split(|&c| c == b'/')
        .any(|seg| !seg.is_empty())
        .then_some(Kind::Legacy09)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_engine_io() {
        let k = |a: &[u8]| handshake_kind(a, b"/socket.io/");
        assert_eq!(
            k(b"EIO=4&transport=polling&t=N8hyd6w"),
            Some(Kind::EngineIo)
        );
        assert_eq!(
            k(b"EIO=3&transport=polling&t=1&b64=1"),
            Some(Kind::EngineIo)
        );
        assert_eq!(k(b"EIO=3&transport=polling&j=0"), Some(Kind::EngineIo));
        assert_eq!(k(b"transport=websocket&EIO=4"), Some(Kind::EngineIo));
        assert_eq!(k(b"EIO=&transport=polling"), Some(Kind::EngineIo));
        assert_eq!(k(b"EIO=4&transport=polling&sid="), Some(Kind::EngineIo));
        assert_eq!(k(b"EIO=4&sid&transport=polling"), Some(Kind::EngineIo));
        assert_eq!(k(b"EIO=4&transport=polling&sid=x"), None);
        assert_eq!(
            k(b"sid=lv_VI97HAXpY6yYWAAAC&EIO=4&transport=websocket"),
            None
        );
        assert_eq!(k(b"EIO=4&sid=&sid=x"), None);
        // Exact, case-sensitive names; ';' is not a separator.
        assert_eq!(k(b"eio=4&transport=polling"), None);
        assert_eq!(k(b"EIO4&transport=polling"), None);
        assert_eq!(k(b"XEIO=4"), None);
        assert_eq!(k(b"t=1;EIO=4"), None);
        assert_eq!(k(b"EIO=4&SID=x"), Some(Kind::EngineIo));
        assert_eq!(k(b"EIO=4&sidx=1&xsid=2"), Some(Kind::EngineIo));
        assert_eq!(k(b"EIO=4;sid=x"), Some(Kind::EngineIo));
        assert_eq!(k(b""), None);
        assert_eq!(k(b"&&&="), None);
    }

    #[test]
    fn kind_legacy09() {
        let k = |u: &[u8]| handshake_kind(b"", u);
        assert_eq!(k(b"/socket.io/1/"), Some(Kind::Legacy09));
        assert_eq!(
            handshake_kind(b"t=1", b"/socket.io/1/"),
            Some(Kind::Legacy09)
        );
        assert_eq!(
            handshake_kind(b"t=1&jsonp=0", b"/socket.io/1/"),
            Some(Kind::Legacy09)
        );
        assert_eq!(k(b"/socket.io/1/?t=1"), Some(Kind::Legacy09));
        assert_eq!(k(b"/chat/io/1/"), Some(Kind::Legacy09));
        assert_eq!(k(b"//x//1/"), Some(Kind::Legacy09));
        assert_eq!(k(b"x/1/"), Some(Kind::Legacy09));
        assert_eq!(k(b"/1/"), None);
        assert_eq!(k(b"//1/"), None);
        assert_eq!(k(b"1/"), None);
        assert_eq!(k(b"/socket.io/1"), None);
        assert_eq!(k(b"/socket.io/11/"), None);
        assert_eq!(k(b"/socket.io/2/"), None);
        assert_eq!(k(b"/socket.io/1/xhr-polling/abc"), None);
        assert_eq!(k(b"/socket.io/1/websocket/abc/"), None);
        assert_eq!(k(b"/socket.io/"), None);
        assert_eq!(k(b""), None);
        // An EIO argument wins.
        assert_eq!(
            handshake_kind(b"EIO=3&transport=polling", b"/socket.io/1/"),
            Some(Kind::EngineIo)
        );
        assert_eq!(handshake_kind(b"EIO=3&sid=abc", b"/socket.io/1/"), None);
        // A sid argument alone does not matter to 0.9.
        assert_eq!(
            handshake_kind(b"sid=x", b"/socket.io/1/"),
            Some(Kind::Legacy09)
        );
    }
}
