//! The board image under QEMU: the lanmesh embedded client on an emulated Cortex-M4F
//! (`qemu-system-arm -M mps2-an386`), with its peak heap and stack measured there.
//!
//! Everything runs in memory on the one core, no network: a router made of two
//! [`SessionCore`]s (the board's connection and the laptop's) and a small stand-in for the
//! router actor (joins, membership, forwarding), the board's [`Client`] driven over an
//! in-memory byte pipe with the buffers of a TCP socket (2 × 8 KiB, like the smoltcp
//! socket of `mcu-image`), and a second peer core, "laptop". The board works with 4 KiB
//! records (`small_limits(4096, 16 KiB)`); the laptop has the default limits. Three
//! phases, each measured on its own:
//! 1. both Noise handshakes and welcomes;
//! 2. an acked send board → laptop and one laptop → board, 4000 bytes each (one record);
//! 3. an acked send laptop → board of 12000 bytes (three records, reassembled on the
//!    board).
//!
//! Every step and the measurements go out through semihosting (`bkpt 0xAB`: SYS_WRITE0;
//! SYS_EXIT, which makes QEMU exit 0 on success, 1 on a failure, panic or fault).
//!
//! Measured:
//! * heap: two first-fit heaps, the board's and everyone else's (router, laptop, the
//!   harness). An allocation comes from the board's heap while the board's code runs (a
//!   flag around its calls), a free goes to the heap its address lies in. Each heap counts
//!   the bytes asked for and the allocator's own count (with its rounding and headers), and
//!   their high-water marks, and how high in its arena it ever reached (fragmentation).
//! * stack: painted with a pattern at reset and again before each call (from the stack's
//!   bottom up to the stack pointer); after the call, the deepest overwritten word gives
//!   the depth, from the stack's top. The board's calls and the others' are measured
//!   apart; the board's depth includes `board_main`'s frame, which holds the `Client`.
//!
//! Randomness (the keys and Noise ephemerals of all three) comes from a stand-in: a
//! deterministic xorshift32, so every run is the same. Time is a virtual clock, 1 ms a
//! step. For measuring, not for flashing.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::fmt::Write as _;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use embedded_io::{ErrorType, Read, ReadReady, Write, WriteReady};
use lanmesh_core::Instant;
use lanmesh_core::peer::{Config, Event, PeerCore};
use lanmesh_core::session::{Routes, SessionConfig, SessionCore, SessionEvent};
use lanmesh_embedded::{Client, small_limits};
use lanmesh_proto::{Frame, HandshakeConfig, Identity, Name, PeerInfo, RandomSource, Transport};
use linked_list_allocator::Heap;

/// Record size the board works with: 4 KiB.
const RECORD: usize = 4096;
/// The largest message the board takes.
const MAX_MESSAGE: u64 = 16 * 1024;
/// Each way of the board's pipe holds this much, as a TCP socket's buffer would.
const PIPE: usize = 2 * RECORD;
/// Message sizes: one record, and three (reassembled on the board).
const SMALL_LEN: usize = 4000;
const BIG_LEN: usize = 12_000;
const BOARD_HEAP: usize = 128 * 1024;
const OTHER_HEAP: usize = 512 * 1024;
const MESH: &str = "lanmesh";
/// Steps (virtual milliseconds) the whole run may take.
const MAX_STEPS: u64 = 20_000;

// ---- start-up, semihosting ------------------------------------------------------------

