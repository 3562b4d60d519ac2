//! Deadlines on a console connection's socket: one that has no request in progress is closed
//! after the idle timeout, a request's headers must be complete within the header timeout of
//! their first byte, and a client that stops reading a response is dropped. hyper's own
//! `header_read_timeout` starts when it begins waiting for a request, so it cannot tell an
//! idle keep-alive connection from a half-sent request; this can, because the service tells
//! it when a request starts and when its response is done.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The two timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
}

/// Where a connection is: shared between its socket and the service answering on it.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Requests being answered (more than one only when pipelined).
    in_flight: usize,
    /// When the connection last had nothing in progress.
    idle_since: Instant,
    /// The first byte read since then: a request (or a TLS handshake) has begun.
    started: Option<Instant>,
    /// A read waiting with no deadline while a request was answered: woken when the answer
    /// is done, so that it starts counting the idle timeout.
    reader: Option<Waker>,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        let state = State { in_flight: 0, idle_since: Instant::now(), started: None, reader: None };
        Arc::new(Activity { state: Mutex::new(state) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request's headers have arrived: no read deadline until its response is done.
    pub fn request(self: &Arc<Activity>) -> InFlight {
        self.lock().in_flight += 1;
        InFlight(self.clone())
    }

    /// When reading must have given what is due, if anything is due; with nothing due, the
    /// reader's waker is kept to be woken when something is.
    fn read_deadline(&self, timeouts: Timeouts, cx: &Context<'_>) -> Option<Instant> {
        let mut state = self.lock();
        match (state.in_flight, state.started) {
            (0, None) => Some(state.idle_since + timeouts.idle),
            (0, Some(started)) => Some(started + timeouts.header),
            _ => {
                state.reader = Some(cx.waker().clone());
                None
            }
        }
    }

    /// Since when the connection has waited with no request in progress (for its first byte,
    /// or for the rest of a request's headers); `None` while a request is answered.
    pub fn waiting_since(&self) -> Option<Instant> {
        let state = self.lock();
        (state.in_flight == 0).then(|| state.started.unwrap_or(state.idle_since))
    }

    fn bytes_read(&self) {
        let mut state = self.lock();
        if state.in_flight == 0 && state.started.is_none() {
            state.started = Some(Instant::now());
        }
    }
}

/// A request being answered; dropped with its response body, once that is sent.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
            state.started = None;
            if let Some(reader) = state.reader.take() {
                reader.wake();
            }
        }
    }
}

/// A socket with the deadlines above; a missed one fails the read or write with `TimedOut`,
/// and hyper closes the connection.
pub struct Watched<I> {
    /// The connection's place under the cap. Declared before the socket so that it is given
    /// back before the socket closes: a client that sees the close and connects again finds
    /// the place free.
    _place: super::cap::Admitted,
    inner: I,
    activity: Arc<Activity>,
    timeouts: Timeouts,
    read_timer: Pin<Box<Sleep>>,
    /// Since when a write has been waiting for the client to read.
    write_stalled: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
}

impl<I> Watched<I> {
    pub fn new(
        inner: I,
        place: super::cap::Admitted,
        activity: Arc<Activity>,
        timeouts: Timeouts,
    ) -> Watched<I> {
        let far = Instant::now() + Duration::from_secs(86_400);
        Watched {
            _place: place,
            inner,
            activity,
            timeouts,
            read_timer: Box::pin(tokio::time::sleep_until(far)),
            write_stalled: None,
            write_timer: Box::pin(tokio::time::sleep_until(far)),
        }
    }
}

fn timed_out(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

/// Arms `timer` for `deadline`; true if it has passed.
fn expired(timer: &mut Pin<Box<Sleep>>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    if timer.deadline() != deadline {
        timer.as_mut().reset(deadline);
    }
    timer.as_mut().poll(cx).is_ready()
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let deadline = this.activity.read_deadline(this.timeouts, cx);
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match deadline {
                Some(deadline) if expired(&mut this.read_timer, deadline, cx) => {
                    Poll::Ready(Err(timed_out("console connection idle or request too slow")))
                }
                _ => Poll::Pending,
            },
        }
    }
}

impl<I: AsyncWrite + Unpin> Watched<I> {
    /// Judges a write-side poll: progress clears the stall; waiting too long fails it.
    fn stall<T>(
        &mut self,
        polled: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.write_stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let since = *self.write_stalled.get_or_insert_with(Instant::now);
                if expired(&mut self.write_timer, since + self.timeouts.idle, cx) {
                    Poll::Ready(Err(timed_out("console client stopped reading")))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.stall(polled, cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.stall(polled, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.stall(polled, cx)
    }
}
