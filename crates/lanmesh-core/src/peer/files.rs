//! File transfers, both ends of the blob protocol ([`lanmesh_proto::blob`] describes
//! the frames and the flow step by step). The protocol lives here; the bytes of the
//! file do not: the driver reads the file and hands chunks in, and writes what arrives
//! wherever it keeps files (a disk, a browser `Blob`), then says how much is written.
//!
//! Sending (`offer` → [`FileEvent::Accepted`] → `chunk`s within the window →
//! [`FileEvent::Delivered`]) and receiving ([`FileEvent::Offered`] → `accept` →
//! [`FileEvent::Data`]s → `written` → `saved`) each end exactly once: done, or with a
//! [`FileEvent::SendFailed`] / [`FileEvent::ReceiveFailed`] that says why — the other side
//! aborting, leaving the mesh, breaking the protocol, staying silent past the stall
//! deadline, or the connection to the router being lost for good. A receiver that has handed
//! chunks to its driver but not yet heard they are written repeats its last `Ack`, so a
//! busy disk does not run out the sender's stall deadline.
//!
//! **A path that may have lost frames**: a direct link that broke (see `direct.rs`), or
//! the connection to the router, lost and made again. With resending on
//! ([`Files::set_resend`], for peers that stay in the mesh: not send-only sessions),
//! each side keeps what it cannot get back otherwise, and [`Files::path_lost`] says it
//! again over the next path:
//!
//! 1. The sender keeps every `Data` chunk the receiver has not acknowledged (at most the
//!    window) and each unanswered offer. On a lost path it sends the offer again, or the
//!    unacknowledged chunks, from the last `Ack{written}` on, with their first offsets
//!    and lengths.
//! 2. The receiver sends its `Accept` again (nothing written yet) or its last
//!    `Ack{written}`; stale acks and accepts are no-ops at the sender.
//! 3. Both keep their last word of each recent transfer (`Done`, `Abort`, `Cancel`, for
//!    twice the stall deadline) and say it again.
//! 4. The receiver drops a chunk that lies wholly within what it has received already
//!    (a repeat: the old path and the new one both delivered it), and answers a repeated
//!    offer of a transfer it knows (same size) with its answer so far instead of taking
//!    it as a second transfer. Anything else out of place still breaks the transfer.
//!
//! **A lost router connection** ([`Files::pause`], then [`Files::resume`] on the next
//! welcome). Only the side that lost it knows. A sender's transfers wait and then say
//! again what the connection may have lost (1. and 3.); the receiver, which saw nothing,
//! answers the last chunk of a run of repeats with its `Ack` again, and a chunk of a
//! transfer it has finished with that transfer's last word. A receiver's transfers wait
//! too, but the frames the lost connection held for it are gone while its sender, which
//! does not know, goes on after the gap: the receiver drops every chunk past the gap and
//! sends an `Accept` (meaningless to a sender while it streams, before this), which
//! sends the sender back to its unacknowledged chunks (at most once a second). A router
//! away longer than the stall deadline ends the transfers as any stall does.
//!
//! Every path delivers in order and the chunks keep their boundaries, so at the
//! receiver each chunk either repeats what it has or continues it exactly: no file is
//! saved with bytes other than the sender's, and a transfer that cannot go on still ends
//! on its deadlines, never hangs.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use core::time::Duration;

use bytes::Bytes;
use lanmesh_proto::blob::{
    AbortReason, BlobFrame, CHUNK_DATA, DATA_HEADER_LEN, Direction, ReceiveWindow, SendWindow,
    safe_file_name,
};
use lanmesh_proto::{NackReason, Name, ProtoError};

use crate::error::ClientError;
use crate::time::{Instant, earliest};

/// Message ids remembered per outgoing transfer, to recognise the router's `Nack`s.
const REMEMBERED_IDS: usize = 4096;
/// Last words of recent transfers kept for [`Files::path_lost`].
const MAX_FINALS: usize = 256;
/// A sender goes back to the unacknowledged chunks at most this often.
const GO_BACK_EVERY: Duration = Duration::from_secs(1);

/// What a peer does with files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// Offers are answered (`false`: every offer is refused, and its sender told why).
    pub accept: bool,
    /// Refuse files larger than this.
    pub max_file_size: Option<u64>,
    /// Unacknowledged bytes in flight: per outgoing file, and for all incoming files
    /// together (each gets at least one chunk).
    pub window: u32,
    /// Files being received at once.
    pub max_incoming: usize,
    /// Largest chunk of file data (a mesh whose message limit is under a full chunk sends
    /// smaller ones).
    pub max_chunk: usize,
    /// How long an offer waits for its answer.
    pub answer_timeout: Duration,
    /// How long a transfer may make no progress.
    pub stall_timeout: Duration,
    /// The first transfer id: receivers key transfers by (sender, id), so a sender that
    /// restarts should not start where its previous run did (the clock is a good start).
    pub first_blob: u64,
}

impl FileConfig {
    /// Defaults for a peer whose messages are at most `max_message` bytes.
    pub fn new(max_message: u64) -> Self {
        let max_message = usize::try_from(max_message).unwrap_or(usize::MAX);
        Self {
            accept: false,
            max_file_size: None,
            window: lanmesh_proto::blob::DEFAULT_WINDOW,
            max_incoming: 16,
            max_chunk: max_message.saturating_sub(DATA_HEADER_LEN).min(CHUNK_DATA),
            answer_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            first_blob: 0,
        }
    }
}

/// What a blob frame is, for how it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// A frame of outgoing transfer `blob` (its message ids are remembered for nacks).
    Outgoing(u64),
    /// To the session that receives the peer's messages.
    Receiver,
    /// An answer to the sender of a transfer whose offer was message `id`: it names that
    /// id, so it reaches the session that offered (a `lanmesh send --file` beside a
    /// `lanmesh listen` of the same name).
    Answer(u64),
}