core::arch::global_asm!(
    ".section .vector_table, \"a\"",
    ".word __stack_top",
    ".word reset",
    ".rept 14",
    ".word fault",
    ".endr",
    "",
    ".section .text.reset, \"ax\"",
    ".global reset",
    ".type reset, %function",
    ".thumb_func",
    "reset:",
    // The FPU on (CPACR: CP10 and CP11 full access): the code is built for eabihf.
    "  ldr r0, =0xE000ED88",
    "  ldr r1, [r0]",
    "  orr r1, r1, #0x00F00000",
    "  str r1, [r0]",
    "  dsb",
    "  isb",
    "  bl lanmesh_paint_stack",
    // .bss zeroed, .data copied from its load address.
    "  ldr r0, =__sbss",
    "  ldr r1, =__ebss",
    "  movs r2, #0",
    "1:",
    "  cmp r0, r1",
    "  bhs 2f",
    "  str r2, [r0], #4",
    "  b 1b",
    "2:",
    "  ldr r0, =__sdata",
    "  ldr r1, =__edata",
    "  ldr r3, =__sidata",
    "3:",
    "  cmp r0, r1",
    "  bhs 4f",
    "  ldr r2, [r3], #4",
    "  str r2, [r0], #4",
    "  b 3b",
    "4:",
    "  bl board_main",
    "  b .",
    ".ltorg",
    "",
    // Paints the free stack, from its bottom up to the caller's stack pointer, with the
    // pattern. A leaf touching only r0-r2: it needs no stack of its own.
    ".section .text.paint, \"ax\"",
    ".global lanmesh_paint_stack",
    ".type lanmesh_paint_stack, %function",
    ".thumb_func",
    "lanmesh_paint_stack:",
    "  ldr r0, =__sstack",
    "  mov r1, sp",
    "  ldr r2, =0xA5C3A5C3",
    "5:",
    "  cmp r0, r1",
    "  bhs 6f",
    "  str r2, [r0], #4",
    "  b 5b",
    "6:",
    "  bx lr",
    ".ltorg",
);

/// The word the stack is painted with.
const PAINT: u32 = 0xA5C3_A5C3;

unsafe extern "C" {
    fn lanmesh_paint_stack();
    static __sstack: u32;
    static __stack_top: u32;
    static __sdata: u32;
    static __ebss: u32;
}

/// A semihosting call: operation `op` with parameter `arg` (QEMU's `-semihosting`).
fn semihost(op: u32, arg: usize) {
    // SAFETY: `bkpt 0xAB` is the Arm semihosting trap; QEMU reads r0 and r1 and writes r0.
    unsafe {
        core::arch::asm!("bkpt 0xAB", inout("r0") op => _, in("r1") arg, options(nostack));
    }
}

/// SYS_EXIT: `ADP_Stopped_ApplicationExit` (QEMU exits 0) or `RunTimeErrorUnknown` (1).
fn exit(ok: bool) -> ! {
    semihost(0x18, if ok { 0x2_0026 } else { 0x2_0023 });
    loop {
        core::hint::spin_loop();
    }
}

