//! One-shot mDNS queries (RFC 6762 §5.1), answered at once and to the asker alone.
//!
//! Why not only the `mdns-sd` daemon: a full querier asks from port 5353 and hears
//! multicast answers, which a responder defers by 20–120 ms (PTR records are shared,
//! §6) and sends at most once a second per record and interface (the §6 rate limit). A
//! peer that asks within a second of another peer's question (or of the router's own
//! announcement) hears nothing until its daemon asks again a second later: that was the
//! ~1 s join of scripts calling `lanmesh send` in a loop. `mdns-sd` 0.21 ignores the
//! unicast-response (QU) bit of questions, so QU questions would not help; but a query
//! from any port other than 5353 is a *legacy unicast* query (§6.7), which it answers
//! straight away, by unicast to the asking socket, unthrottled, with the PTR record and
//! its SRV, TXT and A records as additionals: everything a peer needs, in one round trip.
//!
//! The flow:
//! 1. [`OneShot::send`]: one UDP socket per interface, bound to that interface's address
//!    and port 0 (Linux sends multicast from a socket bound to a local address out of the
//!    interface that owns it), sends one PTR question for [`SERVICE_TYPE`] to
//!    224.0.0.251:5353.
//! 2. [`OneShot::next`]: every responder's answer arrives on the socket it was asked from;
//!    [`decode`] parses it (name compression followed backwards only, every length checked
//!    before it is used), and [`services`] turns its records into [`Found`] routers.
//!
//! A host firewall that only lets in answers to connections it has seen drops these
//! answers (they come from port 5353 to an ephemeral port); the caller then falls back to
//! the daemon's browse, which needs no unicast.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use crate::browse::Found;
use crate::{DiscoveryError, MulticastInterface, SERVICE_TYPE};

const MDNS_GROUP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 251), 5353);
const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_TXT: u16 = 16;
const TYPE_SRV: u16 = 33;
const CLASS_IN: u16 = 1;
/// The top bit of a record's class is mDNS's cache-flush bit, not part of the class.
const CLASS_MASK: u16 = 0x7fff;
/// A DNS name is at most 255 bytes on the wire (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;
/// Answers larger than one Ethernet jumbo frame are not expected from a LAN responder.
const MAX_PACKET: usize = 9000;

/// A packet that is not a well-formed DNS message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed mDNS packet: {0}")]
pub(crate) struct Malformed(&'static str);

/// One-shot queries sent on every interface, waiting for their answers.
pub(crate) struct OneShot {
    sockets: Vec<UdpSocket>,
    id: u16,
    buf: Vec<u8>,
    /// Which socket to read first next time, so one busy interface cannot starve another.
    turn: usize,
}

impl OneShot {
    /// Asks for every lanmesh router on each of `interfaces`. Fails only when no
    /// interface could send the question.
    pub(crate) fn send(interfaces: &[MulticastInterface]) -> Result<Self, DiscoveryError> {
        let id = query_id();
        let query = encode_query(id, SERVICE_TYPE);
        let mut sockets = Vec::new();
        let mut last = None;
        for i in interfaces {
            match ask_on(i.addr, &query) {
                Ok(s) => sockets.push(s),
                Err(e) => {
                    tracing::debug!(interface = %i.name, error = %e, "one-shot mDNS query not sent");
                    last = Some(e);
                }
            }
        }
        if sockets.is_empty() {
            return Err(DiscoveryError::Mdns(match last {
                Some(e) => format!("one-shot query: {e}"),
                None => "one-shot query: no interface".to_owned(),
            }));
        }
        Ok(Self {
            sockets,
            id,
            buf: vec![0; MAX_PACKET],
            turn: 0,
        })
    }

    /// The routers of the next answer, waiting until `deadline` at most (`None` then).
    /// Packets that are not answers to this query are skipped.
    pub(crate) fn next(&mut self, deadline: Instant) -> Option<Vec<Found>> {
        // Blocking reads on several sockets, without a poller: short slices in turn.
        const SLICE: Duration = Duration::from_millis(2);
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            for k in 0..self.sockets.len() {
                let idx = (self.turn + k) % self.sockets.len();
                let socket = &self.sockets[idx];
                let wait = if self.sockets.len() == 1 {
                    left
                } else {
                    left.min(SLICE)
                };
                if socket
                    .set_read_timeout(Some(wait.max(Duration::from_micros(100))))
                    .is_err()
                {
                    continue;
                }
                let Ok((len, from)) = socket.recv_from(&mut self.buf) else {
                    continue;
                };
                self.turn = (idx + 1) % self.sockets.len();
                match decode(&self.buf[..len]) {
                    Ok(msg) if msg.is_answer_to(self.id) => return Some(services(&msg)),
                    Ok(_) => {}
                    Err(e) => tracing::debug!(%from, error = %e, "mDNS answer ignored"),
                }
            }
        }
    }
}