/// What happens to the peer's file transfers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileEvent {
    /// Outgoing `blob` was accepted: chunks may go, `window` bytes ahead of the receiver.
    Accepted {
        /// The transfer.
        blob: u64,
        /// The window the receiver granted.
        window: u32,
    },
    /// The receiver has `acked` bytes of outgoing `blob`: the window moved.
    Acked {
        /// The transfer.
        blob: u64,
        /// Bytes confirmed written.
        acked: u64,
    },
    /// The receiver has all of outgoing `blob`, under its final name.
    Delivered {
        /// The transfer.
        blob: u64,
        /// Its length.
        size: u64,
    },
    /// Outgoing `blob` is over, unsuccessfully.
    SendFailed {
        /// The transfer.
        blob: u64,
        /// Why.
        error: ClientError,
    },
    /// A file is offered: `accept` or `refuse` it.
    Offered {
        /// The sender.
        from: Name,
        /// The sender's id for the transfer.
        blob: u64,
        /// The id of the offer's message (the completed file's notice may reuse it).
        id: u64,
        /// Its length.
        size: u64,
        /// A safe name to save it under (a last path component only).
        name: String,
    },
    /// File bytes of an accepted transfer, in order: write them, then say `written`.
    Data {
        /// The sender.
        from: Name,
        /// The transfer.
        blob: u64,
        /// Where they start.
        offset: u64,
        /// The bytes.
        data: Bytes,
        /// They end the file: once written, `saved` it.
        last: bool,
    },
    /// Incoming `blob` is over, unsuccessfully: delete what was written.
    ReceiveFailed {
        /// The sender.
        from: Name,
        /// The transfer.
        blob: u64,
        /// Why.
        reason: String,
    },
}

enum Sending {
    /// Waiting for `Accept` until the deadline.
    Offered { deadline: Instant },
    /// Streaming; `progress` is when the receiver last moved the window (or accepted).
    Streaming {
        window: SendWindow,
        progress: Instant,
    },
}

struct Outgoing {
    to: Name,
    size: u64,
    /// The name offered (for an offer said again).
    name: String,
    state: Sending,
    /// Ids of this transfer's messages, newest last.
    ids: VecDeque<u64>,
    /// With resending on: the chunks sent and not yet acknowledged, oldest first.
    unacked: VecDeque<BlobFrame>,
    /// It stalled once over a direct link, and was moved off it (see `handle_timeout`).
    rescued: bool,
    /// When the receiver last asked for the unacknowledged chunks again, and whether it
    /// asked again since, sooner than [`GO_BACK_EVERY`] allows.
    went_back: Option<Instant>,
    go_back_due: bool,
}

/// The last frame of a transfer, kept to be said again after a lost path.
struct Final {
    to: Name,
    frame: BlobFrame,
    via: Via,
    until: Instant,
}

struct Incoming {
    /// The message id of its offer: answers name it, so they reach the sending session.
    offer: u64,
    /// The window granted to it (its share of the peer's window).
    granted: u32,
    window: ReceiveWindow,
    /// `Accept` went out (the driver took the file).
    accepted: bool,
    /// File bytes handed to the driver, and confirmed written by it.
    handed: u64,
    written: u64,
    size: u64,
    /// When data last arrived (or the transfer was accepted), and the last `Ack` left.
    last_data: Instant,
    last_ack: Instant,
    /// It stalled once over a direct link, and was moved off it (see `handle_timeout`).
    rescued: bool,
    /// This peer lost its router connection with the transfer under way: what that
    /// connection held is gone, so chunks after the gap are dropped until the sender,
    /// asked by an `Accept`, sends again from where this side is.
    resync: bool,
}

/// The transfers of one peer, both ways.
pub(crate) struct Files {
    config: FileConfig,
    next_blob: u64,
    outgoing: BTreeMap<u64, Outgoing>,
    incoming: BTreeMap<(Name, u64), Incoming>,
    /// Blob frames to send, each as one message to its peer, and what they are.
    pub(crate) frames: VecDeque<(Name, BlobFrame, Via)>,
    pub(crate) events: VecDeque<FileEvent>,
    /// Keep what a lost path would cost (see the module docs).
    resend: bool,
    finals: VecDeque<Final>,
    /// The latest time the peer core has seen (for the finals' expiry).
    clock: Instant,
}

impl Files {
    pub(crate) fn new(config: FileConfig) -> Self {
        Self {
            next_blob: config.first_blob,
            config,
            outgoing: BTreeMap::new(),
            incoming: BTreeMap::new(),
            frames: VecDeque::new(),
            events: VecDeque::new(),
            resend: false,
            finals: VecDeque::new(),
            clock: Instant::ZERO,
        }
    }

    /// Keeps unacknowledged chunks and last words, for [`Files::path_lost`].
    pub(crate) fn set_resend(&mut self, on: bool) {
        self.resend = on;
    }

    pub(crate) fn tick(&mut self, now: Instant) {
        self.clock = self.clock.max(now);
    }

    pub(crate) fn set_accept(&mut self, accept: bool) {
        self.config.accept = accept;
    }

    fn send(&mut self, to: &Name, frame: BlobFrame, via: Via) {
        self.frames.push_back((to.clone(), frame, via));
    }

    /// Sends the last frame of a transfer, and keeps it to say again.
    fn send_final(&mut self, to: &Name, frame: BlobFrame, via: Via) {
        if self.resend {
            if self.finals.len() >= MAX_FINALS {
                self.finals.pop_front();
            }
            self.finals.push_back(Final {
                to: to.clone(),
                frame: frame.clone(),
                via,
                until: self.clock + self.config.stall_timeout * 2,
            });
        }
        self.send(to, frame, via);
    }

    /// The last word this side said to `to` about transfer `blob` in `direction`, if
    /// it is still kept.
    fn final_for(&self, to: &Name, blob: u64, direction: Direction) -> Option<(BlobFrame, Via)> {
        self.finals
            .iter()
            .rev()
            .filter(|f| f.until > self.clock)
            .find(|f| &f.to == to && f.frame.blob() == blob && f.frame.direction() == direction)
            .map(|f| (f.frame.clone(), f.via))
    }

