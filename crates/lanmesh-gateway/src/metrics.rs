//! `GET /metrics` in the Prometheus text format.

use std::fmt::Write as _;

use actix_web::{HttpRequest, HttpResponse, web};
use lanmesh_router::RouterHandle;

use crate::access::Access;

pub(crate) async fn prometheus(
    req: HttpRequest,
    router: web::Data<RouterHandle>,
    access: web::Data<Access>,
) -> HttpResponse {
    if let Some(refusal) = access.refuse(&req) {
        return refusal;
    }
    let peers = router.peers().await.map(|p| p.len()).unwrap_or(0);
    let m = router.metrics();
    let rows: [(&str, &str, &str, u64); 10] = [
        ("lanmesh_peers", "gauge", "Peers in the mesh.", peers as u64),
        (
            "lanmesh_sessions_open",
            "gauge",
            "Open connections, handshaking or joined.",
            m.sessions_open,
        ),
        (
            "lanmesh_handshakes_open",
            "gauge",
            "Open connections still handshaking.",
            m.handshakes_open,
        ),
        (
            "lanmesh_sessions_total",
            "counter",
            "Connections accepted since start.",
            m.sessions_total,
        ),
        (
            "lanmesh_messages_total",
            "counter",
            "Messages forwarded, one per recipient.",
            m.messages,
        ),
        (
            "lanmesh_bytes_in_total",
            "counter",
            "Record bytes received from peers.",
            m.bytes_in,
        ),
        (
            "lanmesh_bytes_out_total",
            "counter",
            "Frame bytes queued to peers.",
            m.bytes_out,
        ),
        (
            "lanmesh_handshake_failures_total",
            "counter",
            "Handshakes that failed or timed out.",
            m.handshake_failures,
        ),
        (
            "lanmesh_dropped_total",
            "counter",
            "Messages refused with a Nack because a recipient was overloaded.",
            m.dropped,
        ),
        (
            "lanmesh_refused_connections_total",
            "counter",
            "Connections closed at once, or refused with \"router full\", for lack of a slot.",
            m.refused_connections,
        ),
    ];
    let federation: [(&str, &str, &str, u64); 6] = [
        (
            "lanmesh_nats_connected",
            "gauge",
            "1 while this federated router is connected to NATS.",
            u64::from(m.nats_connected),
        ),
        (
            "lanmesh_remote_peers",
            "gauge",
            "Peers of the mesh served by other routers.",
            m.remote_peers,
        ),
        (
            "lanmesh_nats_frames_out_total",
            "counter",
            "Frames (messages, acks, nacks) published to other routers.",
            m.nats_frames_out,
        ),
        (
            "lanmesh_nats_frames_in_total",
            "counter",
            "Frames received from other routers.",
            m.nats_frames_in,
        ),
        (
            "lanmesh_nats_broadcasts_out_total",
            "counter",
            "Broadcasts published to the other routers: one NATS message each, however many routers and peers.",
            m.nats_broadcasts_out,
        ),
        (
            "lanmesh_nats_broadcasts_in_total",
            "counter",
            "Broadcasts received from other routers, one per broadcast whatever the number of local members.",
            m.nats_broadcasts_in,
        ),
    ];
    let federated = if m.federated { &federation[..] } else { &[] };
    let mut out = String::new();
    for &(name, kind, help, value) in rows.iter().chain(federated) {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}
