//! `lanmesh peer`: one long-lived named peer driven through a pipe, so that a program in
//! any language is a full peer — it sends, broadcasts, asks and answers, and hears what
//! arrives.
//!
//! 1. The peer joins and prints `{"event":"ready","name":..,"peers":[..]}`.
//! 2. Each line on stdin is one JSON object, one action: `{"to","data"}` sends (with
//!    `"ack":true` acknowledged), `{"broadcast":true,"data"}` broadcasts,
//!    `{"to","request","timeout_ms"}` asks, `{"reply":ID,"to","data"}` answers a request
//!    that arrived (`{"decline":ID,"to"}` refuses it). `"encoding":"base64"` marks binary
//!    data; any `"ref"` is echoed in the line that reports the action's outcome.
//! 3. Each line on stdout is one JSON object: a message in the `listen --json` shape
//!    (`{"from","id","data"}`), or an `"event"`: `acked`, `sent`, `reply`, `replied`,
//!    `error`, `request`, `joined`, `left`, `disconnected`, `reconnected`, and `path`
//!    (`{"event":"path","peer","path":"direct"|"router"}`: messages to that peer moved onto
//!    a direct link, or back to the router).
//! 4. End of input closes the peer once every acknowledgement and reply it waits for has
//!    settled (each reported), declining the requests left unanswered.
//!
//! Acked sends report `acked` once the recipient has the message, or `error` when it
//! cannot have it; an action gets at most one outcome line, and a delivered message never
//! gets an `error`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use lanmesh::{Message, Peer, PeerEvent};
use serde_json::{Map, Value};
use tokio::task::JoinSet;

use super::jsonl::{emit, event, message, put_data, take_data};
use super::{Connect, RouterWatch};

/// The input and output of `lanmesh peer`, for `--help`.
const PEER_HELP: &str = r#"Lines on stdin, one JSON object each ("ref" is echoed in the outcome line,
"encoding":"base64" marks binary data):
  {"to":"B","data":"hi"}                           send (at most once)
  {"to":"B","data":"hi","ack":true,"ref":1}        send; then {"event":"acked",..} or {"event":"error",..}
  {"broadcast":true,"data":"hi"}                   send to everyone else
  {"to":"S","request":"temp?","timeout_ms":2000}   ask; then {"event":"reply",..} or an error
  {"reply":5,"to":"A","data":"21.5"}               answer {"event":"request","from":"A","id":5,..}
  {"decline":5,"to":"A"}                           refuse it (A hears: answers no requests)

Lines on stdout: {"event":"ready",..} first; then messages as `listen --json` prints
them, and the events acked, sent, reply, request, error, joined, left, disconnected,
reconnected. End of input closes the peer once every ack and reply it waits for is
reported, and exits 0."#;

#[derive(Debug, Args)]
#[command(after_help = PEER_HELP)]
pub(crate) struct PeerArgs {
    #[command(flatten)]
    connect: Connect,
    /// Our name in the mesh.
    #[arg(long, value_name = "ME")]
    name: String,
    /// Requests from other peers that may wait for a {"reply":ID,...} line at once; as
    /// many more are held back, and any beyond those are declined.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_requests: usize,
    /// Seconds a request waits for its reply when the line gives no "timeout_ms".
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    request_timeout: f64,
}

/// What one input line asks for.
#[derive(Debug)]
enum Action {
    Send {
        to: String,
        data: bytes::Bytes,
        text: bool,
        ack: bool,
    },
    Broadcast {
        data: bytes::Bytes,
        text: bool,
    },
    Request {
        to: String,
        data: bytes::Bytes,
        text: bool,
        timeout: Option<Duration>,
    },
    Reply {
        to: String,
        id: u64,
        data: bytes::Bytes,
    },
    Decline {
        to: String,
        id: u64,
    },
}

/// Requests from other peers waiting for this program's answer, by (sender, id).
type Waiting = HashMap<(String, u64), Message>;