    /// The path to `peer` may have lost what went over it (a direct link broke): say
    /// again what the other side cannot do without (see the module docs). The frames go
    /// by whatever path the peer core takes to `peer` now.
    pub(crate) fn path_lost(&mut self, peer: &Name) {
        if !self.resend {
            return;
        }
        let now = self.clock;
        self.finals.retain(|f| f.until > now);
        let mut again = alloc::vec::Vec::new();
        for (blob, out) in self.outgoing.iter().filter(|(_, o)| &o.to == peer) {
            match &out.state {
                Sending::Offered { .. } => again.push((
                    BlobFrame::Offer {
                        blob: *blob,
                        size: out.size,
                        window: self.config.window,
                        name: out.name.clone(),
                    },
                    Via::Outgoing(*blob),
                )),
                Sending::Streaming { .. } => {
                    again.extend(
                        out.unacked
                            .iter()
                            .map(|f| (f.clone(), Via::Outgoing(*blob))),
                    );
                }
            }
        }
        for ((_, blob), inc) in self.incoming.iter().filter(|((f, _), _)| f == peer) {
            if !inc.accepted {
                continue;
            }
            let frame = if inc.written > 0 {
                BlobFrame::Ack {
                    blob: *blob,
                    written: inc.written,
                }
            } else {
                BlobFrame::Accept {
                    blob: *blob,
                    window: inc.granted,
                }
            };
            again.push((frame, Via::Answer(inc.offer)));
        }
        for f in self.finals.iter().filter(|f| &f.to == peer) {
            again.push((f.frame.clone(), f.via));
        }
        for (frame, via) in again {
            self.send(peer, frame, via);
        }
    }

    /// An answer to the sender of incoming transfer `key` (after its offer's message id,
    /// so that it reaches the sender's own session).
    fn answer(&mut self, key: &(Name, u64), frame: BlobFrame, offer: Option<u64>) {
        let via = offer.map_or(Via::Receiver, Via::Answer);
        self.send(&key.0, frame, via);
    }

    /// The message `id` carried a frame of outgoing `blob`.
    pub(crate) fn remember(&mut self, blob: u64, id: u64) {
        if let Some(out) = self.outgoing.get_mut(&blob) {
            if out.ids.len() >= REMEMBERED_IDS {
                out.ids.pop_front();
            }
            out.ids.push_back(id);
        }
    }

    fn fail_outgoing(&mut self, blob: u64, error: ClientError) {
        if self.outgoing.remove(&blob).is_some() {
            self.events.push_back(FileEvent::SendFailed { blob, error });
        }
    }

    fn fail_incoming(&mut self, key: &(Name, u64), reason: String) {
        if self.incoming.remove(key).is_some() {
            self.events.push_back(FileEvent::ReceiveFailed {
                from: key.0.clone(),
                blob: key.1,
                reason,
            });
        }
    }

    // -- sending ------------------------------------------------------------------------

    /// Offers a file of `size` bytes called `name` to `to`; returns the transfer's id.
    pub(crate) fn offer(
        &mut self,
        to: &Name,
        size: u64,
        name: &str,
        now: Instant,
    ) -> Result<u64, ClientError> {
        if self.config.max_chunk == 0 {
            return Err(ClientError::FileFailed {
                name: to.to_string(),
                text: "the message size limit is too small for file chunks".into(),
            });
        }
        self.next_blob = self.next_blob.wrapping_add(1);
        let blob = self.next_blob;
        self.outgoing.insert(
            blob,
            Outgoing {
                to: to.clone(),
                size,
                name: name.into(),
                state: Sending::Offered {
                    deadline: now + self.config.answer_timeout,
                },
                ids: VecDeque::new(),
                unacked: VecDeque::new(),
                rescued: false,
                went_back: None,
                go_back_due: false,
            },
        );
        let offer = BlobFrame::Offer {
            blob,
            size,
            window: self.config.window,
            name: name.into(),
        };
        self.send(to, offer, Via::Outgoing(blob));
        Ok(blob)
    }

    /// Length of the next chunk outgoing `blob` may send now; `None` while the window is
    /// full, before the offer is accepted, or once everything has been sent.
    pub(crate) fn room(&self, blob: u64) -> Option<usize> {
        match &self.outgoing.get(&blob)?.state {
            Sending::Streaming { window, .. } => window.next_chunk(),
            Sending::Offered { .. } => None,
        }
    }

    /// Bytes of outgoing `blob` sent and acknowledged so far.
    pub(crate) fn progress(&self, blob: u64) -> Option<(u64, u64)> {
        match &self.outgoing.get(&blob)?.state {
            Sending::Streaming { window, .. } => Some((window.sent(), window.acked())),
            Sending::Offered { .. } => Some((0, 0)),
        }
    }

    /// Sends the next chunk of outgoing `blob`: exactly [`Files::room`] bytes.
    pub(crate) fn chunk(&mut self, blob: u64, data: Bytes) -> Result<(), ClientError> {
        let Some(out) = self.outgoing.get_mut(&blob) else {
            return Err(ClientError::disconnected("the file transfer is over"));
        };
        let Sending::Streaming { window, .. } = &mut out.state else {
            return Err(ClientError::FileFailed {
                name: out.to.to_string(),
                text: "a chunk before the receiver accepted the file".into(),
            });
        };
        if window.next_chunk() != Some(data.len()) {
            return Err(ClientError::FileFailed {
                name: out.to.to_string(),
                text: format!(
                    "a chunk of {} bytes where the window allows {:?}",
                    data.len(),
                    window.next_chunk()
                ),
            });
        }
        let (offset, last) = window.on_sent(data.len());
        let to = out.to.clone();
        let frame = BlobFrame::Data {
            blob,
            offset,
            last,
            data,
        };
        if self.resend {
            out.unacked.push_back(frame.clone());
        }
        self.send(&to, frame, Via::Outgoing(blob));
        Ok(())
    }

