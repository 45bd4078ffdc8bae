//! Where a link gets its byte stream from, again after every unplug.

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream a link can run on: a serial port, a USB bulk pair, a pseudo-terminal
/// or an in-memory pipe.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed [`Io`].
pub type BoxIo = Box<dyn Io>;

/// Opens the link's byte stream.
pub trait Connector: Send + 'static {
    /// Opens the stream, waiting as long as it takes (for a device to be plugged in);
    /// `None` means there will never be one again and the link stops.
    fn connect(&mut self) -> Pin<Box<dyn Future<Output = Option<BoxIo>> + Send + '_>>;
}

/// A connector for one stream that is never reopened (tests, pipes).
pub struct OneShot(Option<BoxIo>);

impl OneShot {
    /// Wraps the stream.
    pub fn new(io: impl Io) -> OneShot {
        OneShot(Some(Box::new(io)))
    }
}

impl Connector for OneShot {
    fn connect(&mut self) -> Pin<Box<dyn Future<Output = Option<BoxIo>> + Send + '_>> {
        let io = self.0.take();
        Box::pin(async move { io })
    }
}
