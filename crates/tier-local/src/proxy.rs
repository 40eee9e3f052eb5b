//! The per-service proxies: a stable listener on 127.0.0.1 that balances across the ready
//! replicas only. HTTP services get a keep-alive HTTP/1.1 reverse proxy that retries idempotent
//! requests on another replica when one fails; TCP services get a plain connection balancer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// A ready replica the proxy may send to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub replica: u32,
    pub address: SocketAddr,
}

pub type Endpoints = watch::Receiver<Arc<Vec<Endpoint>>>;

/// What a proxy tells the agent.
#[derive(Debug)]
pub enum ProxyEvent {
    /// A replica refused a connection: take it out of rotation until its probe passes again.
    Refused { service: usize, replica: u32 },
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// How long a replica that refused a connection is skipped by this proxy on its own, before
/// the agent's probe has had a chance to mark it unready.
const EJECT_FOR: Duration = Duration::from_secs(2);

type UpstreamBody = Either<Incoming, Empty<Bytes>>;
type ProxyBody = Either<Incoming, Full<Bytes>>;

struct HttpProxy {
    service: String,
    index: usize,
    endpoints: Endpoints,
    next: AtomicUsize,
    ejected: Mutex<Vec<(SocketAddr, Instant)>>,
    client: Client<HttpConnector, UpstreamBody>,
    events: mpsc::UnboundedSender<ProxyEvent>,
    access: mpsc::UnboundedSender<String>,
    ids: RequestIds,
}

/// Serves one service's HTTP proxy on each listener until `stop` is cancelled.
pub fn serve_http(
    service: String,
    index: usize,
    listeners: Vec<TcpListener>,
    endpoints: Endpoints,
    events: mpsc::UnboundedSender<ProxyEvent>,
    access: mpsc::UnboundedSender<String>,
    stop: CancellationToken,
) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1024)
        .build(connector);
    let proxy = Arc::new(HttpProxy {
        service,
        index,
        endpoints,
        next: AtomicUsize::new(0),
        ejected: Mutex::new(Vec::new()),
        client,
        events,
        access,
        ids: RequestIds::new(),
    });
    for listener in listeners {
        let proxy = Arc::clone(&proxy);
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, peer)) = accepted else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let proxy = Arc::clone(&proxy);
                let stop = stop.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let proxy = Arc::clone(&proxy);
                        async move { Ok::<_, Infallible>(proxy.handle(request, peer).await) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => {}
                        () = stop.cancelled() => {
                            connection.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
                        }
                    }
                });
            }
        });
    }
}