/// A line written with SYS_WRITE0 (NUL-terminated), cut at 250 bytes.
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() - 2 {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

fn say(args: core::fmt::Arguments<'_>) {
    let mut line = Line {
        buf: [0; 256],
        len: 0,
    };
    let _ = line.write_str("qemu: ");
    let _ = line.write_fmt(args);
    line.buf[line.len] = b'\n';
    line.buf[line.len + 1] = 0;
    semihost(0x04, line.buf.as_ptr() as usize);
}

macro_rules! say {
    ($($t:tt)*) => { say(format_args!($($t)*)) };
}

#[unsafe(no_mangle)]
extern "C" fn fault() -> ! {
    say!("FAIL: hard fault");
    exit(false)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    say!("FAIL: panic: {info}");
    exit(false)
}

// ---- heaps -----------------------------------------------------------------------------

static mut BOARD_ARENA: [u8; BOARD_HEAP] = [0; BOARD_HEAP];
static mut OTHER_ARENA: [u8; OTHER_HEAP] = [0; OTHER_HEAP];

/// One heap and what it counts.
struct Arena {
    heap: Heap,
    /// Bytes asked for and not yet freed, and their high-water mark.
    live: usize,
    peak: usize,
    /// The allocator's own count (rounded, with its headers), and its high-water mark.
    used_peak: usize,
    /// The highest address handed out, from the arena's bottom: what this first-fit heap
    /// needed, fragmentation included.
    reach: usize,
    allocations: u32,
    /// The live allocations of 1 KiB or more (address, size), and their sizes at the
    /// latest peak: where the peak went.
    big: [(usize, usize); BIG_SLOTS],
    big_at_peak: [usize; BIG_SLOTS],
}

/// Live allocations of 1 KiB or more that the heaps keep track of.
const BIG_SLOTS: usize = 32;

impl Arena {
    fn track(&mut self, ptr: usize, size: usize) {
        if size < 1024 {
            return;
        }
        if let Some(slot) = self.big.iter_mut().find(|(p, _)| *p == 0) {
            *slot = (ptr, size);
        }
    }

    fn untrack(&mut self, ptr: usize) {
        if let Some(slot) = self.big.iter_mut().find(|(p, _)| *p == ptr) {
            *slot = (0, 0);
        }
    }

    const fn new() -> Self {
        Self {
            heap: Heap::empty(),
            live: 0,
            peak: 0,
            used_peak: 0,
            reach: 0,
            allocations: 0,
            big: [(0, 0); BIG_SLOTS],
            big_at_peak: [0; BIG_SLOTS],
        }
    }

    fn contains(&self, ptr: *mut u8) -> bool {
        let p = ptr as usize;
        p >= self.heap.bottom() as usize && p < self.heap.top() as usize
    }
}

struct Heaps {
    board: Arena,
    other: Arena,
    /// The board's code is running: allocations come from its heap.
    in_board: bool,
}

struct Split(UnsafeCell<Heaps>);

// SAFETY: one core, no interrupts; nothing touches the heaps concurrently.
unsafe impl Sync for Split {}

impl Split {
    #[allow(clippy::mut_from_ref)]
    fn get(&self) -> &mut Heaps {
        // SAFETY: single-threaded and no re-entrance: the allocator's calls do not nest,
        // and the harness holds no borrow across an allocation.
        unsafe { &mut *self.0.get() }
    }
}

unsafe impl GlobalAlloc for Split {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let heaps = self.get();
        let arena = if heaps.in_board {
            &mut heaps.board
        } else {
            &mut heaps.other
        };
        match arena.heap.allocate_first_fit(layout) {
            Ok(p) => {
                arena.live += layout.size();
                arena.track(p.as_ptr() as usize, layout.size());
                if arena.live > arena.peak {
                    arena.peak = arena.live;
                    for (at, (_, size)) in arena.big_at_peak.iter_mut().zip(arena.big) {
                        *at = size;
                    }
                }
                arena.used_peak = arena.used_peak.max(arena.heap.used());
                arena.allocations += 1;
                let end = p.as_ptr() as usize + layout.size() - arena.heap.bottom() as usize;
                arena.reach = arena.reach.max(end);
                p.as_ptr()
            }
            Err(()) => {
                say!(
                    "heap ({}) full: {} B asked for, {} B live, {} B used",
                    if heaps.in_board { "board" } else { "other" },
                    layout.size(),
                    arena.live,
                    arena.heap.used()
                );
                core::ptr::null_mut()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let heaps = self.get();
        let arena = if heaps.board.contains(ptr) {
            &mut heaps.board
        } else {
            &mut heaps.other
        };
        arena.live -= layout.size();
        arena.untrack(ptr as usize);
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from this heap's `allocate_first_fit` with `layout`.
            unsafe { arena.heap.deallocate(p, layout) };
        }
    }
}

#[global_allocator]
static HEAPS: Split = Split(UnsafeCell::new(Heaps {
    board: Arena::new(),
    other: Arena::new(),
    in_board: false,
}));

fn init_heaps() {
    let heaps = HEAPS.get();
    // SAFETY: the arenas are used by these heaps only, and set up once before any
    // allocation.
    unsafe {
        heaps
            .board
            .heap
            .init(&raw mut BOARD_ARENA as *mut u8, BOARD_HEAP);
        heaps
            .other
            .heap
            .init(&raw mut OTHER_ARENA as *mut u8, OTHER_HEAP);
    }
}

// ---- stack -----------------------------------------------------------------------------

fn stack_top() -> usize {
    &raw const __stack_top as usize
}

/// How deep the stack went since it was last painted: from its top to the deepest word
/// that no longer holds the pattern.
fn stack_depth() -> usize {
    let mut at = &raw const __sstack as usize;
    let top = stack_top();
    while at < top {
        // SAFETY: `at` lies in the stack region, word-aligned, below the live frames
        // or inside them (reading a live word is harmless).
        if unsafe { core::ptr::read_volatile(at as *const u32) } != PAINT {
            break;
        }
        at += 4;
    }
    top - at
}

/// Deepest stack seen in the board's calls and in everyone else's.
struct StackPeaks {
    board: usize,
    other: usize,
}

/// Runs `f` as the board's code: its allocations from the board's heap, its stack
/// measured apart.
#[inline(never)]
fn as_board<R>(peaks: &mut StackPeaks, f: impl FnOnce() -> R) -> R {
    // SAFETY: paints only below the stack pointer, where nothing lives.
    unsafe { lanmesh_paint_stack() };
    HEAPS.get().in_board = true;
    let r = f();
    HEAPS.get().in_board = false;
    peaks.board = peaks.board.max(stack_depth());
    r
}

/// Runs `f` as the router's or the laptop's code.
#[inline(never)]
fn as_other<R>(peaks: &mut StackPeaks, f: impl FnOnce() -> R) -> R {
    // SAFETY: as above.
    unsafe { lanmesh_paint_stack() };
    let r = f();
    peaks.other = peaks.other.max(stack_depth());
    r
}

// ---- randomness ------------------------------------------------------------------------

static RNG: AtomicU32 = AtomicU32::new(0x1234_5678);

/// The stand-in TRNG: xorshift32, deterministic.
fn xorshift_fill(buf: &mut [u8]) -> bool {
    for chunk in buf.chunks_mut(4) {
        let mut x = RNG.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        RNG.store(x, Ordering::Relaxed);
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    true
}

// ---- the board's stream ----------------------------------------------------------------

/// The board's TCP connection in memory: bounded buffers each way, allocated once.
struct Pipe {
    to_router: Vec<u8>,
    to_board: Vec<u8>,
}

/// The board's end of the pipe.
struct BoardEnd<'a>(&'a mut Pipe);

impl ErrorType for BoardEnd<'_> {
    type Error = core::convert::Infallible;
}

