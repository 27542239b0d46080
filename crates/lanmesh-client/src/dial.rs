//! Reaching a router: a TCP connection to the configured address, within the deadline.

use tokio::net::TcpStream;

use crate::config::PeerConfig;
use crate::error::ClientError;

/// A connected stream and the address it reached.
pub(crate) struct Dialed {
    pub(crate) stream: TcpStream,
    pub(crate) addr: String,
}

pub(crate) async fn dial(config: &PeerConfig) -> Result<Dialed, ClientError> {
    let addr = config.router.clone();
    let deadline = config.connect_timeout;
    match tokio::time::timeout(deadline, TcpStream::connect(addr.as_str())).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(Dialed { stream, addr })
        }
        Ok(Err(source)) => Err(ClientError::Connect { addr, source }),
        Err(_) => Err(ClientError::HandshakeTimeout {
            addr,
            after: deadline,
        }),
    }
}
