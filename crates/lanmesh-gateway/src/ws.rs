//! `GET /mesh`: a WebSocket whose binary messages are records, bridged to a `Session`.

use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, HttpResponse, dev, web};
use actix_ws::AggregatedMessage;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use lanmesh_proto::Transport;
use lanmesh_proto::limits::MAX_RECORD;
use lanmesh_router::RouterHandle;
use tracing::debug;

use crate::frame_guard::FrameGuard;

/// WebSocket frames and whole messages are refused beyond one record plus headroom, so a
/// browser cannot make the gateway buffer more (not the library defaults).
const MAX_WS_MESSAGE: usize = MAX_RECORD + 1024;

pub(crate) async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    router: web::Data<RouterHandle>,
) -> actix_web::Result<HttpResponse> {
    let (response, session, incoming) = records(&req, body.into_inner()).await?;
    let remote = req
        .peer_addr()
        .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    // When the session ends, close the WebSocket too, so the browser learns at once.
    let closer = session.clone();
    let outgoing = futures_util::sink::unfold(Some(session), |session, record: Bytes| async move {
        let mut s = session.ok_or("closed")?;
        s.binary(record).await.map_err(|_| "closed")?;
        Ok::<_, &str>(Some(s))
    });
    let on_end = async move {
        let _ = closer.close(None).await;
    };
    let (read, write) = lanmesh_actix::bridge(incoming, Box::pin(outgoing), on_end);
    if !router.attach(remote, Transport::Ws, read, write) {
        debug!(%remote, "websocket refused at the connection limit");
    }
    Ok(response)
}

/// The inbound half of `GET /mesh`: upgrades `req` and turns the WebSocket that `payload`
/// carries into the records the browser sends, one per binary message. Frame headers are
/// checked as the bytes arrive, so a frame claiming more than a record is refused before
/// actix buffers any of it (see `frame_guard`); pings are answered; text, a close or a
/// protocol error ends the stream (and the session then closes the connection). Public
/// for the `ws_bridge` fuzz target, which feeds it arbitrary bytes.
pub async fn records(
    req: &HttpRequest,
    payload: dev::Payload,
) -> actix_web::Result<(
    HttpResponse,
    actix_ws::Session,
    Pin<Box<dyn Stream<Item = Bytes>>>,
)> {
    let guarded: Pin<Box<dyn Stream<Item = _>>> =
        Box::pin(FrameGuard::new(payload, MAX_WS_MESSAGE));
    let body = web::Payload::from_request(req, &mut dev::Payload::from(guarded)).await?;
    let (response, session, stream) = actix_ws::handle(req, body)?;
    let stream = stream
        .max_frame_size(MAX_WS_MESSAGE)
        .aggregate_continuations()
        .max_continuation_size(MAX_WS_MESSAGE);
    let control = session.clone();
    let incoming = stream
        .take_while(|m| {
            std::future::ready(matches!(
                m,
                Ok(AggregatedMessage::Binary(_)
                    | AggregatedMessage::Ping(_)
                    | AggregatedMessage::Pong(_))
            ))
        })
        .filter_map(move |m| {
            let out = match m {
                Ok(AggregatedMessage::Binary(b)) => Some(b),
                Ok(AggregatedMessage::Ping(p)) => {
                    let mut s = control.clone();
                    actix_web::rt::spawn(async move {
                        let _ = s.pong(&p).await;
                    });
                    None
                }
                _ => None,
            };
            std::future::ready(out)
        });
    Ok((response, session, Box::pin(incoming)))
}
