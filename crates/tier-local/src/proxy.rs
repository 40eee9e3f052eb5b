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
use hyper::Uri;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
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
    Refused { service: Arc<str>, replica: u32 },
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// How long a replica that refused a connection is skipped by this proxy on its own, before
/// the agent's probe has had a chance to mark it unready.
const EJECT_FOR: Duration = Duration::from_secs(2);

/// Single-threaded runtimes, one per core, that every proxy of an agent runs on. A client
/// connection and the upstream connections it uses live on one thread, as in nginx's worker
/// processes, so a request never has to wake another thread.
pub struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: CancellationToken,
}

impl Workers {
    pub fn start() -> std::io::Result<Workers> {
        let count = std::thread::available_parallelism().map_or(2, |cores| cores.get().min(8));
        let stop = CancellationToken::new();
        let mut handles = Vec::new();
        let mut threads = Vec::new();
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("tier-proxy-{index}"))
                    .spawn(move || runtime.block_on(stop.cancelled()))?,
            );
        }
        Ok(Workers {
            handles,
            threads,
            stop,
        })
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.cancel();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

type UpstreamBody = Either<Incoming, Empty<Bytes>>;
type ProxyBody = Either<Incoming, Full<Bytes>>;

/// What the workers serving one service share.
struct Shared {
    service: String,
    /// The service's name as the events to the agent carry it.
    name: Arc<str>,
    endpoints: Endpoints,
    next: AtomicUsize,
    /// Replicas that refused a connection a moment ago; `ejected_count` lets the common case,
    /// none, skip the lock.
    ejected: Mutex<Vec<(SocketAddr, Instant)>>,
    ejected_count: AtomicUsize,
    events: mpsc::UnboundedSender<ProxyEvent>,
    access: mpsc::UnboundedSender<Vec<String>>,
}

/// One worker's proxy for one service.
struct HttpProxy {
    shared: Arc<Shared>,
    ids: RequestIds,
    /// Access log lines not yet handed to the writer; flushed every 50 ms or when full, so a
    /// request does not wake another thread.
    log_buffer: Mutex<Vec<String>>,
}

/// The upstream connections of one client connection, one per replica it has used. Its
/// requests reuse them in turn: nothing to lock across connections, and an upstream
/// connection is never shared by two clients.
#[derive(Default)]
struct Upstreams(Mutex<Vec<(SocketAddr, SendRequest<UpstreamBody>)>>);

impl Upstreams {
    fn take(&self, address: SocketAddr) -> Option<SendRequest<UpstreamBody>> {
        let mut connections = self.0.lock().ok()?;
        let at = connections
            .iter()
            .position(|(candidate, _)| *candidate == address)?;
        Some(connections.swap_remove(at).1)
    }

    fn put(&self, address: SocketAddr, sender: SendRequest<UpstreamBody>) {
        if let Ok(mut connections) = self.0.lock() {
            connections.push((address, sender));
        }
    }
}

/// Opens a keep-alive HTTP/1.1 connection to a replica; its driver runs as a task of the
/// current worker.
async fn connect(address: SocketAddr) -> Result<SendRequest<UpstreamBody>, String> {
    let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(address))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            _ => error.to_string(),
        })?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|error| error.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Serves one service's HTTP proxy on each listener, on every worker, until `stop` is
/// cancelled.
pub fn serve_http(
    workers: &Workers,
    service: String,
    listeners: Vec<std::net::TcpListener>,
    endpoints: Endpoints,
    events: mpsc::UnboundedSender<ProxyEvent>,
    access: mpsc::UnboundedSender<Vec<String>>,
    stop: CancellationToken,
) {
    let shared = Arc::new(Shared {
        name: Arc::from(service.as_str()),
        service,
        endpoints,
        next: AtomicUsize::new(0),
        ejected: Mutex::new(Vec::new()),
        ejected_count: AtomicUsize::new(0),
        events,
        access,
    });
    for (worker, handle) in workers.handles.iter().enumerate() {
        let proxy = Arc::new(HttpProxy {
            shared: Arc::clone(&shared),
            ids: RequestIds::new(worker),
            log_buffer: Mutex::new(Vec::new()),
        });
        {
            let proxy = Arc::clone(&proxy);
            let stop = stop.clone();
            handle.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                loop {
                    tokio::select! {
                        () = stop.cancelled() => {
                            proxy.flush_log();
                            return;
                        }
                        _ = tick.tick() => proxy.flush_log(),
                    }
                }
            });
        }
        for listener in &listeners {
            let Ok(listener) = listener.try_clone() else {
                continue;
            };
            let proxy = Arc::clone(&proxy);
            let stop = stop.clone();
            handle.spawn(async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    return;
                };
                accept_http(listener, proxy, stop).await;
            });
        }
    }
}