fn ask_on(addr: Ipv4Addr, query: &[u8]) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddrV4::new(addr, 0))?;
    // RFC 6762 §11: mDNS packets are sent with an IP TTL of 255; a one-hop LAN only.
    socket.set_multicast_ttl_v4(255)?;
    socket.send_to(query, MDNS_GROUP)?;
    Ok(socket)
}

/// An identifier that differs between processes and calls: the answer echoes it (§6.7).
fn query_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ std::process::id().rotate_left(16)) as u16 | 1
}

/// A DNS query with one question: `name`, type PTR, class IN (no QU bit: the source
/// port already asks for a unicast answer).
pub(crate) fn encode_query(id: u16, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + name.len() + 6);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // flags: a standard query
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question, no records
    for label in name.split('.').filter(|l| !l.is_empty()) {
        // The service type is a constant of a few short labels: never longer than 63.
        let len = label.len().min(63);
        out.push(len as u8);
        out.extend_from_slice(&label.as_bytes()[..len]);
    }
    out.push(0);
    out.extend_from_slice(&TYPE_PTR.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// What a record says, for the types discovery uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Data {
    Ptr(String),
    Srv { port: u16, target: String },
    Txt(Vec<(String, String)>),
    A(Ipv4Addr),
    Other,
}

/// One resource record of a message, any section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) name: String,
    pub(crate) data: Data,
}

/// A decoded DNS message: its header fields and every record of every section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) id: u16,
    pub(crate) response: bool,
    pub(crate) records: Vec<Record>,
}

impl Message {
    /// A response that echoes `id` (legacy unicast answers must, §6.7; multicast ones
    /// carry 0 and do not reach this socket anyway).
    fn is_answer_to(&self, id: u16) -> bool {
        self.response && self.id == id
    }
}

/// Reads a DNS message; every length is checked against what is left before use.
pub(crate) fn decode(packet: &[u8]) -> Result<Message, Malformed> {
    let header = packet.get(..12).ok_or(Malformed("shorter than a header"))?;
    let word = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let (id, flags) = (word(0), word(2));
    let questions = word(4);
    let records = usize::from(word(6)) + usize::from(word(8)) + usize::from(word(10));
    let mut at = 12;
    for _ in 0..questions {
        let (_, next) = read_name(packet, at)?;
        at = next
            .checked_add(4)
            .filter(|&n| n <= packet.len())
            .ok_or(Malformed("question cut short"))?;
    }
    // Each record takes at least 11 bytes: a count beyond that is a lie, not a reason
    // to allocate.
    let mut out = Vec::with_capacity(records.min(packet.len() / 11));
    for _ in 0..records {
        let (name, next) = read_name(packet, at)?;
        let fixed = packet
            .get(next..next + 10)
            .ok_or(Malformed("record header cut short"))?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]) & CLASS_MASK;
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let start = next + 10;
        let rdata = packet
            .get(start..start + len)
            .ok_or(Malformed("record data cut short"))?;
        let data = if class != CLASS_IN {
            Data::Other
        } else {
            match rtype {
                TYPE_PTR => Data::Ptr(read_name(packet, start)?.0),
                TYPE_SRV if len >= 7 => Data::Srv {
                    port: u16::from_be_bytes([rdata[4], rdata[5]]),
                    target: read_name(packet, start + 6)?.0,
                },
                TYPE_TXT => Data::Txt(read_txt(rdata)),
                TYPE_A if len == 4 => {
                    Data::A(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]))
                }
                _ => Data::Other,
            }
        };
        out.push(Record { name, data });
        at = start + len;
    }
    Ok(Message {
        id,
        response: flags & 0x8000 != 0,
        records: out,
    })
}

