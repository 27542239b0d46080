//! Several sessions of one key under one name (a `lanmesh listen --name PC2` and any
//! number of `lanmesh send --name PC2` beside it): none evicts another, the name's
//! messages go to the receiving one, and each answer goes to the session that asked.
#![allow(clippy::unwrap_used)]

mod sim;

use std::time::Duration;

use bytes::Bytes;
use lanmesh_core::peer::{Config, Event};
use lanmesh_proto::{Destination, Name};
use sim::Sim;

const MS: Duration = Duration::from_millis(1);

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

/// `base` as a sending session with `slot` (and its own resume token).
fn sender(sim: &mut Sim, base: &Config, slot: u32) -> Config {
    let mut c = base.clone();
    c.slot = slot;
    c.resume_token = Bytes::copy_from_slice(&sim.rng.next().to_be_bytes());
    c
}

#[test]
fn senders_beside_a_receiver_of_the_same_name_get_their_own_answers() {
    let mut sim = Sim::new(sim::seed(21));
    let pc2 = sim.config("PC2");
    let b = sim.config("B");
    let listener = sim.add_peer(pc2.clone());
    let b = sim.add_peer(b);
    sim.connect(listener);
    sim.connect(b);
    sim.peers[b].set_answers_requests(true);
    // Ten sending sessions of the same key and name join; the listener stays.
    let senders: Vec<usize> = (1..=10u32)
        .map(|k| {
            let c = sender(&mut sim, &pc2, k * 977);
            sim.add_peer(c)
        })
        .collect();
    for &s in &senders {
        sim.connect(s);
    }
    assert!(sim.peers[listener].is_running(), "the listener was evicted");
    assert_eq!(sim.member_names(), ["B", "PC2"]);
    // Each sender's acked message is acknowledged to it, and its request answered to it.
    let mut ids = Vec::new();
    for (i, &s) in senders.iter().enumerate() {
        let now = sim.now;
        let id = sim.peers[s]
            .send_acked(&name("B"), Bytes::from(format!("from sender {i}")), 0, now)
            .unwrap();
        let req = sim.peers[s]
            .request(
                &name("B"),
                Bytes::from(format!("q{i}")),
                0,
                Duration::from_secs(5),
                now,
            )
            .unwrap();
        ids.push((s, id, req));
    }
    let mut got = Vec::new();
    sim.run_until(5_000, MS, |sim| {
        for e in sim.take_events(b) {
            match e {
                Event::Message(m) => got.push(m.data),
                Event::Request(r) => {
                    let answer = [b"a:".as_slice(), &r.data].concat();
                    sim.peers[b]
                        .reply(
                            &r.from,
                            r.id,
                            &answer,
                            core::str::from_utf8(&answer).is_ok(),
                        )
                        .unwrap();
                }
                _ => {}
            }
        }
        got.len() == senders.len()
    });
    for (i, (s, id, req)) in ids.into_iter().enumerate() {
        let mut acked = false;
        let mut reply = None;
        sim.run_until(5_000, MS, |sim| {
            for e in sim.take_events(s) {
                match e {
                    Event::Acked { id: a } if a == id => acked = true,
                    Event::Reply { id: r, reply: m } if r == req => reply = Some(m.data),
                    Event::SendFailed { error, .. } | Event::RequestFailed { error, .. } => {
                        panic!("sender {i}: {error}")
                    }
                    _ => {}
                }
            }
            acked && reply.is_some()
        });
        assert_eq!(reply.unwrap(), Bytes::from(format!("a:q{i}")));
    }
    // Messages to the name reach the listener, not a sender.
    sim.peers[b]
        .send(
            &Destination::Peer(name("PC2")),
            Bytes::from_static(b"to PC2"),
            0,
        )
        .unwrap();
    let mut heard = Vec::new();
    sim.run_until(1_000, MS, |sim| {
        for p in std::iter::once(listener).chain(senders.iter().copied()) {
            for e in sim.take_events(p) {
                if let Event::Message(m) = e {
                    heard.push((p, m.data));
                }
            }
        }
        !heard.is_empty()
    });
    assert_eq!(heard, vec![(listener, Bytes::from_static(b"to PC2"))]);
    // Senders leave; the name stays while the listener holds it, and B heard no PeerLeft.
    for &s in &senders {
        sim.peers[s].close(sim.now);
    }
    for _ in 0..100 {
        sim.step(MS);
    }
    assert_eq!(sim.member_names(), ["B", "PC2"]);
    assert!(
        !sim.take_events(b)
            .iter()
            .any(|e| matches!(e, Event::Peer(lanmesh_core::PeerEvent::Left(_)))),
        "a sender leaving looked like PC2 leaving"
    );
}