impl ReadReady for BoardEnd<'_> {
    fn read_ready(&mut self) -> Result<bool, Self::Error> {
        Ok(!self.0.to_board.is_empty())
    }
}

impl Read for BoardEnd<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.0.to_board.len());
        buf[..n].copy_from_slice(&self.0.to_board[..n]);
        self.0.to_board.drain(..n);
        Ok(n)
    }
}

impl WriteReady for BoardEnd<'_> {
    fn write_ready(&mut self) -> Result<bool, Self::Error> {
        Ok(self.0.to_router.len() < PIPE)
    }
}

impl Write for BoardEnd<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(PIPE - self.0.to_router.len());
        self.0.to_router.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

// ---- the router ------------------------------------------------------------------------

/// The routing table: member name → session index.
#[derive(Clone, Default)]
struct Table(Vec<(Name, usize)>);

impl Routes for Table {
    type Route = usize;
    fn route(&self, name: &str) -> Option<&usize> {
        self.0
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, s)| s)
    }
    fn for_each(&self, f: &mut dyn FnMut(&Name, &usize)) {
        for (n, s) in &self.0 {
            f(n, s);
        }
    }
    fn identity(route: &usize) -> usize {
        *route
    }
}

/// Session 0 is the board's connection, session 1 the laptop's.
const BOARD: usize = 0;
const LAPTOP: usize = 1;

/// The router: its sessions and members, and the stand-in for its actor.
struct Router {
    sessions: Vec<SessionCore<Table>>,
    members: Vec<(PeerInfo, usize)>,
    /// What each session reads, and what it wrote that its link has not taken yet.
    input: Vec<BytesMut>,
    unsent: Vec<Bytes>,
}

impl Router {
    fn new(random: RandomSource, now: Instant) -> Self {
        let Ok(identity) = Identity::generate_from(random) else {
            panic!("router identity");
        };
        let handshake = HandshakeConfig::new(identity, MESH);
        let sessions = (0..2)
            .map(|i| {
                let config = SessionConfig {
                    handshake: handshake.clone(),
                    transport: Transport::Tcp,
                    remote: alloc::format!("10.0.0.{}:49152", i + 2),
                    grace: Duration::from_secs(30),
                    write_stall: Duration::from_secs(30),
                    close_timeout: Duration::from_secs(2),
                };
                SessionCore::new_with_random(config, random, now)
            })
            .collect();
        Self {
            sessions,
            members: Vec::new(),
            input: alloc::vec![BytesMut::new(), BytesMut::new()],
            unsent: alloc::vec![Bytes::new(), Bytes::new()],
        }
    }