    /// The sender gives up on outgoing `blob`: the receiver is told to delete its part.
    pub(crate) fn cancel(&mut self, blob: u64, text: &str) {
        if let Some(out) = self.outgoing.remove(&blob) {
            let frame = BlobFrame::cancel(blob, AbortReason::Cancelled, text);
            self.send_final(&out.to, frame, Via::Receiver);
        }
    }

    fn on_answer(&mut self, from: &Name, frame: BlobFrame, now: Instant) {
        let blob = frame.blob();
        let Some(out) = self.outgoing.get_mut(&blob).filter(|o| &o.to == from) else {
            return;
        };
        let name = out.to.to_string();
        let result = match (frame, &mut out.state) {
            (BlobFrame::Accept { window, .. }, Sending::Offered { .. }) => {
                let granted = window.min(self.config.window);
                out.state = Sending::Streaming {
                    window: SendWindow::new(blob, out.size, granted)
                        .with_max_chunk(self.config.max_chunk),
                    progress: now,
                };
                self.events.push_back(FileEvent::Accepted {
                    blob,
                    window: granted,
                });
                Ok(())
            }
            // The receiver lost frames (its router connection broke): the unacknowledged
            // chunks go again, at most once a second (a request sooner waits for it).
            (BlobFrame::Accept { .. }, Sending::Streaming { .. }) => {
                if self.resend {
                    out.go_back_due = true;
                    self.go_back(blob, now);
                }
                Ok(())
            }
            (BlobFrame::Ack { written, .. }, Sending::Streaming { window, progress }) => {
                let before = window.acked();
                let unacked = &mut out.unacked;
                window.on_ack(written).map(|()| {
                    while let Some(BlobFrame::Data { offset, data, .. }) = unacked.front()
                        && offset + data.len() as u64 <= written
                    {
                        unacked.pop_front();
                    }
                    if window.acked() > before {
                        *progress = now;
                        self.events.push_back(FileEvent::Acked {
                            blob,
                            acked: window.acked(),
                        });
                    }
                })
            }
            (BlobFrame::Done { size, .. }, Sending::Streaming { window, .. }) => {
                window.on_done(size).map(|()| {
                    self.outgoing.remove(&blob);
                    self.events.push_back(FileEvent::Delivered { blob, size });
                })
            }
            (BlobFrame::Abort { reason, text, .. }, _) => {
                let error = match reason {
                    AbortReason::Refused | AbortReason::TooLarge => {
                        ClientError::FileRefused { name, text }
                    }
                    // The receiver is closing (see `closing`).
                    AbortReason::Cancelled => went_away(&name, Some(&text)),
                    _ => ClientError::FileFailed { name, text },
                };
                self.fail_outgoing(blob, error);
                Ok(())
            }
            (other, _) => Err(ProtoError::Blob {
                blob,
                reason: format!("unexpected {:?} from the receiver", kind(&other)),
            }),
        };
        if let Err(e) = result {
            self.broken_outgoing(blob, &e);
        }
    }

    /// Sends outgoing `blob`'s unacknowledged chunks again, if its receiver asked and the
    /// last time was at least [`GO_BACK_EVERY`] ago.
    fn go_back(&mut self, blob: u64, now: Instant) {
        let Some(out) = self.outgoing.get_mut(&blob) else {
            return;
        };
        let ready = out
            .went_back
            .is_none_or(|t| now.saturating_since(t) >= GO_BACK_EVERY);
        if !out.go_back_due || !ready {
            return;
        }
        out.go_back_due = false;
        out.went_back = Some(now);
        let to = out.to.clone();
        let again: alloc::vec::Vec<BlobFrame> = out.unacked.iter().cloned().collect();
        for frame in again {
            self.send(&to, frame, Via::Outgoing(blob));
        }
    }

    fn broken_outgoing(&mut self, blob: u64, e: &ProtoError) {
        if let Some(out) = self.outgoing.get(&blob) {
            let to = out.to.clone();
            self.fail_outgoing(
                blob,
                ClientError::FileFailed {
                    name: to.to_string(),
                    text: e.to_string(),
                },
            );
            let frame = BlobFrame::cancel(blob, AbortReason::Protocol, e.to_string());
            self.send_final(&to, frame, Via::Receiver);
        }
    }

    /// The router could not deliver message `id` to `peer`; `true` if it was a file's.
    pub(crate) fn on_nack(&mut self, peer: &Name, id: u64, reason: NackReason) -> bool {
        let mut ours = false;
        let mut ended = alloc::vec::Vec::new();
        for (blob, out) in self.outgoing.iter().filter(|(_, o)| &o.to == peer) {
            let this = out.ids.contains(&id);
            ours |= this;
            // A peer that is gone ends every transfer to it; anything else only the one
            // whose message it was.
            if this || reason == NackReason::UnknownPeer {
                ended.push(*blob);
            }
        }
        for blob in ended {
            let streaming = self
                .outgoing
                .get(&blob)
                .is_some_and(|o| matches!(o.state, Sending::Streaming { .. }));
            let error = match reason {
                // It took the offer, so it was there: it went away since.
                NackReason::UnknownPeer if streaming => went_away(peer.as_str(), None),
                NackReason::UnknownPeer => ClientError::UnknownPeer {
                    name: peer.to_string(),
                },
                other => ClientError::FileFailed {
                    name: peer.to_string(),
                    text: format!("the router could not deliver part of it ({other:?})"),
                },
            };
            self.fail_outgoing(blob, error);
        }
        ours
    }

    // -- receiving ----------------------------------------------------------------------

    /// Tells the sender of transfer `blob` (offered in message `offer`) it is over.
    fn refuse(
        &mut self,
        from: &Name,
        blob: u64,
        offer: Option<u64>,
        reason: AbortReason,
        text: String,
    ) {
        let via = offer.map_or(Via::Receiver, Via::Answer);
        self.send_final(from, BlobFrame::abort(blob, reason, text), via);
    }