#[test]
fn acked_streams_of_two_sessions_of_one_name_do_not_mix() {
    let mut sim = Sim::new(sim::seed(22));
    let pc2 = sim.config("PC2");
    let b = sim.config("B");
    let listener = sim.add_peer(pc2.clone());
    let b = sim.add_peer(b);
    let extra = sender(&mut sim, &pc2, 5);
    let extra = sim.add_peer(extra);
    for p in [listener, b, extra] {
        sim.connect(p);
    }
    // Both sessions of PC2 keep acked streams to B at once, interleaved.
    let mut acked = 0;
    for round in 0..200u32 {
        for (p, tag) in [(listener, "L"), (extra, "S")] {
            let now = sim.now;
            sim.peers[p]
                .send_acked(&name("B"), Bytes::from(format!("{tag}{round}")), 0, now)
                .unwrap();
        }
        sim.step(MS);
        for p in [listener, extra] {
            acked += sim
                .take_events(p)
                .iter()
                .filter(|e| matches!(e, Event::Acked { .. }))
                .count();
        }
    }
    sim.run_until(5_000, MS, |sim| {
        for p in [listener, extra] {
            acked += sim
                .take_events(p)
                .iter()
                .filter(|e| matches!(e, Event::Acked { .. }))
                .count();
        }
        acked == 400
    });
    let got: Vec<String> = sim
        .take_events(b)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(String::from_utf8(m.data.to_vec()).unwrap()),
            _ => None,
        })
        .collect();
    let from_listener: Vec<&String> = got.iter().filter(|m| m.starts_with('L')).collect();
    let from_extra: Vec<&String> = got.iter().filter(|m| m.starts_with('S')).collect();
    let want = |tag: &str| (0..200).map(|i| format!("{tag}{i}")).collect::<Vec<_>>();
    assert_eq!(from_listener, want("L").iter().collect::<Vec<_>>());
    assert_eq!(from_extra, want("S").iter().collect::<Vec<_>>());
    assert_eq!(sim.peers[b].stats().duplicates, 0);
}

#[test]
fn a_file_from_a_sending_session_gets_its_answers_there() {
    use lanmesh_core::peer::FileEvent;
    let mut sim = Sim::new(sim::seed(23));
    let pc2 = sim.config("PC2");
    let b = sim.config("B");
    let listener = sim.add_peer(pc2.clone());
    let b = sim.add_peer(b);
    let extra = sender(&mut sim, &pc2, 77);
    let extra = sim.add_peer(extra);
    for p in [listener, b, extra] {
        sim.connect(p);
    }
    sim.peers[b].set_accepts_files(true);
    let now = sim.now;
    let blob = sim.peers[extra]
        .offer_file(&name("B"), 100_000, "notes.bin", now)
        .unwrap();
    let mut delivered = false;
    sim.run_until(20_000, MS, |sim| {
        // B stores whatever arrives at once.
        for e in sim.take_events(b) {
            match e {
                Event::File(FileEvent::Offered { from, blob, .. }) => {
                    let now = sim.now;
                    sim.peers[b].accept_file(&from, blob, now);
                }
                Event::File(FileEvent::Data {
                    from,
                    blob,
                    offset,
                    data,
                    last,
                }) => {
                    let now = sim.now;
                    let written = offset + data.len() as u64;
                    if last {
                        sim.peers[b].file_written(&from, blob, written, now);
                        sim.peers[b].file_saved(&from, blob);
                    } else {
                        sim.peers[b].file_written(&from, blob, written, now);
                    }
                }
                _ => {}
            }
        }
        // The sender feeds the window.
        while let Some(len) = sim.peers[extra].file_room(blob) {
            sim.peers[extra]
                .file_chunk(blob, Bytes::from(vec![7u8; len]))
                .unwrap();
        }
        for e in sim.take_events(extra) {
            match e {
                Event::File(FileEvent::Delivered { blob: done, size }) => {
                    assert_eq!((done, size), (blob, 100_000));
                    delivered = true;
                }
                Event::File(FileEvent::SendFailed { error, .. }) => panic!("{error}"),
                _ => {}
            }
        }
        delivered
    });
    assert!(
        !sim.take_events(listener)
            .iter()
            .any(|e| matches!(e, Event::File(_))),
        "the listener got the sender's answers"
    );
}
