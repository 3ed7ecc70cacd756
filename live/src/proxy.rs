//! The gating reverse proxy between the browsers and a target's instances.
//!
//! Each request goes to the instance the scenario routes it to, as soon as
//! it arrives. Each response is held: the proxy hands it to the executor
//! with a release handle and returns it to the browser only when the
//! executor releases it, so the order in which browsers see responses
//! (and so whose Set-Cookie wins) is the schedule's, not the server's.
//!
//! A browser follows a redirect: for a scenario's request (one that came
//! labelled) the proxy follows it for the browser, a GET to the same
//! instance with the cookies the request carried and the chain set, up to
//! the target's number of hops, and holds the whole chain as one answer:
//! the browser gets the final page with every Set-Cookie of the chain, in
//! order, so its jar ends as a browser's would. A real browser follows when
//! the redirect reaches it; here the chain runs when the server answers, so
//! that it belongs to the answer whose delivery the schedule orders. What
//! differs is only when a followed GET's own effects reach the server.
//!
//! Requests of one instant arrive together: each is sent but for its last
//! byte, which goes when all of them have got that far
//! ([`crate::burst`]).
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

use crate::burst::{Burst, Gated};
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
    /// The Set-Cookie headers of the whole chain, in order.
    pub set_cookie: Vec<String>,
    /// The redirects followed to the final page: each one's status and
    /// location.
    pub redirects: Vec<(u16, String)>,
    /// The final answer's other headers, `name: value`.
    pub headers: Vec<String>,
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
    /// The burst each labelled request of a shared instant belongs to.
    pub bursts: Arc<Mutex<BTreeMap<usize, Arc<Burst>>>>,
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
    bursts: Arc<Mutex<BTreeMap<usize, Arc<Burst>>>>,
    unlabelled: AtomicUsize,
    client: Client<HttpConnector, Gated>,
    out: mpsc::UnboundedSender<Report>,
    redirects: usize,
}