    fn on_offer(&mut self, from: &Name, id: u64, blob: u64, size: u64, offered: u32, name: &str) {
        // An offer said again after a lost path (see the module docs): answered as before.
        if let Some(inc) = self.incoming.get(&(from.clone(), blob))
            && inc.size == size
        {
            if inc.accepted {
                let frame = BlobFrame::Accept {
                    blob,
                    window: inc.granted,
                };
                self.send(from, frame, Via::Answer(inc.offer));
            }
            return;
        }
        if let Some((frame, via)) = self.final_for(from, blob, Direction::ToSender) {
            return self.send(from, frame, via);
        }
        if !self.config.accept {
            return self.refuse(
                from,
                blob,
                Some(id),
                AbortReason::Refused,
                "it does not accept files (no save directory; start it with `lanmesh listen --save-dir DIR`)".into(),
            );
        }
        if let Some(max) = self.config.max_file_size.filter(|max| size > *max) {
            return self.refuse(
                from,
                blob,
                Some(id),
                AbortReason::TooLarge,
                format!("the file has {size} bytes; it accepts at most {max}"),
            );
        }
        let key = (from.clone(), blob);
        if self.incoming.contains_key(&key) {
            self.fail_incoming(&key, format!("transfer {blob} offered twice"));
            return self.refuse(
                from,
                blob,
                Some(id),
                AbortReason::Protocol,
                format!("transfer {blob} offered twice"),
            );
        }
        if self.incoming.len() >= self.config.max_incoming {
            let n = self.config.max_incoming;
            return self.refuse(
                from,
                blob,
                Some(id),
                AbortReason::Refused,
                format!("it is receiving {n} files already"),
            );
        }
        // The windows of all incoming transfers share this peer's window (each gets at
        // least one chunk), so several senders at once cannot push more towards this
        // peer than the router's per-peer budget holds.
        let in_use: u64 = self.incoming.values().map(|i| u64::from(i.granted)).sum();
        let left = u64::from(self.config.window).saturating_sub(in_use);
        let granted = ReceiveWindow::grant(offered, u32::try_from(left).unwrap_or(u32::MAX));
        self.incoming.insert(
            key,
            Incoming {
                offer: id,
                granted,
                window: ReceiveWindow::new(blob, size, granted),
                accepted: false,
                handed: 0,
                written: 0,
                size,
                last_data: Instant::ZERO,
                last_ack: Instant::ZERO,
                rescued: false,
                resync: false,
            },
        );
        self.events.push_back(FileEvent::Offered {
            from: from.clone(),
            blob,
            id,
            size,
            name: safe_file_name(name),
        });
    }

    /// The driver is ready to write incoming `blob` from `from`.
    pub(crate) fn accept(&mut self, from: &Name, blob: u64, now: Instant) {
        let Some(inc) = self.incoming.get_mut(&(from.clone(), blob)) else {
            return;
        };
        if inc.accepted {
            return;
        }
        inc.accepted = true;
        inc.last_data = now;
        inc.last_ack = now;
        let (window, offer) = (inc.granted, inc.offer);
        self.answer(
            &(from.clone(), blob),
            BlobFrame::Accept { blob, window },
            Some(offer),
        );
    }

    /// The driver cannot take (or keep writing) incoming `blob`: the sender is told why.
    pub(crate) fn abort(&mut self, from: &Name, blob: u64, reason: AbortReason, text: &str) {
        if let Some(inc) = self.incoming.remove(&(from.clone(), blob)) {
            self.refuse(from, blob, Some(inc.offer), reason, text.into());
        }
    }

    /// The first `written` bytes of incoming `blob` are stored.
    pub(crate) fn written(&mut self, from: &Name, blob: u64, written: u64, now: Instant) {
        let Some(inc) = self.incoming.get_mut(&(from.clone(), blob)) else {
            return;
        };
        if written <= inc.written || written > inc.handed {
            return;
        }
        inc.window.on_written(written - inc.written);
        inc.written = written;
        if written < inc.size {
            inc.last_ack = now;
            let offer = inc.offer;
            self.answer(
                &(from.clone(), blob),
                BlobFrame::Ack { blob, written },
                Some(offer),
            );
        }
    }

    /// Incoming `blob` is complete under its final name: the sender is told.
    pub(crate) fn saved(&mut self, from: &Name, blob: u64) {
        if let Some(inc) = self.incoming.remove(&(from.clone(), blob)) {
            let (size, offer) = (inc.size, inc.offer);
            self.send_final(from, BlobFrame::Done { blob, size }, Via::Answer(offer));
        }
    }

    fn on_data(
        &mut self,
        from: &Name,
        blob: u64,
        offset: u64,
        last: bool,
        data: Bytes,
        now: Instant,
    ) {
        let key = (from.clone(), blob);
        let Some(inc) = self.incoming.get_mut(&key) else {
            // Over here (saved, or given up): a sender that lost its connection sends
            // again what it thinks is unacknowledged; it hears how the transfer ended.
            if let Some((frame, via)) = self.final_for(from, blob, Direction::ToSender) {
                self.send(from, frame, via);
            }
            return;
        };
        let end = offset.saturating_add(data.len() as u64);
        let received = inc.window.received();
        if inc.accepted && end <= received && (offset < received || inc.window.finished()) {
            // A repeat: the chunk came by an old path and again by a new one. A sender
            // that lost its connection sends the repeats, and may have lost the answers
            // too: the last chunk of a run of repeats gets the answer so far again.
            // (An `Accept` would send the sender back again: nothing written, no answer.)
            if end == received && inc.written > 0 {
                let (written, offer) = (inc.written, inc.offer);
                self.answer(&key, BlobFrame::Ack { blob, written }, Some(offer));
            }
            return;
        }
        if inc.resync {
            if offset > received {
                // After the gap a lost connection left: the sender sends it again.
                return;
            }
            inc.resync = false;
        }
        let checked = if inc.accepted {
            inc.window.on_data(offset, data.len(), last)
        } else {
            Err(ProtoError::Blob {
                blob,
                reason: "data before the transfer was accepted".into(),
            })
        };
        if let Err(e) = checked {
            let offer = Some(inc.offer);
            self.fail_incoming(&key, e.to_string());
            return self.refuse(from, blob, offer, AbortReason::Protocol, e.to_string());
        }
        inc.handed += data.len() as u64;
        inc.last_data = now;
        self.events.push_back(FileEvent::Data {
            from: from.clone(),
            blob,
            offset,
            data,
            last,
        });
    }