    fn table(&self) -> Table {
        Table(
            self.members
                .iter()
                .map(|(info, s)| (info.name.clone(), *s))
                .collect(),
        )
    }

    fn peer_list(&self) -> Vec<PeerInfo> {
        self.members.iter().map(|(info, _)| info.clone()).collect()
    }

    /// Does what session `s` asked for and hands its frames on.
    fn run_session(&mut self, s: usize) {
        while let Some(event) = self.sessions[s].poll_event() {
            match event {
                SessionEvent::Join { info, .. } => {
                    say!("router: {} joins", info.name);
                    self.members.retain(|(m, _)| m.name != info.name);
                    self.members.push((info.clone(), s));
                    let table = self.table();
                    for (other, session) in self.sessions.iter_mut().enumerate() {
                        if other != s && self.members.iter().any(|(_, m)| *m == other) {
                            session
                                .membership(table.clone(), Some(Frame::PeerJoined(info.clone())));
                        }
                    }
                    let peers = self.peer_list();
                    self.sessions[s].joined(table, peers);
                }
                SessionEvent::ListPeers => {
                    let peers = self.peer_list();
                    if self.sessions[s].send_peer_list(peers).is_err() {
                        panic!("peer list");
                    }
                }
                SessionEvent::Leave { name } => self.members.retain(|(m, _)| m.name != name),
                other => say!("router: session {s}: {other:?}"),
            }
        }
        let mut forwards = Vec::new();
        let mut notices = Vec::new();
        {
            let out = self.sessions[s].take_outgoing();
            forwards.extend(out.drain_forwards());
            notices.extend(out.drain_notices());
        }
        for (_, route, frames) in forwards {
            self.sessions[route].deliver(frames);
        }
        for (route, frame) in notices {
            self.sessions[route].deliver(alloc::vec![frame]);
        }
    }

    /// One turn of session `s`: its timers, what arrived, what it asked for. Returns
    /// what it has to send.
    fn turn(&mut self, s: usize, now: Instant) {
        self.sessions[s].handle_timeout(now);
        if !self.input[s].is_empty() {
            self.sessions[s].handle_input(&mut self.input[s]);
        }
        self.run_session(s);
    }

    /// Moves what session `s` writes into `out`, at most `room` bytes of it.
    fn transmit(&mut self, s: usize, out: &mut Vec<u8>, room: usize) {
        let mut room = room;
        while room > 0 {
            if self.unsent[s].is_empty() {
                match self.sessions[s].poll_transmit() {
                    Some(b) => self.unsent[s] = b,
                    None => break,
                }
            }
            let n = room.min(self.unsent[s].len());
            out.extend_from_slice(&self.unsent[s][..n]);
            self.unsent[s].advance(n);
            self.sessions[s].written(n);
            room -= n;
        }
    }
}

// ---- the run ---------------------------------------------------------------------------

/// The run's phases, each measured on its own.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Both peers' Noise handshakes and welcomes.
    Handshake,
    /// One record each way: board → laptop and laptop → board, acked.
    OneRecord,
    /// A message of three records to the board (reassembled there), acked.
    ThreeRecords,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Self::Handshake => "handshake (board + laptop join)",
            Self::OneRecord => "4000 B acked each way (one record)",
            Self::ThreeRecords => "12000 B acked to the board (three records)",
        }
    }
}

/// What the run has seen so far.
#[derive(Default)]
struct Progress {
    board_connected: bool,
    laptop_connected: bool,
    board_sent: Option<u64>,
    board_acked: bool,
    /// Intact messages the board and the laptop received.
    board_got: u32,
    laptop_got: u32,
    /// The laptop's acked sends, and how many of them were acked.
    laptop_sent: Vec<u64>,
    laptop_acked: u32,
}

