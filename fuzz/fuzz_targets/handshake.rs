//! The handshake with hostile messages: a router reading any message 1 and 3, a peer
//! reading any message 2, and a real message 1 with bytes flipped.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use lanmesh_proto::{Answer, HandshakeConfig, Identity, Initiator, Name, Responder};
use libfuzzer_sys::fuzz_target;

fn configs() -> &'static (HandshakeConfig, HandshakeConfig) {
    static C: OnceLock<(HandshakeConfig, HandshakeConfig)> = OnceLock::new();
    C.get_or_init(|| {
        let peer = HandshakeConfig::new(Identity::generate().expect("keys"), "lanmesh");
        let router = HandshakeConfig::new(Identity::generate().expect("keys"), "lanmesh");
        (peer, router)
    })
}

fuzz_target!(|data: &[u8]| {
    let (peer, router) = configs();
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 3 {
        // Router side: arbitrary message 1, then the rest as message 3.
        0 => {
            let split = rest.len() / 2;
            let mut resp = Responder::new(router).expect("responder");
            if let Ok(Answer::Accept(_)) = resp.read_offer(&rest[..split]) {
                let _ = resp.read_confirm(&rest[split..]);
            }
        }
        // Peer side: arbitrary message 2.
        1 => {
            let name = Name::new("fuzz").expect("valid name");
            let (init, _) = Initiator::start(peer, Some(name), Bytes::new()).expect("initiator");
            let _ = init.read_choice(rest);
        }
        // A real message 1 with the input XORed in.
        _ => {
            let name = Name::new("fuzz").expect("valid name");
            let (_, mut msg1) = Initiator::start(peer, Some(name), Bytes::new()).expect("initiator");
            for (i, b) in rest.iter().enumerate() {
                let at = i % msg1.len();
                msg1[at] ^= b;
            }
            let mut resp = Responder::new(router).expect("responder");
            let _ = resp.read_offer(&msg1);
        }
    }
});
