//! Blob frames and the receiver's stream checks: any payload either decodes to a frame
//! that encodes back to the same bytes, or is an error; any sequence of decoded `Data`
//! frames leaves the receive window consistent.
#![no_main]

use bytes::Bytes;
use lanmesh_proto::blob::{BlobFrame, MIN_WINDOW, ReceiveWindow};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = BlobFrame::decode(Bytes::copy_from_slice(data)) {
        assert_eq!(&frame.to_bytes()[..], data);
    }
    // The input as a series of frames: [len u8, frame bytes].
    let mut window = ReceiveWindow::new(1, 200_000, MIN_WINDOW);
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        if let Ok(BlobFrame::Data {
            offset, last, data, ..
        }) = BlobFrame::decode(Bytes::copy_from_slice(frame))
        {
            if window.on_data(offset, data.len(), last).is_ok() {
                window.on_written(data.len() as u64 / 2);
            }
            assert!(window.written() <= window.received() && window.received() <= 200_000);
        }
    }
});
