//! Percent-decoding and key limits (`extract::percent_decode`, `decode_key`, `within_limit`,
//! `needs_decoding`) against a naive decoder, and the byte helpers of `logic::bytes`
//! (`trim`, `unquote`, `split_once`, `find_byte`) against naive versions.
//!
//! Input: a byte choosing an output buffer size, a needle byte, then the raw value (the rest).
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketio_sticky_fuzz::logic::bytes::{find_byte, split_once, trim, unquote};
use socketio_sticky_fuzz::logic::extract::{
    decode_key, needs_decoding, percent_decode, within_limit, Rejected, MAX_KEY_LEN,
};
use socketio_sticky_fuzz::naive;

fuzz_target!(|data: &[u8]| {
    let [size_sel, needle, raw @ ..] = data else {
        return;
    };
    let want = naive::percent_decode(raw);

    // Into a buffer of the raw length: always fits, gives the naive decoding.
    let mut out = vec![0u8; raw.len()];
    let n = percent_decode(raw, &mut out).expect("a buffer of the raw length always fits");
    assert_eq!(&out[..n], &want[..], "percent_decode({raw:?})");
    assert!(n <= raw.len());

    // Into a buffer of any size: fits exactly when the decoding does; bytes past it untouched.
    let size = usize::from(*size_sel) % (raw.len() + 2);
    let mut small = vec![0xa5u8; size + 4];
    match percent_decode(raw, &mut small[..size]) {
        Some(n) => {
            assert!(
                want.len() <= size,
                "claimed to fit {} bytes in {size}",
                want.len()
            );
            assert_eq!(&small[..n], &want[..]);
        }
        None => assert!(want.len() > size, "{} bytes do fit in {size}", want.len()),
    }
    assert!(
        small[size..].iter().all(|&b| b == 0xa5),
        "wrote past the buffer"
    );

    // Encoding every byte and decoding gives the bytes back (both digit cases).
    for upper in [false, true] {
        let enc = naive::percent_encode_all(raw, upper);
        let mut buf = vec![0u8; enc.len()];
        let n = percent_decode(&enc, &mut buf).unwrap();
        assert_eq!(&buf[..n], raw);
    }

    // needs_decoding and within_limit.
    assert_eq!(needs_decoding(raw), raw.contains(&b'%'));
    match within_limit(raw) {
        Ok(v) => {
            assert!(raw.len() <= MAX_KEY_LEN);
            assert_eq!(v.as_ptr(), raw.as_ptr());
            assert_eq!(v.len(), raw.len());
        }
        Err(e) => {
            assert!(raw.len() > MAX_KEY_LEN);
            assert_eq!(e, Rejected::TooLong);
        }
    }

    // decode_key with memory of the asked size.
    let mut asked = None;
    let mut buf = vec![0u8; raw.len()];
    let got = decode_key(raw, |n| {
        asked = Some(n);
        buf.get_mut(..n)
    })
    .map(<[u8]>::to_vec);
    if !raw.contains(&b'%') {
        assert_eq!(asked, None, "asked for memory with nothing to decode");
        let expect = if raw.len() <= MAX_KEY_LEN {
            Ok(raw.to_vec())
        } else {
            Err(Rejected::TooLong)
        };
        assert_eq!(got, expect);
        // In place, no copy.
        let again = decode_key(raw, |_| None);
        if let Ok(v) = again {
            assert_eq!(v.as_ptr(), raw.as_ptr());
        }
    } else if raw.len() > 3 * MAX_KEY_LEN {
        assert_eq!(
            asked, None,
            "asked for memory for a value that can never fit"
        );
        assert_eq!(got, Err(Rejected::TooLong));
    } else {
        assert_eq!(asked, Some(raw.len()));
        let expect = if want.len() <= MAX_KEY_LEN {
            Ok(want.clone())
        } else {
            Err(Rejected::TooLong)
        };
        assert_eq!(got, expect, "decode_key({raw:?})");
        // Without memory, or with too little: NoMemory unless it still fits.
        assert_eq!(decode_key(raw, |_| None), Err(Rejected::NoMemory));
        let mut short = vec![0u8; size];
        let r = decode_key(raw, |n| short.get_mut(..n.min(size))).map(<[u8]>::to_vec);
        let expect = if want.len() > size {
            Err(Rejected::NoMemory)
        } else if want.len() > MAX_KEY_LEN {
            Err(Rejected::TooLong)
        } else {
            Ok(want.clone())
        };
        assert_eq!(r, expect, "decode_key({raw:?}) into {size} bytes");
    }

    // Byte helpers.
    let needles = [*needle, b'&', b'%', b'=', b';', 0, 0xff];
    for nd in needles {
        assert_eq!(
            find_byte(raw, nd),
            raw.iter().position(|&c| c == nd),
            "find_byte({raw:?}, {nd})"
        );
        // At every start offset too (the eight-byte steps meet every alignment).
        if nd == *needle {
            for at in 0..raw.len().min(9) {
                assert_eq!(
                    find_byte(&raw[at..], nd),
                    raw[at..].iter().position(|&c| c == nd)
                );
            }
        }
        assert_eq!(
            naive::span(raw, split_once(raw, nd).map(|p| p.0)),
            naive::span(raw, naive::split_once(raw, nd).map(|p| p.0))
        );
        assert_eq!(split_once(raw, nd), naive::split_once(raw, nd));
    }
    assert_eq!(
        naive::span(raw, Some(trim(raw))),
        naive::span(raw, Some(naive::trim(raw)))
    );
    assert_eq!(
        naive::span(raw, Some(unquote(raw))),
        naive::span(raw, Some(naive::unquote(raw)))
    );
});
