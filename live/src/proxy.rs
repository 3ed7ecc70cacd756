//! The gating reverse proxy between the browsers and a target's instances.
//!
//! Each request goes to the instance the scenario routes it to, as soon as
//! it arrives. Each response is held: the proxy hands it to the executor
//! with a release handle and returns it to the browser only when the
//! executor releases it, so the order in which browsers see responses
//! (and so whose Set-Cookie wins) is the schedule's, not the server's.
//!
//! A request names its scenario number in the `x-otpsim-request` header.
//! One without it (a real browser driven by hand or by a test) is numbered
//! here, in arrival order from [`UNLABELLED_FROM`], and goes to instance 0.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, HOST};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::wire::REQUEST_HEADER;

/// The number given to the first request that came without one.
pub const UNLABELLED_FROM: usize = 1_000_001;

/// The largest request body forwarded.
const MAX_FORWARDED_BYTES: usize = 1 << 20;

/// A request as it reached the proxy.
#[derive(Debug, Clone)]
pub struct Forwarded {
    /// Its number.
    pub id: usize,
    /// Method and path.
    pub method: String,
    /// The path.
    pub path: String,
    /// The instance it went to.
    pub instance: usize,
    /// The Cookie header it carried.
    pub cookie: Option<String>,
    /// The body (a form).
    pub body: Bytes,
}

/// A response the proxy holds.
#[derive(Debug)]
pub struct Held {
    /// The request.
    pub request: Forwarded,
    /// The status, or why the instance gave none.
    pub status: Result<u16, String>,
    /// The body as text.
    pub body: String,
    /// The Set-Cookie headers.
    pub set_cookie: Vec<String>,
    /// Lets the response go to the browser.
    pub release: Release,
}

/// The handle that lets a held response go.
#[derive(Debug)]
pub struct Release(oneshot::Sender<oneshot::Sender<bool>>);

impl Release {
    /// Lets the response go; true if it reached the browser's connection,
    /// false if the browser had closed it (it gave up on the request).
    pub async fn deliver(self) -> bool {
        let (ack, acked) = oneshot::channel();
        if self.0.send(ack).is_err() {
            return false;
        }
        acked.await.unwrap_or(false)
    }
}

/// What the proxy reports, in the order it happened.
#[derive(Debug)]
pub enum Report {
    /// A request reached the proxy and went on to its instance.
    Arrived(Forwarded),
    /// Its response is held.
    Answered(Held),
}

/// A running proxy.
pub struct Proxy {
    /// Where browsers connect.
    pub addr: SocketAddr,
    /// Which instance each labelled request goes to (default 0).
    pub routes: Arc<Mutex<BTreeMap<usize, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    instances: Vec<SocketAddr>,
    routes: Arc<Mutex<BTreeMap<usize, usize>>>,
    unlabelled: AtomicUsize,
    client: Client<HttpConnector, Full<Bytes>>,
    out: mpsc::UnboundedSender<Report>,
}

/// Starts a proxy on a free loopback port in front of `instances`.
pub async fn start(instances: Vec<SocketAddr>, out: mpsc::UnboundedSender<Report>) -> std::io::Result<Proxy> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let routes = Arc::new(Mutex::new(BTreeMap::new()));
    let shared = Arc::new(Shared {
        instances,
        routes: Arc::clone(&routes),
        unlabelled: AtomicUsize::new(UNLABELLED_FROM),
        client: Client::builder(TokioExecutor::new()).build_http(),
        out,
    });
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let shared = Arc::clone(&shared);
                    async move { Ok::<_, Infallible>(shared.forward(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Proxy { addr, routes, task })
}

type Reply = hyper::Response<Full<Bytes>>;

fn bad_gateway(why: String) -> Reply {
    let mut reply = hyper::Response::new(Full::new(Bytes::from(why)));
    *reply.status_mut() = hyper::StatusCode::BAD_GATEWAY;
    reply
}

impl Shared {
    async fn forward(&self, req: hyper::Request<Incoming>) -> Reply {
        let labelled = req
            .headers()
            .get(REQUEST_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let id = labelled.unwrap_or_else(|| self.unlabelled.fetch_add(1, Ordering::SeqCst));
        let instance = self
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied()
            .unwrap_or(0)
            .min(self.instances.len().saturating_sub(1));
        let upstream = self.instances[instance];
        let (mut parts, body) = req.into_parts();
        let body = match Limited::new(body, MAX_FORWARDED_BYTES).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return bad_gateway(format!("the request body could not be read: {e}")),
        };
        let path = parts.uri.path_and_query().map_or("/".to_string(), |p| p.to_string());
        let forwarded = Forwarded {
            id,
            method: parts.method.to_string(),
            path: path.clone(),
            instance,
            cookie: parts
                .headers
                .get(hyper::header::COOKIE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: body.clone(),
        };
        let _ = self.out.send(Report::Arrived(forwarded.clone()));
        parts.uri = match format!("http://{upstream}{path}").parse() {
            Ok(uri) => uri,
            Err(e) => return bad_gateway(format!("bad path {path:?}: {e}")),
        };
        if let Ok(host) = HeaderValue::from_str(&upstream.to_string()) {
            parts.headers.insert(HOST, host);
        }
        if labelled.is_none() {
            parts.headers.insert(REQUEST_HEADER, HeaderValue::from(id));
        }
        // The exchange with the instance runs on its own task: a browser
        // that gives up on the request (closes its connection) must not
        // cut the server's work short, and its answer is still reported.
        let (reply_tx, reply_rx) = oneshot::channel();
        let client = self.client.clone();
        let out = self.out.clone();
        tokio::spawn(async move {
            let upstream = hyper::Request::from_parts(parts, Full::new(body));
            let (reply, status, text, set_cookie) = exchange(&client, upstream).await;
            let (release, released) = oneshot::channel::<oneshot::Sender<bool>>();
            let held = Held {
                request: forwarded,
                status,
                body: text,
                set_cookie,
                release: Release(release),
            };
            if out.send(Report::Answered(held)).is_err() {
                // Nobody gates any more (the run is over): let it go.
                let _ = reply_tx.send(reply);
                return;
            }
            if let Ok(ack) = released.await {
                let _ = ack.send(reply_tx.send(reply).is_ok());
            }
        });
        match reply_rx.await {
            Ok(reply) => reply,
            Err(_) => bad_gateway("the run ended before this response was released".to_string()),
        }
    }
}

/// Sends one request to an instance and reads the whole answer: the reply
/// for the browser, the status (or why there is none), the body as text
/// and the Set-Cookie headers.
async fn exchange(
    client: &Client<HttpConnector, Full<Bytes>>,
    request: hyper::Request<Full<Bytes>>,
) -> (Reply, Result<u16, String>, String, Vec<String>) {
    let response = match client.request(request).await {
        Ok(response) => response,
        Err(e) => {
            let why = format!("the instance gave no answer: {e}");
            return (bad_gateway(why.clone()), Err(why), String::new(), Vec::new());
        }
    };
    let (parts, body) = response.into_parts();
    match body.collect().await {
        Ok(body) => {
            let bytes = body.to_bytes();
            let set_cookie = parts
                .headers
                .get_all(hyper::header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let status = parts.status.as_u16();
            (
                hyper::Response::from_parts(parts, Full::new(bytes)),
                Ok(status),
                text,
                set_cookie,
            )
        }
        Err(e) => {
            let why = format!("the instance's answer was cut off: {e}");
            (bad_gateway(why.clone()), Err(why), String::new(), Vec::new())
        }
    }
}
