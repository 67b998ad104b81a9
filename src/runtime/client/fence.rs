//! The last fence of a leader that lost its Lease: the connection itself refuses to write.
//!
//! The leader gate ([`super::leader_gate`]) is asked as a request leaves the client stack; over
//! HTTP/2 the request's frames are written later, by the connection's own task. A leader paused
//! between the two (SIGSTOP, a frozen VM) would send them on resume, after another replica took
//! the Lease. [`Fenced`] wraps the TCP stream under TLS and fails every write once the gate says
//! the Lease was lost ([`LeaderGate::lost`]): the connection breaks, and nothing more leaves.
//! A standby, which never led, reads as before.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};

use crate::runtime::leader::LeaderGate;

/// A stream whose writes fail once `gate` says the Lease was lost.
pub struct Fenced<T> {
    inner: T,
    gate: LeaderGate,
}

impl<T> Fenced<T> {
    /// `inner`, fenced by `gate`.
    pub fn new(inner: T, gate: LeaderGate) -> Self {
        Self { inner, gate }
    }

    fn refused(&self) -> Option<io::Error> {
        self.gate.lost().then(|| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the leader election Lease was lost: this replica sends nothing more",
            )
        })
    }
}

impl<T: Read + Unpin> Read for Fenced<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Fenced<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(err) = self.refused() {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(err) = self.refused() {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for Fenced<T> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}
