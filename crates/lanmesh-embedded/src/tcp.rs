//! A smoltcp TCP socket as an `embedded-io` byte stream, for [`crate::Client::poll`].
//!
//! smoltcp is poll-driven: the board's loop calls `Interface::poll` to move packets, then
//! borrows the socket from its `SocketSet` and hands it to the client wrapped in
//! [`TcpStream`]. Reads and writes only touch the socket's buffers, so they never block;
//! readiness is what the buffers hold. A socket the router closed reads as end of stream.

use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write, WriteReady};
use smoltcp::socket::tcp;

/// A borrowed smoltcp TCP socket.
#[derive(Debug)]
pub struct TcpStream<'a, 'b>(pub &'a mut tcp::Socket<'b>);

/// A smoltcp socket error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpError {
    /// Writing to a socket that cannot send (not connected, or closed for sending).
    Send(tcp::SendError),
    /// Reading from a socket that cannot receive.
    Recv(tcp::RecvError),
}

impl embedded_io::Error for TcpError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Send(_) => ErrorKind::NotConnected,
            Self::Recv(tcp::RecvError::Finished) => ErrorKind::BrokenPipe,
            Self::Recv(_) => ErrorKind::NotConnected,
        }
    }
}

impl ErrorType for TcpStream<'_, '_> {
    type Error = TcpError;
}

impl ReadReady for TcpStream<'_, '_> {
    /// Bytes are waiting, or the connection can no longer receive: the router closed its
    /// side or reset it (the next read says which). Not while it is still being opened:
    /// a socket in `SynSent` cannot receive yet, and that is no error.
    fn read_ready(&mut self) -> Result<bool, TcpError> {
        let opening = matches!(
            self.0.state(),
            tcp::State::Listen | tcp::State::SynSent | tcp::State::SynReceived
        );
        Ok(self.0.can_recv() || (!opening && !self.0.may_recv()))
    }
}

impl Read for TcpStream<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, TcpError> {
        match self.0.recv_slice(buf) {
            Ok(n) => Ok(n),
            // The router's FIN after everything it sent: end of stream.
            Err(tcp::RecvError::Finished) => Ok(0),
            Err(e) => Err(TcpError::Recv(e)),
        }
    }
}

impl WriteReady for TcpStream<'_, '_> {
    fn write_ready(&mut self) -> Result<bool, TcpError> {
        Ok(self.0.can_send())
    }
}

impl Write for TcpStream<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, TcpError> {
        self.0.send_slice(buf).map_err(TcpError::Send)
    }

    /// smoltcp sends from its buffer on the next `Interface::poll`; nothing to flush here.
    fn flush(&mut self) -> Result<(), TcpError> {
        Ok(())
    }
}