/// Starts a proxy on a free loopback port in front of `instances`,
/// following at most `redirects` redirects for a scenario's request.
pub async fn start(
    instances: Vec<SocketAddr>,
    out: mpsc::UnboundedSender<Report>,
    redirects: usize,
) -> std::io::Result<Proxy> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let routes = Arc::new(Mutex::new(BTreeMap::new()));
    let bursts = Arc::new(Mutex::new(BTreeMap::new()));
    let shared = Arc::new(Shared {
        instances,
        routes: Arc::clone(&routes),
        bursts: Arc::clone(&bursts),
        unlabelled: AtomicUsize::new(UNLABELLED_FROM),
        client: Client::builder(TokioExecutor::new()).build_http(),
        out,
        redirects,
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
    Ok(Proxy {
        addr,
        routes,
        bursts,
        task,
    })
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
        // A real browser follows its own redirects.
        let hops = if labelled.is_some() { self.redirects } else { 0 };
        // A request of a burst goes all but its last byte, which waits for
        // the burst's other requests (`crate::burst`).
        let burst = labelled.and_then(|id| self.bursts.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned());
        let body = match burst {
            Some(burst) => Gated::held(body, burst.gate()),
            None => Gated::whole(body),
        };
        tokio::spawn(async move {
            let cookie = forwarded.cookie.clone();
            let upstream_request = hyper::Request::from_parts(parts, body);
            let (answer, redirects, set_cookie) = follow(&client, upstream, upstream_request, cookie, id, hops).await;
            let (release, released) = oneshot::channel::<oneshot::Sender<bool>>();
            let held = Held {
                request: forwarded,
                status: answer.status,
                body: answer.body,
                set_cookie,
                redirects,
                headers: answer.headers,
                release: Release(release),
            };
            let reply = answer.reply;
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

/// An instance's answer to one request.
struct Answer {
    /// The reply for the browser.
    reply: Reply,
    /// The status, or why there is none.
    status: Result<u16, String>,
    /// The body as text.
    body: String,
    /// Its Set-Cookie headers.
    set_cookie: Vec<String>,
    /// Where it redirects, if it does.
    location: Option<String>,
    /// Its other headers, `name: value`.
    headers: Vec<String>,
}

/// Sends `request` to the instance at `upstream` and follows up to `hops`
/// redirects from it: the final answer (its reply carrying every
/// Set-Cookie of the chain), the redirects followed, and the chain's
/// Set-Cookie headers in order.
async fn follow(
    client: &Client<HttpConnector, Gated>,
    upstream: SocketAddr,
    request: hyper::Request<Gated>,
    cookie: Option<String>,
    id: usize,
    hops: usize,
) -> (Answer, Vec<(u16, String)>, Vec<String>) {
    let mut path = request
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    let mut jar = Jar::from_header(cookie.as_deref());
    let mut answer = exchange(client, request).await;
    let mut redirects = Vec::new();
    let mut set_cookie = answer.set_cookie.clone();
    jar.set(&answer.set_cookie);
    while redirects.len() < hops {
        let (Ok(status), Some(location)) = (&answer.status, &answer.location) else {
            break;
        };
        if !(300..400).contains(status) {
            break;
        }
        // A location resolves against the page it came from, and goes to
        // the same instance whatever host it names.
        let Some(next) = reqwest::Url::parse(&format!("http://{upstream}{path}"))
            .and_then(|base| base.join(location))
            .ok()
            .map(|u| match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_string(),
            })
        else {
            break;
        };
        let mut get = hyper::Request::get(format!("http://{upstream}{next}"));
        if let Some(headers) = get.headers_mut() {
            if let Ok(host) = HeaderValue::from_str(&upstream.to_string()) {
                headers.insert(HOST, host);
            }
            headers.insert(REQUEST_HEADER, HeaderValue::from(id));
            if let Some(Ok(c)) = jar.header().map(|c| HeaderValue::from_str(&c)) {
                headers.insert(hyper::header::COOKIE, c);
            }
        }
        let Ok(get) = get.body(Gated::whole(Bytes::new())) else {
            break;
        };
        redirects.push((*status, location.clone()));
        answer = exchange(client, get).await;
        jar.set(&answer.set_cookie);
        set_cookie.extend(answer.set_cookie.iter().cloned());
        path = next;
    }
    if !redirects.is_empty() {
        let headers = answer.reply.headers_mut();
        headers.remove(hyper::header::SET_COOKIE);
        for c in &set_cookie {
            if let Ok(v) = HeaderValue::from_str(c) {
                headers.append(hyper::header::SET_COOKIE, v);
            }
        }
    }
    (answer, redirects, set_cookie)
}

/// The cookies a followed redirect carries: the request's own, as each
/// Set-Cookie of the chain changes them.
struct Jar(Vec<(String, String)>);

impl Jar {
    fn from_header(header: Option<&str>) -> Jar {
        let pairs = header
            .unwrap_or_default()
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        Jar(pairs)
    }

    fn set(&mut self, set_cookie: &[String]) {
        for line in set_cookie {
            let mut parts = line.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
                continue;
            };
            // A cookie set to expire is deleted.
            let expired = parts.any(|a| {
                let a = a.trim().to_ascii_lowercase();
                a == "max-age=0" || a.starts_with("max-age=-") || (a.starts_with("expires=") && a.contains("1970"))
            });
            self.0.retain(|(n, _)| n != name);
            if !expired {
                self.0.push((name.to_string(), value.to_string()));
            }
        }
    }

    fn header(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// Sends one request to an instance and reads the whole answer.
async fn exchange(client: &Client<HttpConnector, Gated>, request: hyper::Request<Gated>) -> Answer {
    let failed = |why: String| Answer {
        reply: bad_gateway(why.clone()),
        status: Err(why),
        body: String::new(),
        set_cookie: Vec::new(),
        location: None,
        headers: Vec::new(),
    };
    let response = match client.request(request).await {
        Ok(response) => response,
        Err(e) => return failed(format!("the instance gave no answer: {e}")),
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
            let location = parts
                .headers
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let headers = parts
                .headers
                .iter()
                .filter(|(name, _)| *name != hyper::header::SET_COOKIE)
                .filter_map(|(name, value)| Some(format!("{name}: {}", value.to_str().ok()?)))
                .collect();
            Answer {
                headers,
                status: Ok(parts.status.as_u16()),
                body: String::from_utf8_lossy(&bytes).into_owned(),
                set_cookie,
                location,
                reply: hyper::Response::from_parts(parts, Full::new(bytes)),
            }
        }
        Err(e) => failed(format!("the instance's answer was cut off: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An app that answers a form with a redirect and a flashed cookie,
    /// and shows on the next page the cookies and label it was sent.
    async fn app() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = vec![0; 8192];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map_or(String::new(), |v| v.trim().to_string())
                };
                let reply = if head.starts_with("POST /form/a ") {
                    "HTTP/1.1 302 Found\r\nLocation: next?x=1\r\nSet-Cookie: flash=hi; Path=/\r\n\
                     Set-Cookie: old=; Max-Age=0; Path=/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                } else {
                    let body = format!(
                        "{} cookie=[{}] label=[{}]",
                        head.lines().next().unwrap_or(""),
                        header("cookie:"),
                        header("x-otpsim-request:")
                    );
                    format!(
                        "HTTP/1.1 200 OK\r\nSet-Cookie: flash=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = stream.write_all(reply.as_bytes()).await;
            }
        });
        addr
    }

    #[test]
    fn a_scenarios_redirect_is_followed_with_the_chains_cookies_and_held_as_one_answer() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            for (hops, labelled) in [(10, true), (0, true), (10, false)] {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let proxy = start(vec![app().await], tx, hops).await.unwrap();
                let mut request = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    .build()
                    .unwrap()
                    .post(format!("http://{}/form/a", proxy.addr))
                    .header("cookie", "old=1; keep=2");
                if labelled {
                    request = request.header(REQUEST_HEADER, "5");
                }
                let browser = tokio::spawn(request.send());
                let held = loop {
                    match rx.recv().await.unwrap() {
                        Report::Arrived(_) => continue,
                        Report::Answered(held) => break held,
                    }
                };
                let followed = hops > 0 && labelled;
                let response = {
                    assert!(held.release.deliver().await);
                    browser.await.unwrap().unwrap()
                };
                let set: Vec<&str> = response
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .map(|v| v.to_str().unwrap())
                    .collect();
                if followed {
                    assert_eq!(held.redirects, [(302, "next?x=1".to_string())]);
                    assert_eq!(held.status, Ok(200));
                    // The page was asked for relative to the form, with the
                    // request's cookies as the redirect changed them, and
                    // the request's label.
                    assert_eq!(
                        held.body,
                        "GET /form/next?x=1 HTTP/1.1 cookie=[keep=2; flash=hi] label=[5]"
                    );
                    assert_eq!(held.set_cookie.len(), 3);
                    assert_eq!(response.status().as_u16(), 200);
                    assert_eq!(
                        set.len(),
                        3,
                        "every Set-Cookie of the chain reaches the browser, in order"
                    );
                    assert!(set[2].starts_with("flash=;"));
                } else {
                    // Not asked to follow, or a real browser's own request:
                    // it follows for itself.
                    assert!(held.redirects.is_empty());
                    assert_eq!(held.status, Ok(302));
                    assert_eq!(response.status().as_u16(), 302);
                    assert_eq!(set.len(), 2);
                }
                drop(proxy);
            }
        });
    }
}
