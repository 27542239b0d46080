//! The sans-IO WebSocket frame-header scanner of [`FrameGuard`](crate::frame_guard): bytes
//! in, "too large" out. It depends on nothing but `core`, so that the fuzz target
//! (`fuzz/fuzz_targets/ws_frames.rs`) builds it without actix.

/// Where the scanner is in the byte stream.
#[derive(Debug, Clone, Copy)]
pub(crate) enum At {
    /// Collecting a header: `have` of its bytes so far.
    Header { have: usize },
    /// Inside a frame's payload: this many bytes to go.
    Payload { left: u64 },
    /// A frame was refused; everything after it is refused too.
    Refused,
}

/// A frame header claimed more than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    /// The length the header claimed.
    pub len: u64,
    /// The limit.
    pub max: u64,
}

/// The sans-IO header scanner: feed it every byte of the client's side of the
/// connection, in order.
#[derive(Debug, Clone)]
pub struct FrameHeaders {
    max: u64,
    pub(crate) at: At,
    header: [u8; 14],
}

impl FrameHeaders {
    /// A scanner refusing frames whose payload is over `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max: max as u64,
            at: At::Header { have: 0 },
            header: [0; 14],
        }
    }

    /// Header bytes a frame starting with `b0 b1` has in all.
    fn header_len(b1: u8) -> usize {
        let ext = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        2 + ext + mask
    }

    /// The payload length of the complete header in `self.header`.
    fn payload_len(&self) -> u64 {
        match self.header[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        }
    }

    /// Scans the next bytes of the stream. An `Err` means a header in them claimed too
    /// much; the connection must end (and every later call fails the same way).
    pub fn scan(&mut self, mut bytes: &[u8]) -> Result<(), TooLarge> {
        while !bytes.is_empty() {
            match self.at {
                At::Refused => {
                    return Err(TooLarge {
                        len: self.payload_len(),
                        max: self.max,
                    });
                }
                At::Payload { left } => {
                    let take = left.min(bytes.len() as u64);
                    // `take` is at most `bytes.len()`, so it fits a usize.
                    bytes = &bytes[take as usize..];
                    self.at = if take == left {
                        At::Header { have: 0 }
                    } else {
                        At::Payload { left: left - take }
                    };
                }
                At::Header { mut have } => {
                    let need = if have < 2 {
                        2
                    } else {
                        Self::header_len(self.header[1])
                    };
                    let take = (need - have).min(bytes.len());
                    self.header[have..have + take].copy_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    have += take;
                    let total = if have < 2 {
                        2
                    } else {
                        Self::header_len(self.header[1])
                    };
                    if have < total {
                        self.at = At::Header { have };
                        continue;
                    }
                    let len = self.payload_len();
                    if len > self.max {
                        self.at = At::Refused;
                        return Err(TooLarge { len, max: self.max });
                    }
                    self.at = if len == 0 {
                        At::Header { have: 0 }
                    } else {
                        At::Payload { left: len }
                    };
                }
            }
        }
        Ok(())
    }
}
