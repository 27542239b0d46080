//! nats-server clients (async-nats). Each client subscribes to its own name and to
//! `everyone` (for broadcasts), and does not get its own messages back (`no_echo`), as a
//! lanmesh broadcast reaches every *other* peer. Requests are NATS request/reply.

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt as _};

use super::{Endpoint, Target};
use crate::error::BenchError;

/// The subject every client hears broadcasts on.
const EVERYONE: &str = "everyone";

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::client("nats", e)
}

/// A NATS client and its subscriptions.
pub(crate) struct NatsEndpoint {
    client: async_nats::Client,
    inbox: BoxStream<'static, async_nats::Message>,
    name: String,
}

impl Endpoint for NatsEndpoint {
    async fn connect(target: Target, name: &str) -> Result<Self, BenchError> {
        let client = async_nats::ConnectOptions::new()
            .no_echo()
            .connect(target.addr.to_string())
            .await
            .map_err(err)?;
        let mine = client.subscribe(name.to_owned()).await.map_err(err)?;
        let all = client.subscribe(EVERYONE).await.map_err(err)?;
        // The server has the subscriptions once it answered the flush's PING.
        client.flush().await.map_err(err)?;
        Ok(Self {
            client,
            inbox: stream::select(mine, all).boxed(),
            name: name.to_owned(),
        })
    }

    async fn send(&mut self, to: &str, data: &Bytes) -> Result<(), BenchError> {
        self.client
            .publish(to.to_owned(), data.clone())
            .await
            .map_err(err)
    }

    async fn broadcast(&mut self, data: &Bytes) -> Result<(), BenchError> {
        self.client
            .publish(EVERYONE, data.clone())
            .await
            .map_err(err)
    }

    async fn flush(&mut self) -> Result<(), BenchError> {
        self.client.flush().await.map_err(err)
    }

    async fn recv(&mut self) -> Result<Bytes, BenchError> {
        match self.inbox.next().await {
            Some(m) => Ok(m.payload),
            None => Err(err(format!("{}: subscription closed", self.name))),
        }
    }

    async fn request(&mut self, to: &str, data: &Bytes) -> Result<Bytes, BenchError> {
        let reply = self
            .client
            .request(to.to_owned(), data.clone())
            .await
            .map_err(err)?;
        Ok(reply.payload)
    }

    async fn serve_echo(mut self) -> Result<(), BenchError> {
        while let Some(msg) = self.inbox.next().await {
            if let Some(reply) = msg.reply {
                self.client.publish(reply, msg.payload).await.map_err(err)?;
            }
        }
        Ok(())
    }

    async fn close(self) {}
}
