//! Clients of the raw relay. A request is a message out and the next message back (the
//! other client echoes it): a ping-pong over two hops, like the others' request/reply.

use bytes::Bytes;

use super::{Endpoint, Target};
use crate::error::BenchError;
use crate::relay::RelayClient;

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::client("relay", e)
}

/// A relay client.
pub(crate) struct RelayEndpoint {
    client: RelayClient,
}

impl Endpoint for RelayEndpoint {
    async fn connect(target: Target, _name: &str) -> Result<Self, BenchError> {
        let client = RelayClient::connect(target.addr).await.map_err(err)?;
        Ok(Self { client })
    }

    async fn send(&mut self, _to: &str, data: &Bytes) -> Result<(), BenchError> {
        self.client.send(data).await.map_err(err)
    }

    async fn broadcast(&mut self, data: &Bytes) -> Result<(), BenchError> {
        self.client.send(data).await.map_err(err)
    }

    async fn flush(&mut self) -> Result<(), BenchError> {
        self.client.flush().await.map_err(err)
    }

    async fn recv(&mut self) -> Result<Bytes, BenchError> {
        self.client.recv().await.map_err(err)
    }

    async fn request(&mut self, _to: &str, data: &Bytes) -> Result<Bytes, BenchError> {
        self.client.send(data).await.map_err(err)?;
        self.client.flush().await.map_err(err)?;
        self.client.recv().await.map_err(err)
    }

    async fn serve_echo(mut self) -> Result<(), BenchError> {
        loop {
            let msg = self.client.recv().await.map_err(err)?;
            self.client.send(&msg).await.map_err(err)?;
            self.client.flush().await.map_err(err)?;
        }
    }

    async fn close(self) {}
}
