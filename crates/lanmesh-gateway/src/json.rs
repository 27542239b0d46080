//! `GET /api/peers`, in the format of `lanmesh peers --json`: the mesh's peers, with
//! `messages_sent` and `messages_received` for this router's own members. A federated
//! router lists the other routers' members too, each with its `"router"`: what any peer
//! of the mesh learns from its member list, and no more (no NATS address or credential).

use actix_web::{HttpRequest, HttpResponse, web};
use lanmesh_proto::PeerInfo;
use lanmesh_router::RouterHandle;

use crate::access::Access;

/// One member as JSON: `{"name","transport","cipher","compression","key","addr","joined_ms"}`
/// (the `lanmesh peers --json` contract, in that order).
pub fn peer_json(p: &PeerInfo) -> serde_json::Value {
    // A federated router gives each peer's address as `ADDR via ROUTER`.
    let (addr, router) = match p.addr.split_once(" via ") {
        Some((addr, router)) => (addr, Some(router)),
        None => (p.addr.as_str(), None),
    };
    let mut v = serde_json::json!({
        "name": p.name.as_str(),
        "transport": p.transport.as_str(),
        "cipher": p.cipher.as_str(),
        "compression": p.compression.as_str(),
        "key": hex::encode(p.key),
        "addr": addr,
        "joined_ms": p.joined_ms,
        // Where the router introduced it for direct links: native peers that can reach
        // that address talk to it there, the others (browsers, boards) through the router.
        "path": if p.direct.is_empty() { "router" } else { "direct" },
        "direct": (!p.direct.is_empty()).then_some(p.direct.as_str()),
    });
    if let (Some(router), Some(obj)) = (router, v.as_object_mut()) {
        obj.insert("router".into(), router.into());
    }
    v
}

pub(crate) async fn peers(
    req: HttpRequest,
    router: web::Data<RouterHandle>,
    access: web::Data<Access>,
) -> HttpResponse {
    if let Some(refusal) = access.refuse(&req) {
        return refusal;
    }
    match router.peer_stats().await {
        Ok(stats) => {
            let list: Vec<serde_json::Value> = stats
                .iter()
                .map(|s| {
                    let mut v = peer_json(&s.info);
                    // Another router's member: its traffic is counted there.
                    if s.local {
                        v["messages_sent"] = s.messages_sent.into();
                        v["messages_received"] = s.messages_received.into();
                    }
                    v
                })
                .collect();
            HttpResponse::Ok()
                .content_type("application/json")
                .body(serde_json::Value::Array(list).to_string())
        }
        Err(e) => HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(format!("{e}\n")),
    }
}