    // -- both ---------------------------------------------------------------------------

    /// A `BLOB` message arrived from `from`.
    pub(crate) fn on_message(&mut self, from: &Name, id: u64, payload: Bytes, now: Instant) {
        let frame = match BlobFrame::decode(payload.clone()) {
            Ok(f) => f,
            Err(e) => {
                match BlobFrame::peek(&payload) {
                    Some((Direction::ToReceiver, blob)) => {
                        let key = (from.clone(), blob);
                        if let Some(offer) = self.incoming.get(&key).map(|i| i.offer) {
                            self.fail_incoming(&key, e.to_string());
                            let text = e.to_string();
                            self.refuse(from, blob, Some(offer), AbortReason::Protocol, text);
                        }
                    }
                    Some((Direction::ToSender, blob))
                        if self.outgoing.get(&blob).is_some_and(|o| &o.to == from) =>
                    {
                        self.broken_outgoing(blob, &e);
                    }
                    _ => {}
                }
                return;
            }
        };
        match frame {
            BlobFrame::Offer {
                blob,
                size,
                window,
                name,
            } => self.on_offer(from, id, blob, size, window, &name),
            BlobFrame::Data {
                blob,
                offset,
                last,
                data,
            } => self.on_data(from, blob, offset, last, data, now),
            BlobFrame::Cancel { blob, text, .. } => {
                self.fail_incoming(&(from.clone(), blob), format!("cancelled: {text}"));
            }
            answer => self.on_answer(from, answer, now),
        }
    }

    /// `peer` left the mesh: its transfers, both ways, are over.
    pub(crate) fn peer_left(&mut self, peer: &Name) {
        let keys: alloc::vec::Vec<(Name, u64)> = self
            .incoming
            .keys()
            .filter(|(from, _)| from == peer)
            .cloned()
            .collect();
        for key in keys {
            self.fail_incoming(&key, "the sender left the mesh".into());
        }
        let blobs: alloc::vec::Vec<u64> = self
            .outgoing
            .iter()
            .filter(|(_, o)| &o.to == peer)
            .map(|(b, _)| *b)
            .collect();
        for blob in blobs {
            self.fail_outgoing(blob, went_away(peer.as_str(), None));
        }
    }

    /// This peer is closing: every transfer, both ways, ends now, and the other side of
    /// each is told (a receiver then deletes its partial file, a sender stops at once
    /// rather than waiting out its deadlines).
    pub(crate) fn closing(&mut self) {
        let keys: alloc::vec::Vec<(Name, u64)> = self.incoming.keys().cloned().collect();
        for (from, blob) in keys {
            self.abort(&from, blob, AbortReason::Cancelled, "the receiver closed");
        }
        let blobs: alloc::vec::Vec<u64> = self.outgoing.keys().copied().collect();
        for blob in blobs {
            self.cancel(blob, "the sender closed");
        }
    }

    /// Whether transfers wait for the router to come back (see the module docs) rather
    /// than fail when its connection is lost.
    pub(crate) fn survives_reconnect(&self) -> bool {
        self.resend
    }

    /// The connection to the router is gone for now: what is queued for it cannot go, and
    /// [`Files::resume`] says again what matters once it is back. Transfers wait; incoming
    /// ones drop what comes after the gap the lost connection left, until their senders
    /// go back to it.
    pub(crate) fn pause(&mut self) {
        for inc in self.incoming.values_mut().filter(|inc| inc.accepted) {
            inc.resync = true;
        }
        self.frames.clear();
    }

    /// The router welcomed this peer back: each transfer with a member still in the mesh
    /// (`present`) says again what the lost connection may have lost (outgoing ones and
    /// last words through [`Files::path_lost`], incoming ones by asking their senders to
    /// go back), and each sender hears its progress again (its driver waits for a change
    /// before it sends on).
    pub(crate) fn resume(&mut self, present: impl Fn(&Name) -> bool) {
        let mut peers: alloc::vec::Vec<Name> = self
            .outgoing
            .values()
            .map(|o| o.to.clone())
            .chain(self.finals.iter().map(|f| f.to.clone()))
            .filter(|p| present(p))
            .collect();
        peers.sort();
        peers.dedup();
        for peer in &peers {
            self.path_lost(peer);
        }
        // Each sender goes back to what this side has (an `Accept` while streaming).
        let resyncs: alloc::vec::Vec<((Name, u64), u32, u64)> = self
            .incoming
            .iter()
            .filter(|((from, _), inc)| inc.resync && present(from))
            .map(|(key, inc)| (key.clone(), inc.granted, inc.offer))
            .collect();
        for (key, window, offer) in resyncs {
            let frame = BlobFrame::Accept {
                blob: key.1,
                window,
            };
            self.answer(&key, frame, Some(offer));
        }
        for (blob, out) in &self.outgoing {
            if let Sending::Streaming { window, .. } = &out.state {
                self.events.push_back(FileEvent::Acked {
                    blob: *blob,
                    acked: window.acked(),
                });
            }
        }
    }

    /// The connection to the router is gone for good: the transfers end.
    pub(crate) fn connection_lost(&mut self, why: &str) {
        let keys: alloc::vec::Vec<(Name, u64)> = self.incoming.keys().cloned().collect();
        for key in keys {
            self.fail_incoming(&key, why.into());
        }
        let blobs: alloc::vec::Vec<u64> = self.outgoing.keys().copied().collect();
        for blob in blobs {
            self.fail_outgoing(
                blob,
                ClientError::disconnected(format!("{why} during the file transfer")),
            );
        }
        self.frames.clear();
        self.finals.clear();
    }