async fn accept_http(listener: TcpListener, proxy: Arc<HttpProxy>, stop: CancellationToken) {
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
            let upstreams = Arc::new(Upstreams::default());
            let forwarded = HeaderValue::from_str(&peer.ip().to_string()).ok();
            let service = hyper::service::service_fn(move |request| {
                let proxy = Arc::clone(&proxy);
                let upstreams = Arc::clone(&upstreams);
                let forwarded = forwarded.clone();
                async move { Ok::<_, Infallible>(proxy.handle(request, &upstreams, forwarded).await) }
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
}

impl HttpProxy {
    async fn handle(
        &self,
        request: Request<Incoming>,
        upstreams: &Upstreams,
        forwarded: Option<HeaderValue>,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let retryable = is_retryable(&request);
        let (mut parts, body) = request.into_parts();
        let request_id = match parts.headers.get(&REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = self.ids.next();
                parts.headers.insert(REQUEST_ID, id.clone());
                id
            }
        };
        strip_hop_by_hop(&mut parts.headers);
        if let Some(forwarded) = forwarded {
            parts
                .headers
                .append(HeaderName::from_static("x-forwarded-for"), forwarded);
        }
        // Replicas get the origin form of the target: the path and query.
        let target = parts.uri.path_and_query().cloned();
        parts.uri = target
            .clone()
            .map_or_else(|| Uri::from_static("/"), Uri::from);
        parts.version = hyper::Version::HTTP_11;
        let method = parts.method.clone();
        let path = target.as_ref().map_or("/", |target| target.as_str());

        let ready = self.shared.endpoints.borrow().clone();
        let attempts = if retryable {
            ready.len().clamp(1, 3)
        } else {
            1
        };
        let mut body = Some(body);
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut last_error = String::from("no ready replica");
        for _ in 0..attempts {
            let Some(endpoint) = self.pick(&ready, &tried) else {
                break;
            };
            tried.push(endpoint.address);
            let mut reused = upstreams.take(endpoint.address);
            if let Some(sender) = &mut reused
                && sender.ready().await.is_err()
            {
                reused = None;
            }
            let mut sender = match reused {
                Some(sender) => sender,
                None => match connect(endpoint.address).await {
                    Ok(sender) => sender,
                    Err(why) => {
                        self.eject(endpoint);
                        last_error = format!("replica {}: {why}", endpoint.replica);
                        continue;
                    }
                },
            };
            let upstream_body = match (retryable, body.take()) {
                (false, Some(body)) => Either::Left(body),
                _ => Either::Right(Empty::new()),
            };
            // The head is copied only while another attempt may need it.
            let last_attempt = tried.len() >= attempts || tried.len() >= ready.len();
            let head = if last_attempt {
                std::mem::replace(&mut parts, Request::new(()).into_parts().0)
            } else {
                parts.clone()
            };
            let upstream = Request::from_parts(head, upstream_body);
            match sender.send_request(upstream).await {
                Ok(response) => {
                    upstreams.put(endpoint.address, sender);
                    self.log(
                        endpoint.replica,
                        &method,
                        path,
                        response.status(),
                        started,
                        &request_id,
                    );
                    let (mut head, body) = response.into_parts();
                    strip_hop_by_hop(&mut head.headers);
                    head.headers.insert(REQUEST_ID, request_id.clone());
                    return Response::from_parts(head, Either::Left(body));
                }
                Err(error) => {
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
        self.log(0, &method, path, status, started, &request_id);
        let message = format!(
            "tier: {} has no replica that answered: {last_error}\n",
            self.shared.service
        );
        let mut response = Response::new(Either::Right(Full::new(Bytes::from(message))));
        *response.status_mut() = status;
        response.headers_mut().insert(REQUEST_ID, request_id);
        response
    }

    /// Hands the buffered access log lines to the writer.
    fn flush_log(&self) {
        let lines = match self.log_buffer.lock() {
            Ok(mut buffer) if !buffer.is_empty() => std::mem::take(&mut *buffer),
            _ => return,
        };
        let _ = self.shared.access.send(lines);
    }

    /// The next ready replica in turn, skipping those tried for this request and those
    /// ejected a moment ago.
    fn pick(&self, ready: &[Endpoint], tried: &[SocketAddr]) -> Option<Endpoint> {
        if ready.is_empty() {
            return None;
        }
        let shared = &self.shared;
        let ejected: Vec<SocketAddr> = if shared.ejected_count.load(Ordering::Relaxed) == 0 {
            Vec::new()
        } else {
            match shared.ejected.lock() {
                Ok(mut ejected) => {
                    let now = Instant::now();
                    ejected.retain(|(_, until)| *until > now);
                    shared.ejected_count.store(ejected.len(), Ordering::Relaxed);
                    ejected.iter().map(|(address, _)| *address).collect()
                }
                Err(_) => Vec::new(),
            }
        };
        let start = shared.next.fetch_add(1, Ordering::Relaxed);
        (0..ready.len())
            .map(|offset| ready[(start + offset) % ready.len()])
            .find(|endpoint| {
                !tried.contains(&endpoint.address) && !ejected.contains(&endpoint.address)
            })
    }

    fn eject(&self, endpoint: Endpoint) {
        let shared = &self.shared;
        if let Ok(mut ejected) = shared.ejected.lock() {
            ejected.push((endpoint.address, Instant::now() + EJECT_FOR));
            shared.ejected_count.store(ejected.len(), Ordering::Relaxed);
        }
        let _ = shared.events.send(ProxyEvent::Refused {
            service: Arc::clone(&shared.name),
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
            format!("{}-{replica}", self.shared.service)
        };
        let line = format!(
            "service={} replica={replica} method={method} path={path} status={} latency_ms={:.3} request_id={}",
            self.shared.service,
            status.as_u16(),
            started.elapsed().as_secs_f64() * 1000.0,
            id.to_str().unwrap_or("-"),
        );
        let full = match self.log_buffer.lock() {
            Ok(mut buffer) => {
                buffer.push(line);
                buffer.len() >= 256
            }
            Err(_) => false,
        };
        if full {
            self.flush_log();
        }
    }
}

/// Headers that describe one connection, not the message: they stop at the proxy.
fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    const HOP_BY_HOP: [HeaderName; 6] = [
        hyper::header::CONNECTION,
        hyper::header::TE,
        hyper::header::TRAILER,
        hyper::header::TRANSFER_ENCODING,
        hyper::header::UPGRADE,
        hyper::header::PROXY_AUTHORIZATION,
    ];
    // Most messages carry none of them: one pass over the names instead of eight lookups.
    let present = headers.keys().any(|name| {
        HOP_BY_HOP.contains(name) || name == "keep-alive" || name == "proxy-connection"
    });
    if !present {
        return;
    }
    for name in HOP_BY_HOP {
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

fn error_text(error: &hyper::Error) -> String {
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
    /// Ids unique to one worker: the time, the process and the worker make the prefix.
    fn new(worker: usize) -> RequestIds {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64);
        RequestIds {
            prefix: nanos ^ (u64::from(std::process::id()) << 32) ^ ((worker as u64) << 56),
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
    workers: &Workers,
    service: &str,
    listeners: Vec<std::net::TcpListener>,
    endpoints: Endpoints,
    events: mpsc::UnboundedSender<ProxyEvent>,
    stop: CancellationToken,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let name: Arc<str> = Arc::from(service);
    for (handle, listener) in workers
        .handles
        .iter()
        .flat_map(|handle| listeners.iter().map(move |listener| (handle, listener)))
    {
        let Ok(listener) = listener.try_clone() else {
            continue;
        };
        let endpoints = endpoints.clone();
        let events = events.clone();
        let stop = stop.clone();
        let next = Arc::clone(&next);
        let name = Arc::clone(&name);
        handle.spawn(async move {
            let Ok(listener) = TcpListener::from_std(listener) else { return };
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
                let name = Arc::clone(&name);
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
                                    service: Arc::clone(&name),
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
