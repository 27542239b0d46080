//! Decompression and reassembly: declared lengths are checked before allocating, and
//! nothing comes out larger than the limit.
#![no_main]

use bytes::Bytes;
use lanmesh_proto::compress::decompress;
use lanmesh_proto::frame::{Chunk, Message};
use lanmesh_proto::{Limits, Name, Reassembler};
use libfuzzer_sys::fuzz_target;

const MAX: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = decompress(data, MAX) {
        assert!(out.len() as u64 <= MAX);
    }
    // The input as a series of chunks: [flags, offset u16, total u16, len u8, payload].
    let limits = Limits { max_message: MAX, max_partial_messages: 4, ..Limits::default() };
    let mut r = Reassembler::new(limits);
    let name = Name::new("fuzz").expect("valid name");
    let mut rest = data;
    while rest.len() >= 6 {
        let flags = rest[0];
        let offset = u64::from(u16::from_be_bytes([rest[1], rest[2]]));
        let total = u64::from(u16::from_be_bytes([rest[3], rest[4]]));
        let len = usize::from(rest[5]).min(rest.len() - 6);
        let payload = Bytes::copy_from_slice(&rest[6..6 + len]);
        rest = &rest[6 + len..];
        let chunk = (flags & 0x80 != 0).then_some(Chunk { offset, total });
        let m = Message { peer: name.clone(), id: u64::from(flags & 3), flags: flags & 0x01, chunk, prev: None, payload };
        if let Ok(Some(done)) = r.push(m) {
            assert!(done.data.len() as u64 <= MAX);
        }
    }
});
