//! One client of a system under test, behind the same small interface for every system,
//! so each scenario is written once.
//!
//! Names map onto each system's addressing: a lanmesh peer name, a NATS subject, and
//! nothing for the relay (which forwards everything to every other client).

use std::net::SocketAddr;

use bytes::Bytes;

use crate::error::BenchError;
use crate::row::System;

pub(crate) mod lanmesh;
#[cfg(feature = "nats")]
pub(crate) mod nats;
pub(crate) mod relay;

/// Where the system under test listens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub(crate) system: System,
    /// Where the sending side of a test (sender, requester, everyone else) connects.
    pub(crate) addr: SocketAddr,
    /// Where the receiving side of a throughput or round-trip test (receiver, echo)
    /// connects: `addr` but for the federated pair, whose second router this is.
    pub(crate) far: SocketAddr,
}

impl Target {
    /// The target the receiving side connects to.
    pub(crate) fn far_side(self) -> Self {
        Self {
            addr: self.far,
            ..self
        }
    }
}

/// A connected client.
pub(crate) trait Endpoint: Sized + 'static {
    /// Connects and joins under `name`; returns once the server will deliver to it.
    async fn connect(target: Target, name: &str) -> Result<Self, BenchError>;
    /// Sends one message to `to` (it may wait in a client-side buffer until `flush`).
    async fn send(&mut self, to: &str, data: &Bytes) -> Result<(), BenchError>;
    /// Sends one message to every other client.
    async fn broadcast(&mut self, data: &Bytes) -> Result<(), BenchError>;
    /// Pushes out whatever the client buffers.
    async fn flush(&mut self) -> Result<(), BenchError>;
    /// The next message delivered to this client.
    async fn recv(&mut self) -> Result<Bytes, BenchError>;
    /// Sends a request to `to` and waits for its reply.
    async fn request(&mut self, to: &str, data: &Bytes) -> Result<Bytes, BenchError>;
    /// Answers every request with its own payload, until dropped.
    async fn serve_echo(self) -> Result<(), BenchError>;
    /// Sends every message it receives back to `to` with a plain send, until dropped.
    async fn echo_messages(mut self, to: &str) -> Result<(), BenchError> {
        loop {
            let data = self.recv().await?;
            self.send(to, &data).await?;
            self.flush().await?;
        }
    }
    /// Leaves, dropping the connection.
    async fn close(self);
    /// Waits until messages for `name` reach it: at once on one server; across
    /// federated routers, until `name`'s presence crossed to this one.
    async fn wait_for(&mut self, name: &str) -> Result<(), BenchError> {
        let _ = name;
        Ok(())
    }
}
