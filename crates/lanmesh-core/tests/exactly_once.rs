//! The cores in a simulated mesh, without sockets: acked messages are delivered exactly
//! once and in order across many cut connections, with the stream fragmented and delayed.
//! `LANMESH_SIM_SEED` replays another run.
#![allow(clippy::unwrap_used)]

mod sim;

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use lanmesh_core::Status;
use lanmesh_core::peer::Event;
use sim::{Faults, Sim};

const MS: Duration = Duration::from_millis(1);

/// What `B` received, in order, as message numbers.
fn numbers(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(u64::from_be_bytes(m.data[..8].try_into().unwrap())),
            _ => None,
        })
        .collect()
}

fn payload(n: u64) -> Bytes {
    let mut v = n.to_be_bytes().to_vec();
    v.extend_from_slice(&[0x5a; 56]);
    Bytes::from(v)
}

#[test]
fn twenty_thousand_acked_messages_arrive_once_and_in_order_across_random_cuts() {
    const TOTAL: u64 = 20_000;
    const WINDOW: usize = 256;
    let seed = sim::seed(0x5eed_1a2b);
    let mut sim = Sim::new(seed);
    sim.faults = Faults {
        max_chunk: 3000,
        delay_one_in: 5,
    };
    let mut a = sim.config("A");
    // Nothing is given up on: every message must arrive.
    a.ack_timeout = Duration::from_secs(3600);
    a.resend_after = Duration::from_millis(200);
    let mut b = sim.config("B");
    b.ack_timeout = Duration::from_secs(3600);
    let a = sim.add_peer(a);
    let b = sim.add_peer(b);
    sim.connect(a);
    sim.connect(b);
    let to_b = lanmesh_proto::Name::new("B").unwrap();

    let (mut next, mut in_flight, mut acked) = (0u64, BTreeSet::new(), 0u64);
    let mut got = Vec::new();
    let mut cuts = 0;
    let mut steps = 0;
    while (got.len() as u64) < TOTAL || acked < TOTAL {
        steps += 1;
        assert!(
            steps < 400_000,
            "stuck: {} received, {acked} acked",
            got.len()
        );
        while next < TOTAL && in_flight.len() < WINDOW {
            let now = sim.now;
            match sim.peers[a].send_acked(&to_b, payload(next), 0, now) {
                Ok(id) => {
                    in_flight.insert(id);
                    next += 1;
                }
                // Before the first welcome of a reconnect nothing can be queued.
                Err(_) => break,
            }
        }
        // Cuts: now and then, either peer loses its connection.
        if sim.rng.one_in(150) {
            let who = if sim.rng.one_in(2) { a } else { b };
            if sim.peer_link[who].is_some() {
                sim.cut(who);
                cuts += 1;
            }
        }
        sim.step(MS);
        for e in sim.take_events(a) {
            match e {
                Event::Acked { id } => {
                    assert!(in_flight.remove(&id), "ack for {id} twice or for nothing");
                    acked += 1;
                }
                Event::SendFailed { id, error } => panic!("message {id} failed: {error}"),
                Event::Closed { error, .. } => panic!("A closed: {error}"),
                _ => {}
            }
        }
        for e in sim.take_events(b) {
            if let Event::Closed { error, .. } = &e {
                panic!("B closed: {error}");
            }
            got.extend(numbers(std::slice::from_ref(&e)));
        }
    }
    let expected: Vec<u64> = (0..TOTAL).collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "seed {seed}: duplicates or losses"
    );
    assert_eq!(got, expected, "seed {seed}: out of order");
    assert!(
        cuts >= 10,
        "seed {seed}: only {cuts} cuts; the test proves little"
    );
    assert!(
        matches!(sim.peers[a].status(), Status::Connected { .. }),
        "{:?}",
        sim.peers[a].status()
    );
    // The duplicates the cuts made were filtered, not delivered.
    eprintln!(
        "seed {seed}: {TOTAL} messages, {cuts} cuts, {steps} steps, {} duplicates dropped",
        sim.peers[b].stats().duplicates
    );
}

#[test]
fn plain_messages_between_cuts_arrive_at_most_once() {
    let mut sim = Sim::new(sim::seed(7));
    let a = sim.config("A");
    let b = sim.config("B");
    let a = sim.add_peer(a);
    let b = sim.add_peer(b);
    sim.connect(a);
    sim.connect(b);
    let dest = lanmesh_proto::Destination::Peer(lanmesh_proto::Name::new("B").unwrap());
    let mut sent = 0u64;
    let mut got = Vec::new();
    for step in 0..20_000u32 {
        if sim.peers[a].is_running() && sent < 5_000 {
            sim.peers[a].send(&dest, payload(sent), 0).unwrap();
            sent += 1;
        }
        if step % 997 == 500 {
            sim.cut(if step % 2 == 0 { a } else { b });
        }
        sim.step(MS);
        sim.take_events(a);
        got.extend(numbers(&sim.take_events(b)));
    }
    let unique: BTreeSet<u64> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "a plain message arrived twice");
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "plain messages reordered"
    );
    assert!(got.len() > 1000, "only {} of {sent} arrived", got.len());
}

#[test]
fn acked_streams_go_on_across_a_router_restart_whichever_peer_rejoins_first() {
    for receiver_first in [true, false] {
        let mut sim = Sim::new(sim::seed(0x07e5_7a27));
        // Each process names itself; the restarted router announces each as joined.
        let mut ca = sim.config("A");
        ca.incarnation = 11;
        let a = sim.add_peer(ca);
        let mut cb = sim.config("B");
        cb.incarnation = 22;
        let b = sim.add_peer(cb);
        sim.connect(a);
        sim.connect(b);
        sim.run_until(1000, MS, |s| s.peers[a].peers().count() == 2);
        let to = lanmesh_proto::Name::new("B").unwrap();
        let (mut acked, mut got) = (0usize, Vec::new());
        let tally = |sim: &mut Sim, acked: &mut usize, got: &mut Vec<u64>| {
            for e in sim.take_events(a) {
                match e {
                    Event::Acked { .. } => *acked += 1,
                    Event::SendFailed { error, .. } => panic!("a send failed: {error}"),
                    _ => {}
                }
            }
            got.extend(numbers(&sim.take_events(b)));
        };
        for n in 0..600u64 {
            let now = sim.now;
            sim.peers[a].send_acked(&to, payload(n), 0, now).unwrap();
            sim.step(MS);
            tally(&mut sim, &mut acked, &mut got);
            if n == 200 {
                let (first, later) = if receiver_first { (b, a) } else { (a, b) };
                sim.hold_dial.insert(later);
                sim.restart_router();
                sim.run_until(10_000, MS, |s| s.peers[first].is_running());
                sim.release_dial(later);
            }
        }
        sim.run_until(20_000, MS, |s| {
            tally(s, &mut acked, &mut got);
            acked == 600 && got.len() >= 600
        });
        assert_eq!(
            got,
            (0..600).collect::<Vec<_>>(),
            "receiver first: {receiver_first}"
        );
    }
}