pub(crate) async fn run(args: PeerArgs) -> anyhow::Result<ExitCode> {
    super::check_name("--name", &args.name)?;
    let default_timeout = Duration::try_from_secs_f64(args.request_timeout)
        .map_err(|_| anyhow::anyhow!("--request-timeout must be a positive number of seconds"))?;
    let peer = args
        .connect
        .connect(args.connect.builder(Some(&args.name))?)
        .await?;
    let mut requests = peer.request_queue(args.max_requests);
    let mut members = peer.peer_events();
    let mut paths = peer.path_events();
    let mut status = peer.watch_status();
    let mut ready = event("ready");
    ready.insert("name".into(), args.name.clone().into());
    let names: Vec<Value> = peer
        .peers()
        .iter()
        .map(|p| p.name.as_str().into())
        .collect();
    ready.insert("peers".into(), names.into());
    emit(ready);
    eprintln!(
        "peer {:?} on {}: one JSON action per line on stdin, events on stdout",
        args.name,
        args.connect.describe()
    );

    let mut input = read_stdin(max_line());
    let mut waiting = Waiting::new();
    let mut tasks = JoinSet::new();
    let mut watch = RouterWatch::default();
    let (mut members_open, mut requests_open, mut status_open) = (true, true, true);
    let mut paths_open = true;
    let mut line_no = 0u64;
    let failed = loop {
        tokio::select! {
            line = input.recv() => match line {
                Some(Ok(line)) => {
                    line_no += 1;
                    let ctx = Ctx { peer: &peer, default_timeout, line: line_no };
                    ctx.handle(line, &mut waiting, &mut tasks).await;
                }
                None => break false,
                Some(Err(e)) => {
                    eprintln!("lanmesh: reading standard input: {e}");
                    break false;
                }
            },
            m = peer.recv() => match m {
                Ok(m) => emit(message(&m)),
                Err(e) => {
                    let why = super::session_ended(&args.name, &e);
                    eprintln!("lanmesh: {why}");
                    let mut ev = event("closed");
                    ev.insert("error".into(), why.into());
                    emit(ev);
                    break true;
                }
            },
            r = requests.recv(), if requests_open && waiting.len() < args.max_requests => match r {
                Some(r) => {
                    let mut ev = event("request");
                    ev.extend(message(&r));
                    emit(ev);
                    waiting.insert((r.from.to_string(), r.id), r);
                }
                None => requests_open = false,
            },
            ev = members.recv(), if members_open => match ev {
                Ok(PeerEvent::Joined(info)) => {
                    let mut ev = event("joined");
                    ev.insert("name".into(), info.name.as_str().into());
                    emit(ev);
                }
                Ok(PeerEvent::Left(name)) => {
                    let mut ev = event("left");
                    ev.insert("name".into(), name.as_str().into());
                    emit(ev);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => members_open = false,
            },
            ev = paths.recv(), if paths_open => match ev {
                Ok((name, direct)) => {
                    let mut ev = event("path");
                    ev.insert("peer".into(), name.as_str().into());
                    ev.insert("path".into(), if direct { "direct" } else { "router" }.into());
                    emit(ev);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => paths_open = false,
            },
            changed = status.changed(), if status_open => match changed {
                Ok(()) => {
                    let now = status.borrow_and_update().clone();
                    if let Some(ev) = watch.update(&now) {
                        emit(ev);
                    }
                }
                Err(_) => status_open = false,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    };
    if failed {
        return Ok(ExitCode::from(1));
    }
    // End of input: nobody is left to answer requests, so new ones are refused at once
    // and those waiting are declined; what this peer waits for settles, then it leaves.
    let _ = peer.stop_responding().await;
    for r in waiting.into_values() {
        let _ = peer.decline(&r).await;
    }
    while !tasks.is_empty() {
        tokio::select! {
            _ = tasks.join_next() => {}
            Ok(m) = peer.recv() => emit(message(&m)),
        }
    }
    let report = peer.close().await;
    for m in peer.get_all() {
        emit(message(&m));
    }
    for u in &report.undelivered {
        let mut ev = event("error");
        ev.insert("id".into(), u.id.into());
        ev.insert("to".into(), u.to.as_str().into());
        ev.insert(
            "error".into(),
            super::nack_text(u.reason, u.to.as_str()).into(),
        );
        emit(ev);
    }
    Ok(ExitCode::SUCCESS)
}

/// The longest input line: the largest message, base64-encoded, with room for the rest.
fn max_line() -> usize {
    let max = lanmesh::proto::Limits::default().max_message;
    usize::try_from(max / 3 * 4 + 64 * 1024).unwrap_or(usize::MAX)
}

/// What handling one line needs.
struct Ctx<'a> {
    peer: &'a Peer,
    default_timeout: Duration,
    line: u64,
}

/// Reports of the outcome of one action: an event with the line's `"ref"` when it had one.
struct Outcome {
    reference: Option<Value>,
}

impl Outcome {
    fn event(&self, name: &str) -> Map<String, Value> {
        let mut ev = event(name);
        if let Some(r) = &self.reference {
            ev.insert("ref".into(), r.clone());
        }
        ev
    }

    fn error(&self, id: Option<u64>, to: Option<&str>, text: String) {
        let mut ev = self.event("error");
        if let Some(id) = id {
            ev.insert("id".into(), id.into());
        }
        if let Some(to) = to {
            ev.insert("to".into(), to.into());
        }
        ev.insert("error".into(), text.into());
        emit(ev);
    }

    fn done(&self, name: &str, id: u64, to: Option<&str>) {
        let mut ev = self.event(name);
        ev.insert("id".into(), id.into());
        if let Some(to) = to {
            ev.insert("to".into(), to.into());
        }
        emit(ev);
    }
}

impl Ctx<'_> {
    async fn handle(
        &self,
        line: Result<String, String>,
        waiting: &mut Waiting,
        tasks: &mut JoinSet<()>,
    ) {
        let line = match line {
            Ok(l) if l.trim().is_empty() => return,
            Ok(l) => l,
            Err(why) => {
                Outcome { reference: None }.error(None, None, format!("line {}: {why}", self.line));
                return;
            }
        };
        let obj = match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(obj)) => obj,
            Ok(_) => {
                let text = format!("line {}: expected a JSON object", self.line);
                Outcome { reference: None }.error(None, None, text);
                return;
            }
            Err(e) => {
                let text = format!("line {}: not JSON: {e}", self.line);
                Outcome { reference: None }.error(None, None, text);
                return;
            }
        };
        let outcome = Outcome {
            reference: obj.get("ref").cloned(),
        };
        let action = match parse(&obj) {
            Ok(a) => a,
            Err(why) => {
                outcome.error(None, None, format!("line {}: {why}", self.line));
                return;
            }
        };
        self.act(action, outcome, waiting, tasks).await;
    }

    async fn act(
        &self,
        action: Action,
        outcome: Outcome,
        waiting: &mut Waiting,
        tasks: &mut JoinSet<()>,
    ) {
        let peer = self.peer;
        match action {
            Action::Send {
                to,
                data,
                text,
                ack: false,
            } => {
                let sent = if text {
                    peer.send_text(&to, &String::from_utf8_lossy(&data)).await
                } else {
                    peer.send(&to, data).await
                };
                match sent {
                    Ok(id) if outcome.reference.is_some() => outcome.done("sent", id, Some(&to)),
                    Ok(_) => {}
                    Err(e) => outcome.error(None, Some(&to), e.to_string()),
                }
            }
            Action::Send {
                to,
                data,
                text,
                ack: true,
            } => {
                // Queued here, in input order; the ack is awaited apart so that many
                // stay in flight.
                let queued = if text {
                    peer.queue_text_acked(&to, &String::from_utf8_lossy(&data))
                        .await
                } else {
                    peer.queue_acked(&to, data).await
                };
                match queued {
                    Ok(acked) => {
                        tasks.spawn_local(async move {
                            let id = acked.id();
                            match acked.await {
                                Ok(_) => outcome.done("acked", id, Some(&to)),
                                Err(e) => outcome.error(Some(id), Some(&to), e.to_string()),
                            }
                        });
                    }
                    Err(e) => outcome.error(None, Some(&to), e.to_string()),
                }
            }
            Action::Broadcast { data, text } => {
                let sent = if text {
                    peer.broadcast_text(&String::from_utf8_lossy(&data)).await
                } else {
                    peer.broadcast(data).await
                };
                match sent {
                    Ok(id) if outcome.reference.is_some() => outcome.done("sent", id, None),
                    Ok(_) => {}
                    Err(e) => outcome.error(None, None, e.to_string()),
                }
            }
            Action::Request {
                to,
                data,
                text,
                timeout,
            } => {
                let peer = peer.clone();
                let timeout = timeout.unwrap_or(self.default_timeout);
                tasks.spawn_local(async move {
                    let reply = if text {
                        peer.request_text(&to, &String::from_utf8_lossy(&data), timeout)
                            .await
                    } else {
                        peer.request(&to, data, timeout).await
                    };
                    match reply {
                        Ok(m) => {
                            let mut ev = outcome.event("reply");
                            ev.insert("from".into(), m.from.as_str().into());
                            ev.insert("id".into(), m.id.into());
                            put_data(&mut ev, &m.data);
                            emit(ev);
                        }
                        Err(e) => outcome.error(None, Some(&to), e.to_string()),
                    }
                });
            }
            Action::Reply { to, id, data } => {
                let Some(request) = waiting.remove(&(to.clone(), id)) else {
                    outcome.error(Some(id), Some(&to), no_request(&to, id));
                    return;
                };
                match peer.reply(&request, data).await {
                    Ok(_) if outcome.reference.is_some() => outcome.done("replied", id, Some(&to)),
                    Ok(_) => {}
                    Err(e) => outcome.error(Some(id), Some(&to), e.to_string()),
                }
            }
            Action::Decline { to, id } => {
                let Some(request) = waiting.remove(&(to.clone(), id)) else {
                    outcome.error(Some(id), Some(&to), no_request(&to, id));
                    return;
                };
                match peer.decline(&request).await {
                    Ok(()) if outcome.reference.is_some() => {
                        outcome.done("declined", id, Some(&to))
                    }
                    Ok(()) => {}
                    Err(e) => outcome.error(Some(id), Some(&to), e.to_string()),
                }
            }
        }
    }
}