impl Progress {
    fn phase_done(&self, phase: Phase) -> bool {
        match phase {
            Phase::Handshake => self.board_connected && self.laptop_connected,
            Phase::OneRecord => {
                self.board_acked
                    && self.laptop_got == 1
                    && self.board_got == 1
                    && self.laptop_acked == 1
            }
            Phase::ThreeRecords => self.board_got == 2 && self.laptop_acked == 2,
        }
    }
}

fn payload(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect::<Vec<u8>>(),
    )
}

/// Whether `data` is `payload(len, seed)` (compared in place: no allocation).
fn is_payload(data: &[u8], len: usize, seed: u8) -> bool {
    data.len() == len
        && data
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i as u8).wrapping_mul(31) ^ seed)
}

fn name(s: &str) -> Name {
    let Ok(n) = Name::new(s) else {
        panic!("name {s}");
    };
    n
}

fn peer_config(who: &str, random: RandomSource, small: bool) -> Config {
    let Ok(identity) = Identity::generate_from(random) else {
        panic!("identity of {who}");
    };
    let mut handshake = HandshakeConfig::new(identity, MESH);
    if small {
        handshake.limits = small_limits(RECORD, MAX_MESSAGE);
    }
    let mut config = Config::new(Some(name(who)), handshake);
    config.random = random;
    config
}

/// The board's events: check what arrives, note the acks.
fn board_events(client: &mut Client, progress: &mut Progress) {
    while let Some(event) = client.poll_event() {
        match event {
            Event::Connected => {
                say!("board: connected (Noise handshake done, welcomed)");
                progress.board_connected = true;
            }
            Event::Acked { id } if Some(id) == progress.board_sent => {
                say!("board: message {id} acked by laptop");
                progress.board_acked = true;
            }
            Event::Message(m) => {
                let len = if progress.board_got == 0 {
                    SMALL_LEN
                } else {
                    BIG_LEN
                };
                let ok = m.from.as_str() == "laptop" && is_payload(&m.data, len, 0x5A);
                say!(
                    "board: received {} B from {} ({})",
                    m.data.len(),
                    m.from,
                    if ok { "intact" } else { "WRONG" }
                );
                if !ok {
                    exit(false);
                }
                progress.board_got += 1;
            }
            Event::Peer(_) | Event::Status(_) => {}
            other => say!("board: {other:?}"),
        }
    }
}

/// The laptop's events: answer the board's message with one of the same size.
fn laptop_events(laptop: &mut PeerCore, progress: &mut Progress, now: Instant) {
    while let Some(event) = laptop.poll_event() {
        match event {
            Event::Connected => {
                say!("laptop: connected");
                progress.laptop_connected = true;
            }
            Event::Message(m) => {
                let ok = m.from.as_str() == "board" && is_payload(&m.data, SMALL_LEN, 0xA5);
                say!(
                    "laptop: received {} B from {} ({})",
                    m.data.len(),
                    m.from,
                    if ok { "intact" } else { "WRONG" }
                );
                if !ok {
                    exit(false);
                }
                progress.laptop_got += 1;
                laptop_send(laptop, progress, SMALL_LEN, now);
            }
            Event::Acked { id } if progress.laptop_sent.contains(&id) => {
                say!("laptop: message {id} acked by board");
                progress.laptop_acked += 1;
            }
            Event::Peer(_) | Event::Status(_) => {}
            other => say!("laptop: {other:?}"),
        }
    }
}

fn laptop_send(laptop: &mut PeerCore, progress: &mut Progress, len: usize, now: Instant) {
    match laptop.send_acked(&name("board"), payload(len, 0x5A), 0, now) {
        Ok(id) => {
            say!("laptop: sent {len} B to board, acked, id {id}");
            progress.laptop_sent.push(id);
        }
        Err(e) => {
            say!("FAIL: laptop: send: {e}");
            exit(false);
        }
    }
}

/// The board's measurements in one phase (heap: the allocator's count, with its
/// rounding and headers).
#[derive(Clone, Copy, Default)]
struct Measured {
    heap: usize,
    heap_live: usize,
    stack: usize,
    other_heap: usize,
    other_stack: usize,
}

