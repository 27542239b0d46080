//! Record and frame decoding: any bytes give frames or an error, never a panic; every
//! frame that decodes encodes back to bytes that decode to the same frame.
#![no_main]

use bytes::{Bytes, BytesMut};
use lanmesh_proto::{Frame, Frames, RecordDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for frame in Frames::new(Bytes::copy_from_slice(data)) {
        let Ok(frame) = frame else { break };
        let mut buf = BytesMut::new();
        frame.encode(&mut buf).expect("a decoded frame fits in a record");
        let again: Vec<Frame> = Frames::new(buf.freeze()).map(|f| f.expect("re-decodes")).collect();
        assert_eq!(again, vec![frame]);
    }
    let max = data.first().map_or(64, |b| usize::from(*b) * 256 + 1);
    let mut decoder = RecordDecoder::new(max);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(record)) = decoder.decode(&mut buf) {
        assert!(record.len() <= max);
    }
});