/// Reads the name at `at`; returns it (dotted, with the final dot) and where the bytes
/// after it start. Compression pointers must point strictly backwards, so a chain of them
/// ends: no loop, however the packet is made.
fn read_name(packet: &[u8], at: usize) -> Result<(String, usize), Malformed> {
    let mut name = String::new();
    let mut pos = at;
    let mut end = None;
    let mut lowest = at;
    loop {
        let len = *packet.get(pos).ok_or(Malformed("name cut short"))?;
        match len {
            0 => {
                if name.is_empty() {
                    name.push('.');
                }
                return Ok((name, end.unwrap_or(pos + 1)));
            }
            l if l & 0xc0 == 0xc0 => {
                let low = *packet.get(pos + 1).ok_or(Malformed("pointer cut short"))?;
                let target = usize::from(u16::from_be_bytes([l & 0x3f, low]));
                if target >= lowest {
                    return Err(Malformed("compression pointer not backwards"));
                }
                end.get_or_insert(pos + 2);
                lowest = target;
                pos = target;
            }
            l if l & 0xc0 != 0 => return Err(Malformed("unknown label type")),
            l => {
                let l = usize::from(l);
                let label = packet
                    .get(pos + 1..pos + 1 + l)
                    .ok_or(Malformed("label cut short"))?;
                if name.len() + l + 1 > MAX_NAME {
                    return Err(Malformed("name longer than 255 bytes"));
                }
                name.push_str(&String::from_utf8_lossy(label));
                name.push('.');
                pos += 1 + l;
            }
        }
    }
}

/// `key=value` strings of a TXT record (a string without `=` is a key with no value).
fn read_txt(mut rdata: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = rdata.split_first() {
        let len = usize::from(len).min(rest.len());
        let (item, rest) = rest.split_at(len);
        rdata = rest;
        let item = String::from_utf8_lossy(item);
        if item.is_empty() {
            continue;
        }
        match item.split_once('=') {
            Some((k, v)) => out.push((k.to_owned(), v.to_owned())),
            None => out.push((item.into_owned(), String::new())),
        }
    }
    out
}

