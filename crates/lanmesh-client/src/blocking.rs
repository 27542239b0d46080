//! A blocking facade for scripts: the same peer, no async.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use lanmesh_proto::PeerInfo;

use lanmesh_core::{ClientError, CloseReport, Message};

use crate::files::{FileSent, Progress};
use crate::peer::{Peer as AsyncPeer, PeerBuilder};

/// A peer whose calls block the calling thread. Do not use it inside an async runtime.
#[derive(Debug)]
pub struct Peer {
    inner: AsyncPeer,
    rt: tokio::runtime::Runtime,
}

impl Peer {
    /// Connects `name` to the router at `router` with default settings.
    pub fn connect(name: &str, router: &str) -> Result<Self, ClientError> {
        Self::connect_with(AsyncPeer::builder(name).router(router))
    }

    /// Connects with a configured builder.
    pub fn connect_with(builder: PeerBuilder) -> Result<Self, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Connect {
                addr: String::new(),
                detail: format!("cannot start a runtime: {e}"),
            })?;
        let inner = rt.block_on(builder.connect())?;
        Ok(Self { inner, rt })
    }

    /// See [`AsyncPeer::send`].
    pub fn send(&self, to: &str, data: impl Into<Bytes>) -> Result<u64, ClientError> {
        self.rt.block_on(self.inner.send(to, data))
    }

    /// See [`AsyncPeer::send_text`].
    pub fn send_text(&self, to: &str, text: &str) -> Result<u64, ClientError> {
        self.rt.block_on(self.inner.send_text(to, text))
    }

    /// See [`AsyncPeer::send_acked`].
    pub fn send_acked(&self, to: &str, data: impl Into<Bytes>) -> Result<u64, ClientError> {
        self.rt.block_on(self.inner.send_acked(to, data))
    }

    /// See [`AsyncPeer::broadcast`].
    pub fn broadcast(&self, data: impl Into<Bytes>) -> Result<u64, ClientError> {
        self.rt.block_on(self.inner.broadcast(data))
    }

    /// See [`AsyncPeer::request`].
    pub fn request(
        &self,
        to: &str,
        data: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Message, ClientError> {
        self.rt.block_on(self.inner.request(to, data, timeout))
    }

    /// See [`AsyncPeer::respond`].
    pub fn respond(
        &self,
        handler: impl Fn(&Message) -> Bytes + Send + Sync + 'static,
    ) -> Result<(), ClientError> {
        self.rt.block_on(self.inner.respond(handler))
    }

    /// See [`AsyncPeer::send_file`].
    pub fn send_file(&self, to: &str, path: impl AsRef<Path>) -> Result<FileSent, ClientError> {
        self.rt.block_on(self.inner.send_file(to, path))
    }

    /// See [`AsyncPeer::send_file_with_progress`].
    pub fn send_file_with_progress(
        &self,
        to: &str,
        path: impl AsRef<Path>,
        progress: impl FnMut(Progress) + Send,
    ) -> Result<FileSent, ClientError> {
        self.rt
            .block_on(self.inner.send_file_with_progress(to, path, progress))
    }

    /// See [`AsyncPeer::recv`].
    pub fn recv(&self) -> Result<Message, ClientError> {
        self.rt.block_on(self.inner.recv())
    }

    /// See [`AsyncPeer::recv_timeout`] (serpy's `getData(timeout)`).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Message>, ClientError> {
        self.rt.block_on(self.inner.recv_timeout(timeout))
    }

    /// See [`AsyncPeer::get`].
    pub fn get(&self, n: usize) -> Vec<Message> {
        self.inner.get(n)
    }

    /// See [`AsyncPeer::get_all`].
    pub fn get_all(&self) -> Vec<Message> {
        self.inner.get_all()
    }

    /// See [`AsyncPeer::run`]: drives `hooks` on this thread until the connection closes.
    pub fn run<H: crate::Hooks>(&self, hooks: H) -> H {
        self.rt.block_on(self.inner.run(hooks))
    }

    /// See [`AsyncPeer::terminate`].
    pub fn terminate(&self) {
        self.inner.terminate();
    }

    /// See [`AsyncPeer::peers`].
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.inner.peers()
    }

    /// See [`AsyncPeer::pause`].
    pub fn pause(&self) {
        self.inner.pause();
    }

    /// See [`AsyncPeer::resume`].
    pub fn resume(&self) {
        self.inner.resume();
    }

    /// See [`AsyncPeer::close`].
    pub fn close(self) -> CloseReport {
        self.rt.block_on(self.inner.close())
    }

    /// The async handle, for mixing styles.
    pub fn as_async(&self) -> &AsyncPeer {
        &self.inner
    }
}