/// Ends a phase: prints its measurements and starts the next one's from what is live.
fn end_phase(phase: Phase, peaks: &mut StackPeaks, worst: &mut Measured, step: u64) {
    let heaps = HEAPS.get();
    let m = Measured {
        heap: heaps.board.used_peak,
        heap_live: heaps.board.peak,
        stack: peaks.board,
        other_heap: heaps.other.used_peak,
        other_stack: peaks.other,
    };
    say!(
        "phase {}: done at step {step}; board heap peak {} B ({} B asked for), stack peak {} B, RAM {} B; router + laptop heap peak {} B, stack peak {} B",
        phase.label(),
        m.heap,
        m.heap_live,
        m.stack,
        m.heap + m.stack + statics(),
        m.other_heap,
        m.other_stack
    );
    if phase == Phase::OneRecord {
        // Messages of one record only: this phase's heap, the stack of it and the
        // handshake before it.
        let one = worst.heap.max(m.heap) + worst.stack.max(m.stack) + statics();
        say!(
            "board RAM with messages of one record (handshake + this phase): {one} B ({} KiB; target 48 KiB = 49152 B)",
            one.div_ceil(1024)
        );
    }
    worst.heap = worst.heap.max(m.heap);
    worst.heap_live = worst.heap_live.max(m.heap_live);
    worst.stack = worst.stack.max(m.stack);
    worst.other_heap = worst.other_heap.max(m.other_heap);
    worst.other_stack = worst.other_stack.max(m.other_stack);
    for arena in [&mut heaps.board, &mut heaps.other] {
        arena.peak = arena.live;
        arena.used_peak = arena.heap.used();
    }
    *peaks = StackPeaks { board: 0, other: 0 };
}

/// Static RAM (.data + .bss) less the two heap arenas and the heaps' bookkeeping (which
/// are the measuring harness's, not the board's).
fn statics() -> usize {
    let all = (&raw const __ebss as usize) - (&raw const __sdata as usize);
    all - BOARD_HEAP - OTHER_HEAP - core::mem::size_of::<Split>()
}