fn no_request(to: &str, id: u64) -> String {
    format!("no request {id} from {to:?} is waiting for a reply")
}

/// Reads one action out of a line's object.
fn parse(obj: &Map<String, Value>) -> Result<Action, String> {
    let to = || match obj.get("to") {
        Some(Value::String(s)) => super::check_name("\"to\"", s)
            .map(|()| s.clone())
            .map_err(|e| e.to_string()),
        Some(other) => Err(format!("\"to\" must be a peer name, not {other}")),
        None => Err("\"to\" is missing".to_owned()),
    };
    let id_of = |key: &str| {
        obj.get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("{key:?} must be the id of a request that arrived"))
    };
    if obj.contains_key("reply") {
        let (data, _) = take_data(obj, "data")?;
        return Ok(Action::Reply {
            to: to()?,
            id: id_of("reply")?,
            data,
        });
    }
    if obj.contains_key("decline") {
        return Ok(Action::Decline {
            to: to()?,
            id: id_of("decline")?,
        });
    }
    if let Some(request) = obj.get("request") {
        // {"request":"temp?"} carries its data; {"request":true,"data":..} works too.
        let key = if request == &Value::Bool(true) {
            "data"
        } else {
            "request"
        };
        let (data, text) = take_data(obj, key)?;
        let timeout = match obj.get("timeout_ms") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis)
                    .ok_or("\"timeout_ms\" must be a positive whole number")?,
            ),
        };
        return Ok(Action::Request {
            to: to()?,
            data,
            text,
            timeout,
        });
    }
    if obj.get("broadcast") == Some(&Value::Bool(true)) {
        let (data, text) = take_data(obj, "data")?;
        return Ok(Action::Broadcast { data, text });
    }
    if obj.contains_key("to") {
        let ack = match obj.get("ack") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(format!("\"ack\" must be true or false, not {other}")),
        };
        let (data, text) = take_data(obj, "data")?;
        return Ok(Action::Send {
            to: to()?,
            data,
            text,
            ack,
        });
    }
    Err(
        "say what to do: \"to\" (send), \"broadcast\", \"request\", \"reply\" or \"decline\""
            .to_owned(),
    )
}

