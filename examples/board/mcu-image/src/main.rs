//! The minimal board image: a lanmesh peer on a Cortex-M4F with a smoltcp stack.
//!
//! It joins the mesh as `board`, sends one acked message to `laptop`, and answers what
//! arrives — everything a sensor does — so the linker keeps exactly the code such a
//! board carries: the Noise handshake (X25519, BLAKE2s), ChaCha20-Poly1305 records, the
//! peer core and smoltcp's Ethernet/IPv4/TCP. The Ethernet MAC and the TRNG are stand-ins
//! at fixed addresses (read with volatile loads), so nothing is optimised away; this image
//! is for measuring (`scripts/mcu.sh size`), not for flashing. The heap is a bump
//! allocator that starts over whenever everything has been freed: the smallest allocator
//! that can run the client, not one for production.
#![no_std]
#![no_main]

extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use lanmesh_core::Instant;
use lanmesh_core::peer::Config;
use lanmesh_embedded::tcp::TcpStream;
use lanmesh_embedded::{Client, Event, small_limits};
use lanmesh_proto::{Framing, HandshakeConfig, Identity, Name, RandomSource};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet, SocketStorage};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as NetInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};

/// Record size the board works with: 4 KiB.
const RECORD: usize = 4096;
const HEAP_SIZE: usize = 40 * 1024;

// ---- stand-in hardware ----------------------------------------------------------------

const MAC_BASE: usize = 0x4002_8000;
const TRNG_DATA: usize = 0x5006_0008;
const TIMER_MS: usize = 0x4000_0024;

fn reg(addr: usize) -> u32 {
    // SAFETY: a fixed peripheral address of the target part; reading it has no effect
    // beyond returning its value.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn set_reg(addr: usize, value: u32) {
    // SAFETY: as above, a peripheral register.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

fn trng_fill(buf: &mut [u8]) -> bool {
    for chunk in buf.chunks_mut(4) {
        let word = reg(TRNG_DATA).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    true
}

fn now_ms() -> u64 {
    u64::from(reg(TIMER_MS))
}

/// An Ethernet MAC with one receive and one transmit frame buffer.
struct Mac {
    frame: [u8; 1536],
}

struct Rx<'a>(&'a mut [u8]);
struct Tx<'a>(&'a mut [u8]);

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let len = (reg(MAC_BASE) as usize).min(self.0.len());
        for (i, b) in self.0[..len].iter_mut().enumerate() {
            *b = reg(MAC_BASE + 4 + i) as u8;
        }
        f(&self.0[..len])
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(self.0.len());
        let r = f(&mut self.0[..len]);
        for &b in &self.0[..len] {
            set_reg(MAC_BASE + 8, u32::from(b));
        }
        set_reg(MAC_BASE + 12, len as u32);
        r
    }
}

impl Device for Mac {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: NetInstant) -> Option<(Rx<'_>, Tx<'_>)> {
        if reg(MAC_BASE) == 0 {
            return None;
        }
        let (rx, tx) = self.frame.split_at_mut(768);
        Some((Rx(rx), Tx(tx)))
    }

    fn transmit(&mut self, _: NetInstant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.frame[768..]))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

// ---- heap ------------------------------------------------------------------------------

struct Bump {
    arena: UnsafeCell<[u8; HEAP_SIZE]>,
    next: AtomicUsize,
    live: AtomicUsize,
    peak: AtomicUsize,
}

// SAFETY: single core, no interrupts touch the heap.
unsafe impl Sync for Bump {}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let start = self.next.load(Ordering::Relaxed).next_multiple_of(layout.align());
        let end = start + layout.size();
        if end > HEAP_SIZE {
            return core::ptr::null_mut();
        }
        self.next.store(end, Ordering::Relaxed);
        self.live.fetch_add(1, Ordering::Relaxed);
        self.peak.fetch_max(end, Ordering::Relaxed);
        // SAFETY: `start..end` lies inside the arena and is handed out once.
        unsafe { (self.arena.get() as *mut u8).add(start) }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {
        if self.live.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.next.store(0, Ordering::Relaxed);
        }
    }
}

#[global_allocator]
static HEAP: Bump = Bump {
    arena: UnsafeCell::new([0; HEAP_SIZE]),
    next: AtomicUsize::new(0),
    live: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

// ---- the board -------------------------------------------------------------------------

#[unsafe(link_section = ".vector_table.reset")]
#[used]
static RESET: extern "C" fn() -> ! = reset;

#[unsafe(no_mangle)]
extern "C" fn reset() -> ! {
    let random = RandomSource::from_fn(trng_fill);
    let Ok(identity) = Identity::generate_from(random) else {
        panic!("no identity");
    };
    let mut handshake = HandshakeConfig::new(identity, "lanmesh");
    handshake.limits = small_limits(RECORD, 16 * 1024);
    handshake.framing = Framing::LengthPrefixed;
    let Ok(name) = Name::new("board") else {
        panic!("name");
    };
    let mut config = Config::new(Some(name), handshake);
    config.random = random;
    let mut client = Client::new(config);

    let mut mac = Mac { frame: [0; 1536] };
    let mut iface_config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress([
        0x02, 0, 0, 0, 0, 0x42,
    ])));
    iface_config.random_seed = u64::from(reg(TRNG_DATA));
    let mut iface = Interface::new(iface_config, &mut mac, NetInstant::from_millis(0));
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(IpAddress::v4(10, 0, 0, 2), 24));
    });
    let _ = iface
        .routes_mut()
        .add_default_ipv4_route(Ipv4Address::new(10, 0, 0, 1));
    let mut storage = [SocketStorage::EMPTY; 1];
    let mut sockets = SocketSet::new(&mut storage[..]);
    let socket = tcp::Socket::new(
        tcp::SocketBuffer::new(alloc::vec![0; 2 * RECORD]),
        tcp::SocketBuffer::new(alloc::vec![0; 2 * RECORD]),
    );
    let handle = sockets.add(socket);
    let _ = sockets.get_mut::<tcp::Socket>(handle).connect(
        iface.context(),
        (IpAddress::v4(10, 0, 0, 1), 7400),
        49152,
    );
    let _ = client.connect("10.0.0.1:7400", Instant::from_millis(now_ms()));

    let mut sent = false;
    loop {
        let ms = now_ms();
        iface.poll(NetInstant::from_millis(ms as i64), &mut mac, &mut sockets);
        let mut stream = TcpStream(sockets.get_mut::<tcp::Socket>(handle));
        let _ = client.poll(&mut stream, Instant::from_millis(ms));
        while let Some(event) = client.poll_event() {
            match event {
                Event::Connected if !sent => {
                    sent = true;
                    if let Ok(laptop) = Name::new("laptop") {
                        let _ = client.core().send_acked(
                            &laptop,
                            Bytes::from_static(b"21.5 C"),
                            lanmesh_proto::frame::flags::TEXT,
                            Instant::from_millis(ms),
                        );
                    }
                }
                Event::Message(m) => set_reg(TIMER_MS + 4, m.data.len() as u32),
                Event::Acked { id } => set_reg(TIMER_MS + 8, id as u32),
                Event::Dial => {
                    let _ = client.connect("10.0.0.1:7400", Instant::from_millis(ms));
                }
                _ => {}
            }
        }
        set_reg(TIMER_MS + 12, HEAP.peak.load(Ordering::Relaxed) as u32);
    }
}