    /// Offers unanswered, transfers stalled, and `Ack`s to repeat while the driver writes.
    /// A transfer that stalls the first time while its peer is reached over a direct link
    /// (`over_link`) is not failed: a link can die without a word (no reset, only
    /// silence), and its idle deadline is no shorter than the stall deadline. Its peer is
    /// returned instead, for the peer core to drop the link (which calls
    /// [`Files::path_lost`]), and its deadline starts again; a second stall fails it.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        over_link: &dyn Fn(&Name) -> bool,
    ) -> alloc::vec::Vec<Name> {
        let due: alloc::vec::Vec<u64> = self
            .outgoing
            .iter()
            .filter(|(_, o)| o.go_back_due)
            .map(|(b, _)| *b)
            .collect();
        for blob in due {
            self.go_back(blob, now);
        }
        let stall = self.config.stall_timeout;
        let answer = self.config.answer_timeout;
        let resend = self.resend;
        let mut suspects: alloc::vec::Vec<Name> = alloc::vec::Vec::new();
        let mut failed = alloc::vec::Vec::new();
        for (blob, out) in &mut self.outgoing {
            let rescue = resend && !out.rescued && over_link(&out.to);
            match &mut out.state {
                Sending::Offered { deadline } if now >= *deadline => {
                    if rescue {
                        *deadline = now + answer;
                    } else {
                        failed.push((
                            *blob,
                            format!(
                                "no answer to the file offer within {answer:?} (does it run a lanmesh version that takes files?)"
                            ),
                        ));
                        continue;
                    }
                }
                Sending::Streaming { window, progress }
                    if window.next_chunk().is_none()
                        && window.acked() < window.size()
                        && now.saturating_since(*progress) >= stall =>
                {
                    if rescue {
                        *progress = now;
                    } else {
                        failed.push((*blob, format!("no progress for {stall:?}")));
                        continue;
                    }
                }
                _ => continue,
            }
            out.rescued = true;
            if !suspects.contains(&out.to) {
                suspects.push(out.to.clone());
            }
        }
        for (blob, text) in failed {
            if let Some(out) = self.outgoing.get(&blob) {
                let to = out.to.clone();
                let frame = BlobFrame::cancel(blob, AbortReason::Timeout, &text);
                self.send_final(&to, frame, Via::Receiver);
                self.fail_outgoing(
                    blob,
                    ClientError::FileFailed {
                        name: to.to_string(),
                        text,
                    },
                );
            }
        }
        let mut stalled = alloc::vec::Vec::new();
        let mut keep_alive = alloc::vec::Vec::new();
        for (key, inc) in &mut self.incoming {
            if !inc.accepted {
                continue;
            }
            if inc.handed > inc.written {
                if now.saturating_since(inc.last_ack) >= stall / 3 {
                    keep_alive.push((key.clone(), inc.written, inc.offer));
                }
            } else if now.saturating_since(inc.last_data) >= stall {
                if resend && !inc.rescued && over_link(&key.0) {
                    inc.rescued = true;
                    inc.last_data = now;
                    if !suspects.contains(&key.0) {
                        suspects.push(key.0.clone());
                    }
                } else {
                    stalled.push((key.clone(), inc.offer));
                }
            }
        }
        for (key, written, offer) in keep_alive {
            if let Some(inc) = self.incoming.get_mut(&key) {
                inc.last_ack = now;
            }
            let blob = key.1;
            self.answer(&key, BlobFrame::Ack { blob, written }, Some(offer));
        }
        for (key, offer) in stalled {
            let text = format!("no data for {stall:?}");
            self.refuse(
                &key.0,
                key.1,
                Some(offer),
                AbortReason::Timeout,
                text.clone(),
            );
            self.fail_incoming(&key, text);
        }
        suspects
    }

    /// When [`Files::handle_timeout`] next has something to do.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let stall = self.config.stall_timeout;
        let out = self
            .outgoing
            .values()
            .filter_map(|o| match &o.state {
                Sending::Offered { deadline } => Some(*deadline),
                Sending::Streaming { window, progress } => (window.next_chunk().is_none()
                    && window.acked() < window.size())
                .then(|| *progress + stall),
            })
            .chain(
                self.outgoing
                    .values()
                    .filter(|o| o.go_back_due)
                    .filter_map(|o| o.went_back.map(|t| t + GO_BACK_EVERY)),
            )
            .min();
        let inc = self
            .incoming
            .values()
            .filter(|i| i.accepted)
            .map(|i| {
                if i.handed > i.written {
                    i.last_ack + stall / 3
                } else {
                    i.last_data + stall
                }
            })
            .min();
        earliest(out, inc)
    }

    /// Whether any transfer is under way.
    pub(crate) fn is_empty(&self) -> bool {
        self.outgoing.is_empty() && self.incoming.is_empty()
    }
}

fn kind(frame: &BlobFrame) -> &'static str {
    match frame {
        BlobFrame::Offer { .. } => "Offer",
        BlobFrame::Accept { .. } => "Accept",
        BlobFrame::Data { .. } => "Data",
        BlobFrame::Ack { .. } => "Ack",
        BlobFrame::Done { .. } => "Done",
        BlobFrame::Abort { .. } => "Abort",
        BlobFrame::Cancel { .. } => "Cancel",
    }
}