/// Reads stdin on a thread of its own, line by line, into a bounded channel: a blocked
/// read must not keep the runtime from ending when the peer stops for another reason,
/// and a program that writes faster than the mesh takes is held back by the pipe.
fn read_stdin(max: usize) -> tokio::sync::mpsc::Receiver<std::io::Result<Result<String, String>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let spawned = std::thread::Builder::new()
        .name("lanmesh-stdin".into())
        .spawn(move || {
            let mut lines = Lines::new(std::io::stdin().lock(), max);
            loop {
                let next = match lines.next_line() {
                    Ok(Some(line)) => Ok(line),
                    Ok(None) => return,
                    Err(e) => Err(e),
                };
                let stop = next.is_err();
                if tx.blocking_send(next).is_err() || stop {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("lanmesh: cannot start reading standard input: {e}");
    }
    rx
}

/// Lines of a byte stream, each at most `max` bytes: a longer one is skipped whole and
/// reported, never held in memory.
struct Lines<R> {
    reader: R,
    max: usize,
    buf: Vec<u8>,
    overlong: bool,
}

impl<R: std::io::BufRead> Lines<R> {
    fn new(reader: R, max: usize) -> Self {
        Self {
            reader,
            max,
            buf: Vec::new(),
            overlong: false,
        }
    }

    /// The next line (`Err` inside says why it cannot be used), or `None` at the end.
    fn next_line(&mut self) -> std::io::Result<Option<Result<String, String>>> {
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if self.buf.is_empty() && !self.overlong {
                    return Ok(None);
                }
                return Ok(Some(self.finish()));
            }
            let (take, end) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            if !self.overlong {
                if self.buf.len() + take > self.max.saturating_add(1) {
                    self.overlong = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(&chunk[..take]);
                }
            }
            self.reader.consume(take);
            if end {
                return Ok(Some(self.finish()));
            }
        }
    }

    fn finish(&mut self) -> Result<String, String> {
        let mut line = std::mem::take(&mut self.buf);
        if std::mem::take(&mut self.overlong) {
            return Err(format!("longer than {} bytes; skipped", self.max));
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        String::from_utf8(line).map_err(|_| "not UTF-8".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("objects only"),
        }
    }

    #[test]
    fn lines_name_each_action() {
        let a = parse(&obj(
            serde_json::json!({"to": "B", "data": "hi", "ack": true}),
        ))
        .unwrap();
        assert!(matches!(a, Action::Send { ref to, ack: true, text: true, .. } if to == "B"));
        let a = parse(&obj(
            serde_json::json!({"broadcast": true, "data": "/wD+", "encoding": "base64"}),
        ))
        .unwrap();
        assert!(
            matches!(a, Action::Broadcast { ref data, text: false } if data[..] == [0xff, 0, 0xfe])
        );
        let a = parse(&obj(
            serde_json::json!({"to": "S", "request": "temp?", "timeout_ms": 250}),
        ))
        .unwrap();
        assert!(matches!(
            a,
            Action::Request { ref data, timeout: Some(t), .. } if &data[..] == b"temp?" && t == Duration::from_millis(250)
        ));
        let a = parse(&obj(
            serde_json::json!({"reply": 7, "to": "A", "data": "21"}),
        ))
        .unwrap();
        assert!(matches!(a, Action::Reply { id: 7, .. }));
        let a = parse(&obj(serde_json::json!({"decline": 7, "to": "A"}))).unwrap();
        assert!(matches!(a, Action::Decline { id: 7, .. }));
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let e = parse(&obj(serde_json::json!({"data": "hi"}))).unwrap_err();
        assert!(e.contains("say what to do"), "{e}");
        let e = parse(&obj(serde_json::json!({"to": 5, "data": "hi"}))).unwrap_err();
        assert!(e.contains("\"to\" must be"), "{e}");
        let e = parse(&obj(
            serde_json::json!({"to": "B", "request": "x", "timeout_ms": -1}),
        ))
        .unwrap_err();
        assert!(e.contains("timeout_ms"), "{e}");
        let e = parse(&obj(
            serde_json::json!({"reply": "x", "to": "A", "data": ""}),
        ))
        .unwrap_err();
        assert!(e.contains("\"reply\""), "{e}");
    }

    #[test]
    fn lines_are_bounded_and_split_across_reads() {
        let input: &[u8] = b"short\r\n0123456789abcdef\nlast";
        // A two-byte buffer: every line arrives in pieces.
        let mut lines = Lines::new(std::io::BufReader::with_capacity(2, input), 8);
        assert_eq!(lines.next_line().unwrap(), Some(Ok("short".into())));
        let long = lines.next_line().unwrap().unwrap().unwrap_err();
        assert!(long.contains("longer than 8"), "{long}");
        assert_eq!(lines.next_line().unwrap(), Some(Ok("last".into())));
        assert_eq!(lines.next_line().unwrap(), None);
    }
}
