//! A deadline on every socket write.
//!
//! A client that stops reading (a zero TCP window) makes every write pend
//! forever, and with it the task that owns the connection and its slot.
//! [`WriteDeadline`] wraps the accepted `TcpStream` before hyper sees it, so
//! HTTP responses and, after an upgrade, WebSocket frames are covered alike:
//! a write (or flush, or shutdown) that makes no progress for the timeout
//! fails with [`io::ErrorKind::TimedOut`] carrying [`WriteStalled`]. The
//! timer measures a stall, not a response: a large file read steadily, however
//! slowly, is not cut here (the HTTP connection's total deadline does that).

use std::error::Error;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The error inside the `io::Error` of a stalled write.
#[derive(Debug, thiserror::Error)]
#[error("write made no progress within the write timeout")]
pub(crate) struct WriteStalled;

/// Whether `error` (or anything in its source chain) is a stalled write.
pub(crate) fn is_stall(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<WriteStalled>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io.get_ref().is_some_and(|inner| inner.is::<WriteStalled>())
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// An I/O stream whose writes fail after `timeout` without progress.
pub(crate) struct WriteDeadline<T> {
    inner: T,
    timeout: Duration,
    /// Armed at the first pending write, disarmed by any progress; allocated
    /// on the first stall and reused after.
    stall: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<T> WriteDeadline<T> {
    pub(crate) fn new(inner: T, timeout: Duration) -> Self {
        WriteDeadline {
            inner,
            timeout,
            stall: None,
            armed: false,
        }
    }

    /// Passes progress through; turns a pending write into an error once it
    /// has pended for the timeout.
    fn watch<R>(
        &mut self,
        polled: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.armed = false;
            return polled;
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            stall.as_mut().reset(deadline);
            self.armed = true;
        }
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.armed = false;
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, WriteStalled)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(polled, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(polled, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(polled, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_stalled_write_fails_and_progress_rearms() {
        let timeout = Duration::from_millis(300);
        // A 1 KiB pipe nobody reads: the second write stalls.
        let (client, mut server) = tokio::io::duplex(1024);
        let mut io = WriteDeadline::new(client, timeout);
        io.write_all(&[0; 1024]).await.unwrap();
        let started = std::time::Instant::now();
        let error = io.write_all(&[0; 10]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(is_stall(&error));
        let waited = started.elapsed();
        assert!(waited >= timeout && waited < timeout * 3, "{waited:?}");
        // A reader that keeps up, however late, resets the clock each time:
        // eight writes over more than twice the timeout all pass.
        let reader = tokio::spawn(async move {
            let mut buf = vec![0; 1024];
            for _ in 0..8 {
                tokio::time::sleep(timeout / 3).await;
                server.read_exact(&mut buf).await.unwrap();
            }
        });
        let started = std::time::Instant::now();
        for _ in 0..7 {
            io.write_all(&[0; 1024]).await.unwrap();
        }
        assert!(started.elapsed() > timeout * 2);
        reader.await.unwrap();
        assert!(!is_stall(&io::Error::other("other")));
    }
}
