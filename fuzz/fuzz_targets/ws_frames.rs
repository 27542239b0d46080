//! The gateway's WebSocket frame-header scanner (`FrameHeaders::scan`, which refuses a
//! frame claiming more than a record before any of it is buffered): any bytes, split
//! anywhere, give the verdict of a plain reference parser of RFC 6455 headers, and never
//! a panic. The first byte picks the limit and the split points.
#![no_main]

#[path = "../../crates/lanmesh-gateway/src/frame_headers.rs"]
#[allow(dead_code, unreachable_pub)]
mod frame_headers;

use frame_headers::FrameHeaders;
use libfuzzer_sys::fuzz_target;

/// Where the first frame over `max` starts its header, if one does (headers that end
/// with the data are not judged).
fn reference(mut data: &[u8], max: u64) -> Option<u64> {
    while data.len() >= 2 {
        let b1 = data[1];
        let ext = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        let head = 2 + ext + mask;
        if data.len() < head {
            return None;
        }
        let len = match ext {
            2 => u64::from(u16::from_be_bytes([data[2], data[3]])),
            8 => u64::from_be_bytes(data[2..10].try_into().unwrap()),
            _ => u64::from(b1 & 0x7f),
        };
        if len > max {
            return Some(len);
        }
        let rest = &data[head..];
        if (rest.len() as u64) < len {
            return None;
        }
        data = &rest[len as usize..];
    }
    None
}

fuzz_target!(|input: &[u8]| {
    let Some((&knob, data)) = input.split_first() else {
        return;
    };
    let max = usize::from(knob) * 4;
    let want = reference(data, max as u64);
    // Whole, then in chunks of a size the knob picks.
    let mut whole = FrameHeaders::new(max);
    let got = whole.scan(data).err().map(|e| e.len);
    assert_eq!(got, want, "whole");
    let mut split = FrameHeaders::new(max);
    let step = usize::from(knob % 7) + 1;
    let mut got = None;
    for chunk in data.chunks(step) {
        if let Err(e) = split.scan(chunk) {
            got = Some(e.len);
            break;
        }
    }
    assert_eq!(got, want, "in chunks of {step}");
    if want.is_some() {
        assert!(split.scan(b"x").is_err(), "a refused stream stays refused");
    }
});