impl HttpProxy {
    async fn handle(
        &self,
        mut request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let request_id = match request.headers().get(&REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = self.ids.next();
                request.headers_mut().insert(REQUEST_ID, id.clone());
                id
            }
        };
        let method = request.method().clone();
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |path| path.as_str())
            .to_owned();
        let retryable = is_retryable(&request);
        let ready = self.endpoints.borrow().clone();
        let attempts = if retryable {
            ready.len().clamp(1, 3)
        } else {
            1
        };

        let (parts, body) = request.into_parts();
        let mut body = Some(body);
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut last_error = String::from("no ready replica");
        for _ in 0..attempts {
            let Some(endpoint) = self.pick(&ready, &tried) else {
                break;
            };
            tried.push(endpoint.address);
            let mut upstream = Request::builder()
                .method(parts.method.clone())
                .uri(format!("http://{}{}", endpoint.address, path))
                .version(hyper::Version::HTTP_11);
            if let Some(headers) = upstream.headers_mut() {
                headers.clone_from(&parts.headers);
                strip_hop_by_hop(headers);
                let forwarded = peer.ip().to_string();
                if let Ok(value) = HeaderValue::from_str(&forwarded) {
                    headers.append(HeaderName::from_static("x-forwarded-for"), value);
                }
            }
            let upstream_body = match (retryable, body.take()) {
                (false, Some(body)) => Either::Left(body),
                _ => Either::Right(Empty::new()),
            };
            let Ok(upstream) = upstream.body(upstream_body) else {
                last_error = "could not build the upstream request".to_owned();
                break;
            };
            match self.client.request(upstream).await {
                Ok(response) => {
                    self.log(
                        endpoint.replica,
                        &method,
                        &path,
                        response.status(),
                        started,
                        &request_id,
                    );
                    let (mut parts, body) = response.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    parts.headers.insert(REQUEST_ID, request_id.clone());
                    return Response::from_parts(parts, Either::Left(body));
                }
                Err(error) => {
                    if error.is_connect() {
                        self.eject(endpoint);
                    }
                    last_error = format!(
                        "replica {} failed: {}",
                        endpoint.replica,
                        error_text(&error)
                    );
                }
            }
        }
        let status = if tried.is_empty() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::BAD_GATEWAY
        };
        self.log(0, &method, &path, status, started, &request_id);
        let message = format!(
            "tier: {} has no replica that answered: {last_error}\n",
            self.service
        );
        let mut response = Response::new(Either::Right(Full::new(Bytes::from(message))));
        *response.status_mut() = status;
        response.headers_mut().insert(REQUEST_ID, request_id);
        response
    }

    /// The next ready replica in turn, skipping those tried for this request and those
    /// ejected a moment ago.
    fn pick(&self, ready: &[Endpoint], tried: &[SocketAddr]) -> Option<Endpoint> {
        if ready.is_empty() {
            return None;
        }
        let now = Instant::now();
        let ejected: Vec<SocketAddr> = match self.ejected.lock() {
            Ok(mut ejected) => {
                ejected.retain(|(_, until)| *until > now);
                ejected.iter().map(|(address, _)| *address).collect()
            }
            Err(_) => Vec::new(),
        };
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..ready.len())
            .map(|offset| ready[(start + offset) % ready.len()])
            .find(|endpoint| {
                !tried.contains(&endpoint.address) && !ejected.contains(&endpoint.address)
            })
    }

    fn eject(&self, endpoint: Endpoint) {
        if let Ok(mut ejected) = self.ejected.lock() {
            ejected.push((endpoint.address, Instant::now() + EJECT_FOR));
        }
        let _ = self.events.send(ProxyEvent::Refused {
            service: self.index,
            replica: endpoint.replica,
        });
    }

    fn log(
        &self,
        replica: u32,
        method: &Method,
        path: &str,
        status: StatusCode,
        started: Instant,
        id: &HeaderValue,
    ) {
        let replica = if replica == 0 {
            "-".to_owned()
        } else {
            format!("{}-{replica}", self.service)
        };
        let line = format!(
            "service={} replica={replica} method={method} path={path} status={} latency_ms={:.3} request_id={}",
            self.service,
            status.as_u16(),
            started.elapsed().as_secs_f64() * 1000.0,
            id.to_str().unwrap_or("-"),
        );
        let _ = self.access.send(line);
    }
}

/// Headers that describe one connection, not the message: they stop at the proxy.
fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    for name in [
        hyper::header::CONNECTION,
        hyper::header::TE,
        hyper::header::TRAILER,
        hyper::header::TRANSFER_ENCODING,
        hyper::header::UPGRADE,
        hyper::header::PROXY_AUTHORIZATION,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// Requests that can be sent again without changing anything: safe methods with no body.
fn is_retryable(request: &Request<Incoming>) -> bool {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    let headers = request.headers();
    let no_body = !headers.contains_key(hyper::header::TRANSFER_ENCODING)
        && headers
            .get(hyper::header::CONTENT_LENGTH)
            .is_none_or(|length| length.as_bytes() == b"0");
    safe && no_body
}

fn error_text(error: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// Request ids: unique per agent run, cheap to make.
struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64);
        RequestIds {
            prefix: nanos ^ (u64::from(std::process::id()) << 32),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> HeaderValue {
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let text = format!("{:016x}{count:08x}", self.prefix);
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

/// Serves one TCP service: each connection goes to the next ready replica, trying the others
/// when one refuses.
pub fn serve_tcp(
    index: usize,
    listeners: Vec<TcpListener>,
    endpoints: Endpoints,
    events: mpsc::UnboundedSender<ProxyEvent>,
    stop: CancellationToken,
) {
    let next = Arc::new(AtomicUsize::new(0));
    for listener in listeners {
        let endpoints = endpoints.clone();
        let events = events.clone();
        let stop = stop.clone();
        let next = Arc::clone(&next);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut inbound, _)) = accepted else {
                    continue;
                };
                let ready = endpoints.borrow().clone();
                let events = events.clone();
                let start = next.fetch_add(1, Ordering::Relaxed);
                let stop = stop.clone();
                tokio::spawn(async move {
                    for offset in 0..ready.len() {
                        let endpoint = ready[(start + offset) % ready.len()];
                        match TcpStream::connect(endpoint.address).await {
                            Ok(mut outbound) => {
                                tokio::select! {
                                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                    () = stop.cancelled() => {}
                                }
                                return;
                            }
                            Err(_) => {
                                let _ = events.send(ProxyEvent::Refused {
                                    service: index,
                                    replica: endpoint.replica,
                                });
                            }
                        }
                    }
                });
            }
        });
    }
}
