//! The response body the router sends: either bytes it made itself, or the upstream body
//! relayed frame by frame as it arrives (never buffered), with an idle timeout between frames.
//! Both carry the request's `Completion`, so the request is recorded when the body ends or the
//! client goes away. Dropping an unfinished upstream body closes the upstream connection,
//! which is how a client disconnect cancels the request in vLLM.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::errors::{ErrorKind, RouterError};
use crate::observe::usage::UsageScan;
use crate::observe::{Completion, Outcome};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub enum RouterBody {
    Full { data: Option<Bytes>, completion: Option<Box<Completion>> },
    Upstream(Box<UpstreamBody>),
}

impl RouterBody {
    pub fn full(data: impl Into<Bytes>) -> Self {
        RouterBody::Full { data: Some(data.into()), completion: None }
    }

    pub fn empty() -> Self {
        RouterBody::Full { data: None, completion: None }
    }

    pub fn with_completion(self, c: Completion) -> Self {
        match self {
            RouterBody::Full { data, .. } => RouterBody::Full { data, completion: Some(Box::new(c)) },
            RouterBody::Upstream(mut u) => {
                u.completion = Some(c);
                RouterBody::Upstream(u)
            }
        }
    }
}

pub struct UpstreamBody {
    inner: Incoming,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    /// Server-sent events: a failure after the stream started is reported as a final
    /// `data: {"error": ...}` event, since the status line has already gone out.
    sse: bool,
    state: StreamState,
    completion: Option<Completion>,
    /// Reads the token usage as the body passes, when a quota or an experiment needs it.
    usage: Option<UsageScan>,
    /// Fires when the router's drain time has run out (SSE only: the stream then ends with
    /// its final error event rather than being cut).
    ending: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

#[derive(PartialEq, Eq)]
enum StreamState {
    Streaming,
    Failed,
    Done,
}

impl UpstreamBody {
    pub fn new(inner: Incoming, idle: Duration, sse: bool) -> Self {
        UpstreamBody {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            sse,
            state: StreamState::Streaming,
            completion: None,
            usage: None,
            ending: None,
        }
    }

    /// Ends an event stream cleanly when `ending` fires.
    pub fn ending_with(mut self, ending: &CancellationToken) -> Self {
        if self.sse {
            self.ending = Some(Box::pin(ending.clone().cancelled_owned()));
        }
        self
    }

    pub fn reading_usage(mut self) -> Self {
        self.usage = Some(UsageScan::default());
        self
    }

    fn finish(&mut self, outcome: Outcome) {
        if let Some(c) = self.completion.as_mut() {
            c.outcome = outcome;
            c.record.usage = self.usage.as_ref().and_then(UsageScan::result);
        }
    }

    fn fail(&mut self, err: RouterError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.finish(Outcome::UpstreamError(err.message.clone()));
        if self.sse {
            self.state = StreamState::Failed;
            let mut event = b"data: ".to_vec();
            event.extend_from_slice(&err.body());
            event.extend_from_slice(b"\n\ndata: [DONE]\n\n");
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
        } else {
            self.state = StreamState::Done;
            Poll::Ready(Some(Err(Box::new(err))))
        }
    }
}

impl Body for RouterBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RouterBody::Full { data, completion } => match data.take() {
                Some(d) => Poll::Ready(Some(Ok(Frame::data(d)))),
                None => {
                    if let Some(c) = completion.as_mut() {
                        c.outcome = Outcome::Completed;
                    }
                    // Record now rather than when hyper drops the body.
                    completion.take();
                    Poll::Ready(None)
                }
            },
            RouterBody::Upstream(u) => u.poll_upstream(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RouterBody::Full { data, .. } => data.is_none(),
            RouterBody::Upstream(u) => {
                u.state == StreamState::Done || (u.state == StreamState::Streaming && u.inner.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RouterBody::Full { data: Some(d), .. } => SizeHint::with_exact(d.len() as u64),
            RouterBody::Full { data: None, .. } => SizeHint::with_exact(0),
            RouterBody::Upstream(u) => u.inner.size_hint(),
        }
    }
}

impl UpstreamBody {
    fn poll_upstream(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.state {
            StreamState::Done => return Poll::Ready(None),
            StreamState::Failed => {
                self.state = StreamState::Done;
                self.completion.take();
                return Poll::Ready(None);
            }
            StreamState::Streaming => {}
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(scan), Some(data)) = (self.usage.as_mut(), frame.data_ref()) {
                    scan.feed(data);
                }
                if self.inner.is_end_stream() {
                    // With a content-length, hyper stops polling once it has every byte, so the
                    // end is seen here rather than as a final `None`.
                    self.finish(Outcome::Completed);
                } else {
                    let deadline = Instant::now() + self.idle;
                    self.timer.as_mut().reset(deadline.into());
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => self.fail(RouterError::new(
                ErrorKind::UpstreamUnreachable,
                format!("The upstream connection failed mid-response: {e}"),
            )),
            Poll::Ready(None) => {
                self.state = StreamState::Done;
                self.finish(Outcome::Completed);
                self.completion.take();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if self.timer.as_mut().poll(cx).is_ready() {
                    let secs = self.idle.as_secs_f64();
                    return self.fail(RouterError::new(
                        ErrorKind::UpstreamTimeout,
                        format!("The upstream sent nothing for {secs:.1} s."),
                    ));
                }
                if self.ending.as_mut().is_some_and(|e| e.as_mut().poll(cx).is_ready()) {
                    return self.fail(RouterError::new(
                        ErrorKind::ShuttingDown,
                        "The router is shutting down and its drain time ran out before this stream ended.",
                    ));
                }
                Poll::Pending
            }
        }
    }
}

impl From<UpstreamBody> for RouterBody {
    fn from(u: UpstreamBody) -> Self {
        RouterBody::Upstream(Box::new(u))
    }
}
