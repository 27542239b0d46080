//! The gateway's WebSocket path as `GET /mesh` runs it: arbitrary bytes arrive on an
//! upgraded connection, split anywhere, and pass the frame guard, actix-ws (its frame
//! parser, unmasking, continuation aggregation, pings) and the bridge into the
//! length-prefixed byte stream the router's session reads. Whatever the bytes, nothing
//! panics, nothing is amplified (the stream never carries more than arrived, plus two
//! prefix bytes a record), and every record handed on is non-empty and within one record.
//! The first byte picks the split points.
#![no_main]

use std::pin::Pin;

use actix_web::dev;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::test::TestRequest;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use lanmesh_proto::RecordDecoder;
use lanmesh_proto::limits::MAX_RECORD;
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncReadExt;

fn upgrade_request() -> actix_web::HttpRequest {
    TestRequest::get()
        .uri("/mesh")
        .insert_header((header::UPGRADE, "websocket"))
        .insert_header((header::CONNECTION, "Upgrade"))
        .insert_header((header::SEC_WEBSOCKET_VERSION, "13"))
        .insert_header((header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ=="))
        .to_http_request()
}

fn chunks(data: &[u8]) -> Vec<Bytes> {
    let Some((&seed, rest)) = data.split_first() else {
        return Vec::new();
    };
    let step = usize::from(seed % 17) + 1;
    let mut out = Vec::new();
    let mut at = 0;
    let mut n = 0;
    while at < rest.len() {
        // Irregular cuts: 1..=step bytes, then a long run, so headers split anywhere.
        let len = if n % 3 == 2 { 4096 } else { (n * 7 + step) % step + 1 };
        let end = (at + len).min(rest.len());
        out.push(Bytes::copy_from_slice(&rest[at..end]));
        at = end;
        n += 1;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let pieces = chunks(data);
    let arrived: usize = pieces.iter().map(Bytes::len).sum();
    actix_rt::System::new().block_on(async move {
        let stream = futures_util::stream::iter(pieces.into_iter().map(Ok::<_, PayloadError>));
        let boxed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(stream);
        let req = upgrade_request();
        let Ok((_response, _session, incoming)) =
            lanmesh_gateway::ws_records(&req, dev::Payload::from(boxed)).await
        else {
            return;
        };
        let sink = futures_util::sink::drain::<Bytes>();
        let (mut read, _write) = lanmesh_actix::bridge(incoming, Box::pin(sink), async {});
        let mut out = Vec::new();
        read.read_to_end(&mut out).await.expect("the bridge's pipe");
        let mut buf = BytesMut::from(&out[..]);
        let mut decoder = RecordDecoder::new(MAX_RECORD);
        let mut records = 0usize;
        while let Ok(Some(r)) = decoder.decode(&mut buf) {
            assert!(!r.is_empty(), "an empty record was handed on");
            records += 1;
        }
        assert!(buf.is_empty(), "the stream ends between records");
        assert!(
            out.len() <= arrived + 2 * records,
            "{} bytes out of {arrived} in",
            out.len()
        );
    });
});