#[unsafe(no_mangle)]
extern "C" fn board_main() -> ! {
    let reset_depth = stack_depth();
    init_heaps();
    say!(
        "start: mps2-an386 (Cortex-M4F), records {RECORD} B, max message {MAX_MESSAGE} B, xorshift32 stand-in TRNG"
    );
    let random = RandomSource::from_fn(xorshift_fill);
    let mut peaks = StackPeaks { board: 0, other: 0 };
    let mut now = Instant::from_millis(1);

    // Router and laptop live on the other heap (boxed), so the stack the board's calls
    // are measured on holds only what the board has.
    let mut router = as_other(&mut peaks, || Box::new(Router::new(random, now)));
    let mut laptop = as_other(&mut peaks, || {
        Box::new(PeerCore::new(peer_config("laptop", random, false)))
    });
    let mut laptop_in = BytesMut::new();

    // The board: its client and its socket's buffers, from its heap.
    let (mut client, mut pipe) = as_board(&mut peaks, || {
        let client = Client::new(peer_config("board", random, true));
        let pipe = Pipe {
            to_router: Vec::with_capacity(PIPE),
            to_board: Vec::with_capacity(PIPE),
        };
        (client, pipe)
    });
    let pipe_heap = HEAPS.get().board.heap.used();
    say!(
        "board: Client is {} B (in board_main's frame); board heap after Client::new and the 2 x {PIPE} B pipe: {pipe_heap} B",
        core::mem::size_of::<Client>()
    );

    as_other(&mut peaks, || {
        if laptop.connect("router", now).is_err() {
            panic!("laptop connect");
        }
    });
    let mut progress = Progress::default();
    let mut worst = Measured::default();
    let mut phase = Phase::Handshake;
    let mut step = 0;
    loop {
        if progress.phase_done(phase) {
            end_phase(phase, &mut peaks, &mut worst, step);
            phase = match phase {
                Phase::Handshake => {
                    as_board(&mut peaks, || {
                        match client.core().send_acked(
                            &name("laptop"),
                            payload(SMALL_LEN, 0xA5),
                            0,
                            now,
                        ) {
                            Ok(id) => {
                                say!("board: sent {SMALL_LEN} B to laptop, acked, id {id}");
                                progress.board_sent = Some(id);
                            }
                            Err(e) => {
                                say!("FAIL: board: send: {e}");
                                exit(false);
                            }
                        }
                    });
                    Phase::OneRecord
                }
                Phase::OneRecord => {
                    as_other(&mut peaks, || {
                        laptop_send(&mut laptop, &mut progress, BIG_LEN, now);
                    });
                    Phase::ThreeRecords
                }
                Phase::ThreeRecords => break,
            };
        }
        step += 1;
        if step > MAX_STEPS {
            say!("FAIL: not done after {MAX_STEPS} steps (phase {phase:?})");
            exit(false);
        }
        now = now + Duration::from_millis(1);
        as_board(&mut peaks, || {
            // The board dials once the laptop is in the mesh (someone to send to).
            if progress.laptop_connected
                && !progress.board_connected
                && !client.core().has_transport()
                && client.connect("router", now).is_err()
            {
                panic!("board connect");
            }
            if client.core().has_transport() {
                if let Err(e) = client.poll(&mut BoardEnd(&mut pipe), now) {
                    say!("FAIL: board: {e}");
                    exit(false);
                }
            }
            board_events(&mut client, &mut progress);
        });
        as_other(&mut peaks, || {
            // Laptop: timers, what it writes.
            if laptop.poll_timeout().is_some_and(|t| t <= now) {
                laptop.handle_timeout(now);
            }
            while let Some(b) = laptop.poll_transmit() {
                router.input[LAPTOP].extend_from_slice(&b);
            }
            // Router: what the board's pipe brought, both sessions' turns, what they write
            // (to the board no more than its pipe takes).
            router.input[BOARD].extend_from_slice(&pipe.to_router);
            pipe.to_router.clear();
            for s in [BOARD, LAPTOP] {
                router.turn(s, now);
            }
            let room = PIPE - pipe.to_board.len();
            router.transmit(BOARD, &mut pipe.to_board, room);
            let mut down = Vec::new();
            router.transmit(LAPTOP, &mut down, usize::MAX);
            laptop_in.extend_from_slice(&down);
            if !laptop_in.is_empty() {
                laptop.handle_input(&mut laptop_in, now);
            }
            laptop_events(&mut laptop, &mut progress, now);
        });
    }

    let heaps = HEAPS.get();
    let statics = statics();
    say!(
        "done after {step} steps ({step} ms virtual); board heap: {} allocations, {} B live at the end",
        heaps.board.allocations,
        heaps.board.heap.used()
    );
    say!(
        "board peak over all phases: heap {} B ({} B asked for), stack {} B (frame of board_main included; {reset_depth} B at its entry)",
        worst.heap,
        worst.heap_live,
        worst.stack
    );
    let mut big = Line {
        buf: [0; 256],
        len: 0,
    };
    let mut sizes = heaps.board.big_at_peak;
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    for size in sizes.iter().filter(|s| **s > 0) {
        let _ = write!(big, " {size}");
    }
    say!(
        "board heap at the peak of the last phase, live allocations of 1 KiB or more (B):{}",
        core::str::from_utf8(&big.buf[..big.len]).unwrap_or("?")
    );
    say!(
        "board heap reach (highest address the first-fit heap handed out, fragmentation included): {} B",
        heaps.board.reach
    );
    say!(
        "router + laptop + harness peak: heap {} B, stack {} B",
        worst.other_heap,
        worst.other_stack
    );
    let total = worst.heap + worst.stack + statics;
    say!(
        "board RAM, worst heap + worst stack + static: {} + {} + {statics} = {total} B ({} KiB; target 48 KiB = 49152 B); without the 2 x {PIPE} B pipe (the TCP stack's buffers): {} B",
        worst.heap,
        worst.stack,
        total.div_ceil(1024),
        total - 2 * PIPE
    );
    say!("OK: handshake, acked sends board <-> laptop, 12000 B reassembled on the board");
    exit(true)
}
