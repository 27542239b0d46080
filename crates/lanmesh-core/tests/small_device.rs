//! A small device (a board with 4 KiB records and 16 KiB messages) declares its limits in
//! its offer, and the router honours them: records to it are sealed at its size and
//! messages cut to fit, a message it cannot take is refused to its sender with
//! `Nack(TooLarge)`, and the device's session never sees more than it said it takes.
#![allow(clippy::unwrap_used)]

mod sim;

use std::time::Duration;

use bytes::Bytes;
use lanmesh_core::ClientError;
use lanmesh_core::peer::Event;
use lanmesh_proto::Name;
use sim::Sim;

const MS: Duration = Duration::from_millis(1);
const RECORD: usize = 4096;
const MESSAGE: u64 = 16 * 1024;

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

/// Bytes Snappy cannot shrink, so the size on the wire is the size sent.
fn incompressible(len: usize, seed: u64) -> Bytes {
    let mut rng = sim::Rng::new(seed);
    (0..len)
        .map(|_| rng.next() as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// A laptop peer and a board peer, both in the mesh.
fn mesh() -> (Sim, usize, usize) {
    let mut sim = Sim::new(sim::seed(31));
    let laptop = sim.config("laptop");
    let mut board = sim.config("board");
    board.handshake.limits.max_record = RECORD;
    board.handshake.limits.max_message = MESSAGE;
    let laptop = sim.add_peer(laptop);
    let board = sim.add_peer(board);
    sim.connect(laptop);
    sim.connect(board);
    (sim, laptop, board)
}

#[test]
fn a_message_bigger_than_a_record_reaches_the_board_in_pieces_that_fit() {
    let (mut sim, laptop, board) = mesh();
    let data = incompressible(12 * 1024, 7);
    let now = sim.now;
    let id = sim.peers[laptop]
        .send_acked(&name("board"), data.clone(), 0, now)
        .unwrap();
    let mut got = Vec::new();
    let mut acked = false;
    sim.run_until(5_000, MS, |sim| {
        for e in sim.take_events(board) {
            if let Event::Message(m) = e {
                got.push(m.data);
            }
        }
        acked |= sim
            .take_events(laptop)
            .iter()
            .any(|e| matches!(e, Event::Acked { id: a } if *a == id));
        acked && !got.is_empty()
    });
    assert_eq!(got, vec![data], "delivered once, intact");
    assert!(sim.peers[board].is_running(), "the board kept its session");
}

#[test]
fn a_message_the_board_cannot_take_is_refused_to_its_sender() {
    let (mut sim, laptop, board) = mesh();
    let now = sim.now;
    let id = sim.peers[laptop]
        .send_acked(&name("board"), incompressible(20 * 1024, 9), 0, now)
        .unwrap();
    let mut failed = None;
    sim.run_until(5_000, MS, |sim| {
        for e in sim.take_events(laptop) {
            if let Event::SendFailed { id: f, error } = e {
                assert_eq!(f, id);
                failed = Some(error);
            }
        }
        failed.is_some()
    });
    assert!(
        matches!(&failed, Some(ClientError::RefusedTooLarge { name, .. }) if name == "board"),
        "{failed:?}"
    );
    assert!(
        !sim.take_events(board)
            .iter()
            .any(|e| matches!(e, Event::Message(_))),
        "the board never saw it"
    );
    // And what fits still goes through.
    let now = sim.now;
    let id = sim.peers[laptop]
        .send_acked(&name("board"), Bytes::from_static(b"21.5 C"), 0, now)
        .unwrap();
    sim.run_until(5_000, MS, |sim| {
        sim.take_events(laptop)
            .iter()
            .any(|e| matches!(e, Event::Acked { id: a } if *a == id))
    });
    assert!(sim.peers[board].is_running());
}