/// The lanmesh routers a message describes: each PTR record for [`SERVICE_TYPE`] names an
/// instance, whose SRV record gives the port and host, whose A records give the
/// addresses, and whose TXT record the mesh and key. An instance missing any of them (or
/// with no IPv4 address) is left out: the daemon's browse will resolve it.
pub(crate) fn services(msg: &Message) -> Vec<Found> {
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let mut found = Vec::new();
    for r in &msg.records {
        let Data::Ptr(instance) = &r.data else {
            continue;
        };
        if !same(&r.name, SERVICE_TYPE) {
            continue;
        }
        let srv = msg.records.iter().find_map(|x| match &x.data {
            Data::Srv { port, target } if same(&x.name, instance) => Some((*port, target)),
            _ => None,
        });
        let txt = msg.records.iter().find_map(|x| match &x.data {
            Data::Txt(items) if same(&x.name, instance) => Some(items),
            _ => None,
        });
        let (Some((port, host)), Some(txt)) = (srv, txt) else {
            continue;
        };
        let addrs: Vec<SocketAddr> = msg
            .records
            .iter()
            .filter_map(|x| match x.data {
                Data::A(a) if same(&x.name, host) => Some(SocketAddr::from((a, port))),
                _ => None,
            })
            .collect();
        let props: BTreeMap<&str, &str> =
            txt.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if let Some(f) = Found::from_parts(instance, |k| props.get(k).copied(), addrs) {
            found.push(f);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends `name` uncompressed.
    fn name(out: &mut Vec<u8>, name: &str) {
        for l in name.split('.').filter(|l| !l.is_empty()) {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        out.push(0);
    }

    fn record(out: &mut Vec<u8>, owner: &[u8], rtype: u16, class: u16, rdata: &[u8]) {
        out.extend_from_slice(owner);
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&class.to_be_bytes());
        out.extend_from_slice(&10u32.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
    }

    /// An answer shaped like mdns-sd's legacy unicast one: the question echoed, the PTR
    /// answer, then SRV, TXT and A as additionals, with names compressed.
    fn answer(id: u16) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&0x8400u16.to_be_bytes());
        p.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 4]);
        let service_at = p.len() as u8; // 12
        name(&mut p, SERVICE_TYPE);
        p.extend_from_slice(&TYPE_PTR.to_be_bytes());
        p.extend_from_slice(&CLASS_IN.to_be_bytes());
        // PTR: _lanmesh._tcp.local. -> home.<pointer to the service type>
        let mut rdata = vec![4];
        rdata.extend_from_slice(b"home");
        rdata.extend_from_slice(&[0xc0, service_at]);
        let ptr_rdata_at = (p.len() + 2 + 10) as u8;
        record(&mut p, &[0xc0, service_at], TYPE_PTR, CLASS_IN, &rdata);
        // SRV of the instance: port 7400, target box.local.
        let mut srv = vec![0, 0, 0, 0, 0x1c, 0xe8];
        name(&mut srv, "box.local.");
        let target_at = (p.len() + 2 + 10 + 6) as u8;
        record(&mut p, &[0xc0, ptr_rdata_at], TYPE_SRV, 0x8001, &srv);
        let mut txt = Vec::new();
        for item in [
            "v=1",
            "mesh=home",
            "key=ab12",
            "ws=7401",
            "standby=0",
            "bare",
        ] {
            txt.push(item.len() as u8);
            txt.extend_from_slice(item.as_bytes());
        }
        record(&mut p, &[0xc0, ptr_rdata_at], TYPE_TXT, 0x8001, &txt);
        record(&mut p, &[0xc0, target_at], TYPE_A, 0x8001, &[10, 77, 0, 1]);
        record(&mut p, &[0xc0, target_at], TYPE_A, 0x8001, &[10, 78, 0, 1]);
        p
    }

    #[test]
    fn the_query_is_one_ptr_question_for_the_service_type() {
        let q = encode_query(0x1234, SERVICE_TYPE);
        let mut want = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        name(&mut want, SERVICE_TYPE);
        want.extend_from_slice(&[0, 12, 0, 1]);
        assert_eq!(q, want);
        let msg = decode(&q).unwrap();
        assert!(!msg.response && msg.records.is_empty());
    }

    #[test]
    fn an_answer_with_compressed_names_gives_the_router() {
        let msg = decode(&answer(7)).unwrap();
        assert!(msg.is_answer_to(7) && !msg.is_answer_to(8));
        let found = services(&msg);
        assert_eq!(
            found,
            [Found {
                instance: "home".into(),
                mesh: "home".into(),
                addrs: vec![
                    "10.77.0.1:7400".parse().unwrap(),
                    "10.78.0.1:7400".parse().unwrap()
                ],
                key: "ab12".into(),
                ws_port: Some(7401),
                standby: false,
            }]
        );
    }

    #[test]
    fn an_instance_without_an_address_is_left_to_the_browse() {
        let mut p = answer(7);
        // Drop the two A records (16 bytes each: pointer, fixed part, 4 bytes) and
        // their count.
        p.truncate(p.len() - 32);
        p[11] = 2;
        assert!(services(&decode(&p).unwrap()).is_empty());
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let p = answer(7);
        for len in 0..p.len() {
            assert!(decode(&p[..len]).is_err(), "cut at {len}");
        }
    }

    #[test]
    fn pointers_that_loop_or_point_forwards_are_refused() {
        let mut p = vec![0, 7, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&[0xc0, 12]); // points at itself
        p.extend_from_slice(&[0, 12, 0, 1]);
        assert_eq!(
            decode(&p),
            Err(Malformed("compression pointer not backwards"))
        );
        let mut p = vec![0, 7, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&[0xc0, 20, 0, 12, 0, 1, 0, 0]);
        assert!(decode(&p).is_err());
    }

    #[test]
    fn record_counts_larger_than_the_packet_are_an_error() {
        let mut p = answer(7);
        p[10] = 0xff;
        p[11] = 0xff;
        assert!(decode(&p).is_err());
    }

    #[test]
    fn a_name_longer_than_255_bytes_is_refused() {
        let mut p = vec![0, 7, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..5 {
            p.push(63);
            p.extend_from_slice(&[b'a'; 63]);
        }
        p.extend_from_slice(&[0, 0, 12, 0, 1]);
        assert_eq!(decode(&p), Err(Malformed("name longer than 255 bytes")));
    }
}