/// The error of a transfer whose receiver `peer` left, or closed, in the middle of it.
fn went_away(peer: &str, detail: Option<&str>) -> ClientError {
    let mut text = alloc::format!("{peer:?} went away during the transfer");
    if let Some(d) = detail.filter(|d| !d.is_empty()) {
        text.push_str(&alloc::format!(" ({d})"));
    }
    ClientError::FileFailed {
        name: peer.to_string(),
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn name(n: &str) -> Name {
        Name::new(n).unwrap()
    }

    fn files() -> Files {
        let mut config = FileConfig::new(1 << 20);
        config.accept = true;
        let mut f = Files::new(config);
        f.set_resend(true);
        f
    }

    fn data(blob: u64, offset: u64, len: usize, last: bool) -> Bytes {
        let data = Bytes::from(alloc::vec![offset as u8; len]);
        BlobFrame::Data {
            blob,
            offset,
            last,
            data,
        }
        .to_bytes()
    }

    /// A receiver that accepted transfer 5 of `size` bytes from "a".
    fn receiving(size: u64) -> Files {
        let mut rx = files();
        let offer = BlobFrame::Offer {
            blob: 5,
            size,
            window: 1 << 20,
            name: "f".into(),
        };
        rx.on_message(&name("a"), 1, offer.to_bytes(), Instant::ZERO);
        rx.accept(&name("a"), 5, Instant::ZERO);
        rx.events.clear();
        rx.frames.clear();
        rx
    }

    fn data_offsets(f: &mut Files) -> Vec<u64> {
        f.events
            .drain(..)
            .filter_map(|e| match e {
                FileEvent::Data { offset, .. } => Some(offset),
                FileEvent::ReceiveFailed { reason, .. } => panic!("{reason}"),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_repeated_chunk_is_dropped_and_the_file_goes_on() {
        let mut rx = receiving(300);
        let a = name("a");
        for (offset, last) in [(0, false), (100, false), (0, false), (100, false)] {
            rx.on_message(&a, 2, data(5, offset, 100, last), Instant::ZERO);
        }
        rx.on_message(&a, 3, data(5, 200, 100, true), Instant::ZERO);
        // The last chunk again, after the file is complete: dropped too.
        rx.on_message(&a, 4, data(5, 200, 100, true), Instant::ZERO);
        assert_eq!(data_offsets(&mut rx), [0, 100, 200]);
    }

    #[test]
    fn a_chunk_that_overlaps_what_arrived_still_breaks_the_transfer() {
        let mut rx = receiving(300);
        let a = name("a");
        rx.on_message(&a, 2, data(5, 0, 100, false), Instant::ZERO);
        rx.on_message(&a, 3, data(5, 50, 100, false), Instant::ZERO);
        assert!(rx.events.iter().any(|e| matches!(
            e,
            FileEvent::ReceiveFailed { reason, .. } if reason.contains("offset 50")
        )));
    }

    #[test]
    fn a_repeated_offer_is_answered_again_not_taken_twice() {
        let mut rx = receiving(300);
        let offer = BlobFrame::Offer {
            blob: 5,
            size: 300,
            window: 1 << 20,
            name: "f".into(),
        };
        rx.on_message(&name("a"), 9, offer.to_bytes(), Instant::ZERO);
        assert!(rx.events.is_empty(), "{:?}", rx.events);
        let (_, frame, via) = rx.frames.pop_front().unwrap();
        assert!(matches!(frame, BlobFrame::Accept { blob: 5, .. }));
        // Answers still name the first offer's message.
        assert_eq!(via, Via::Answer(1));
    }

    /// A sender whose 250,000-byte file to `b` was accepted with a 1 MiB window and has
    /// every chunk the window allows out: the sender, `b`, the blob and that `Accept`.
    fn sender_with_a_full_window() -> (Files, Name, u64, BlobFrame) {
        let mut tx = files();
        let b = name("b");
        let blob = tx.offer(&b, 250_000, "f", Instant::ZERO).unwrap();
        let accept = BlobFrame::Accept {
            blob,
            window: 1 << 20,
        };
        tx.on_message(&b, 1, accept.to_bytes(), Instant::ZERO);
        while let Some(len) = tx.room(blob) {
            tx.chunk(blob, Bytes::from(alloc::vec![1u8; len])).unwrap();
        }
        (tx, b, blob, accept)
    }

    #[test]
    fn a_receiver_flooding_requests_to_send_again_gets_the_window_once_a_second() {
        // A lying receiver asks for the unacknowledged chunks again and again: each
        // request would cost the sender its whole window.
        let (mut tx, b, _, accept) = sender_with_a_full_window();
        let data = |tx: &mut Files| {
            tx.frames
                .drain(..)
                .filter(|(_, f, _)| matches!(f, BlobFrame::Data { .. }))
                .count()
        };
        let chunks = data(&mut tx);
        let resent = data;
        let t0 = Instant::ZERO + Duration::from_secs(5);
        for i in 0..1000 {
            let at = t0 + Duration::from_micros(i);
            tx.on_message(&b, 2 + i, accept.to_bytes(), at);
            tx.handle_timeout(at, &|_| false);
        }
        assert_eq!(
            resent(&mut tx),
            chunks,
            "one window for a thousand requests"
        );
        // The requests after the first are one more, a second later, and no more.
        let later = t0 + GO_BACK_EVERY;
        assert_eq!(tx.next_deadline(), Some(later));
        tx.handle_timeout(later, &|_| false);
        assert_eq!(resent(&mut tx), chunks);
        tx.handle_timeout(later + GO_BACK_EVERY, &|_| false);
        assert_eq!(resent(&mut tx), 0);
    }

    #[test]
    fn a_lost_path_sends_the_unacknowledged_chunks_again() {
        let (mut tx, b, blob, _) = sender_with_a_full_window();
        let sent: Vec<u64> = tx
            .frames
            .drain(..)
            .filter_map(|(_, f, _)| match f {
                BlobFrame::Data { offset, .. } => Some(offset),
                _ => None,
            })
            .collect();
        assert!(sent.len() >= 3, "{sent:?}");
        let ack = BlobFrame::Ack {
            blob,
            written: sent[2],
        };
        tx.on_message(&b, 2, ack.to_bytes(), Instant::ZERO);
        tx.path_lost(&b);
        let again: Vec<u64> = tx
            .frames
            .drain(..)
            .map(|(to, f, via)| {
                assert_eq!((to, via), (b.clone(), Via::Outgoing(blob)));
                match f {
                    BlobFrame::Data { offset, .. } => offset,
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        assert_eq!(again, sent[2..]);
        // Without links nothing is kept, and nothing goes again.
        let mut plain = Files::new(FileConfig::new(1 << 20));
        plain.path_lost(&b);
        assert!(plain.frames.is_empty());
    }
}
