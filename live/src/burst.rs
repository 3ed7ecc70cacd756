//! Requests of one instant, made to arrive together: last-byte
//! synchronisation, as Burp's single-packet attack does it over HTTP/1.1
//! (Kettle, 2023). The proxy sends each request of a burst to its instance
//! but for the last byte of its body, holds that byte until every request
//! of the burst has got that far, then lets all of them go at once. A
//! server reads none of them until its body is complete, so they reach its
//! handlers within microseconds of each other, not the milliseconds that
//! separate the browsers' sends.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::watch;

/// How long a request of a burst waits for the others: one that never
/// comes (a browser that could not send it) must not hold the rest.
const HOLD: Duration = Duration::from_secs(1);

/// The requests of one instant.
#[derive(Debug)]
pub struct Burst {
    size: usize,
    arrived: Mutex<usize>,
    go: watch::Sender<bool>,
    released: Mutex<Vec<Instant>>,
}

impl Burst {
    /// A burst of `size` requests.
    pub fn new(size: usize) -> Arc<Burst> {
        Arc::new(Burst {
            size,
            arrived: Mutex::new(0),
            go: watch::Sender::new(false),
            released: Mutex::new(Vec::new()),
        })
    }

    /// Resolves once every request of the burst has come this far (or
    /// after [`HOLD`]).
    pub async fn gate(self: Arc<Self>) {
        let mut go = self.go.subscribe();
        {
            let mut arrived = self.arrived.lock().unwrap_or_else(|p| p.into_inner());
            *arrived += 1;
            if *arrived >= self.size {
                self.go.send_replace(true);
            }
        }
        let _ = tokio::time::timeout(HOLD, go.wait_for(|go| *go)).await;
        self.released
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Instant::now());
    }

    /// How far apart the burst's last bytes went: the arrival spread the
    /// server saw, as the proxy sees it (`None` before two went).
    pub fn spread(&self) -> Option<Duration> {
        let released = self.released.lock().unwrap_or_else(|p| p.into_inner());
        let (first, last) = (released.iter().min()?, released.iter().max()?);
        (released.len() > 1).then(|| last.duration_since(*first))
    }
}

/// A request body the proxy sends: whole, or all but its last byte until
/// its burst's gate opens.
pub struct Gated {
    head: Option<Bytes>,
    tail: Option<Bytes>,
    gate: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Gated {
    /// `body`, sent at once.
    pub fn whole(body: Bytes) -> Gated {
        Gated {
            head: (!body.is_empty()).then_some(body),
            tail: None,
            gate: None,
        }
    }

    /// `body`, its last byte held until `gate` resolves.
    pub fn held(body: Bytes, gate: impl Future<Output = ()> + Send + 'static) -> Gated {
        if body.is_empty() {
            return Gated::whole(body);
        }
        let split = body.len() - 1;
        Gated {
            head: (split > 0).then(|| body.slice(..split)),
            tail: Some(body.slice(split..)),
            gate: Some(Box::pin(gate)),
        }
    }
}

impl Body for Gated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if let Some(gate) = self.gate.as_mut() {
            if gate.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.gate = None;
        }
        Poll::Ready(self.tail.take().map(|tail| Ok(Frame::data(tail))))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
        SizeHint::with_exact(len(&self.head) + len(&self.tail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_held_body_gives_all_but_its_last_byte_until_the_burst_is_whole() {
        let burst = Burst::new(2);
        let mut first = Gated::held(Bytes::from_static(b"email=a"), Arc::clone(&burst).gate());
        assert_eq!(first.size_hint().exact(), Some(7));
        let head = first.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&head[..], b"email=");
        // The last byte waits for the other request of the instant.
        let waiting = tokio::time::timeout(Duration::from_millis(50), first.frame()).await;
        assert!(waiting.is_err(), "released before the burst was whole");
        let second = Gated::held(Bytes::from_static(b"x"), Arc::clone(&burst).gate());
        let (a, b) = tokio::join!(first.collect(), second.collect());
        assert_eq!(&a.unwrap().to_bytes()[..], b"a");
        assert_eq!(&b.unwrap().to_bytes()[..], b"x");
        assert!(burst.spread().is_some());
    }

    #[tokio::test]
    async fn a_request_that_never_comes_holds_the_others_only_so_long() {
        let burst = Burst::new(3);
        let lone = Gated::held(Bytes::from_static(b"ab"), Arc::clone(&burst).gate());
        assert_eq!(&lone.collect().await.unwrap().to_bytes()[..], b"ab");
        assert_eq!(burst.spread(), None, "one request is no spread");
    }
}
