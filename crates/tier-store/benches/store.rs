//! The config store side by side: the embedded redb store and a real etcd 3.4 (via
//! `EtcdStore`), both durable (redb `Durability::Immediate`; etcd fsyncs its WAL by default),
//! and the HTTP API as services reach it (`tier store serve --backend file:PATH`, a separate
//! process, every change written with its audit record), measured in one run on one machine.
//! Run through `bash bench/store.sh`, which builds the `tier` binary, prints the machine and
//! this program's table.
//!
//! Figures: sequential put latency (one client, each put durable before the next), put
//! throughput with 16 concurrent clients, watch delivery latency with 1,000 watchers on one
//! prefix (from the start of the put to each watcher's receipt; through the API, 1,000 SSE
//! streams), and memory (peak RSS).
//!
//! With `BENCH_SMOKE=1` (`bash bench/smoke.sh`) every step runs at tiny sizes, in seconds: 50
//! sequential puts, 1 s of throughput, 20 watchers and 5 watched puts.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures_util::StreamExt;
use tier_store::{
    Backend, EmbeddedConfig, EmbeddedStore, EtcdConfig, EtcdStore, Revision, Selector,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

const CLIENTS: usize = 16;
const VALUE_BYTES: usize = 128;
/// How long any one wait of the benchmark may take before it gives up.
const PATIENCE: Duration = Duration::from_secs(60);

type Failure = String;

/// How much each step does: the benchmark's sizes, or tiny ones for a smoke run.
#[derive(Clone, Copy)]
struct Sizes {
    sequential_puts: usize,
    throughput_for: Duration,
    watchers: usize,
    watched_puts: usize,
}

static SIZES: LazyLock<Sizes> = LazyLock::new(|| {
    if std::env::var_os("BENCH_SMOKE").is_some_and(|value| value == "1") {
        Sizes {
            sequential_puts: 50,
            throughput_for: Duration::from_secs(1),
            watchers: 20,
            watched_puts: 5,
        }
    } else {
        Sizes {
            sequential_puts: 1_000,
            throughput_for: Duration::from_secs(10),
            watchers: 1_000,
            watched_puts: 200,
        }
    }
});

struct Figures {
    name: &'static str,
    put_p50: Duration,
    put_p99: Duration,
    puts_per_second: f64,
    watch_p50: Duration,
    watch_p99: Duration,
    rss: String,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let outcome = match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => Err(format!("cannot start a runtime: {error}")),
    };
    if let Err(error) = outcome {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Failure> {
    // `cargo bench` passes `--bench`; anything else is a directory for the data.
    let parent = std::env::args()
        .skip(1)
        .find(|argument| !argument.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let directory = tempfile::tempdir_in(&parent)
        .map_err(|error| format!("cannot create a directory in {}: {error}", parent.display()))?;
    eprintln!("data under {}", directory.path().display());

    eprintln!("embedded: redb file, Durability::Immediate, group commit");
    let embedded = {
        let config = EmbeddedConfig {
            history: Some(10_000),
            ..EmbeddedConfig::default()
        };
        let store = EmbeddedStore::open(&directory.path().join("store.redb"), config)
            .await
            .map_err(|error| error.to_string())?;
        let mut figures = measure("embedded (redb)", &store).await?;
        figures.rss = format!("{} (whole benchmark process)", own_peak_rss()?);
        figures
    };

    eprintln!("etcd: a real etcd server on 127.0.0.1, its data in the same directory");
    let server = tier_test::etcd::EtcdServer::start(Some(directory.path())).await?;
    let etcd_version = etcd_version();
    let etcd = {
        let store = EtcdStore::connect(EtcdConfig::new(vec![server.endpoint()], "bench"))
            .await
            .map_err(|error| error.to_string())?;
        let client_before = own_rss_kib()?;
        let mut figures = measure("etcd 3.4 (EtcdStore)", &store).await?;
        figures.rss = format!(
            "{} etcd server (+{} MiB client side)",
            peak_rss(server.pid())?,
            own_rss_kib()?.saturating_sub(client_before) / 1024
        );
        figures
    };

    drop(server);

    eprintln!("api: tier store serve --backend file:PATH, HTTP/1.1 on 127.0.0.1");
    let api = {
        let server = ApiServer::start(directory.path()).await?;
        let mut figures = measure_api("tier store serve (HTTP API, file)", &server.api).await?;
        figures.rss = format!("{} API server process", peak_rss(server.child.id())?);
        figures
    };

    let Sizes {
        sequential_puts,
        throughput_for,
        watchers,
        watched_puts,
    } = *SIZES;
    println!();
    println!("etcd: {etcd_version}");
    println!(
        "values of {VALUE_BYTES} bytes; sequential: {sequential_puts} puts; throughput: {CLIENTS} clients for {}s; watch: {watchers} watchers on one prefix, {watched_puts} puts one at a time",
        throughput_for.as_secs()
    );
    println!();
    println!(
        "| backend | put p50 ms | put p99 ms | puts/s ({CLIENTS} clients) | watch p50 ms | watch p99 ms ({watchers} watchers) | peak RSS |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    for figures in [&embedded, &etcd, &api] {
        println!(
            "| {} | {:.3} | {:.3} | {:.0} | {:.3} | {:.3} | {} |",
            figures.name,
            millis(figures.put_p50),
            millis(figures.put_p99),
            figures.puts_per_second,
            millis(figures.watch_p50),
            millis(figures.watch_p99),
            figures.rss
        );
    }
    Ok(())
}

async fn measure<B: Backend + Clone>(name: &'static str, store: &B) -> Result<Figures, Failure> {
    let value = vec![b'v'; VALUE_BYTES];
    // Warm up: connections, file growth.
    for index in 0..100 {
        put(store, &format!("warm/{index}"), value.clone()).await?;
    }

    let mut latencies = Vec::with_capacity(SIZES.sequential_puts);
    for index in 0..SIZES.sequential_puts {
        let started = Instant::now();
        put(store, &format!("seq/{}", index % 100), value.clone()).await?;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    eprintln!("  {name}: sequential puts done");

    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + SIZES.throughput_for;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let store = store.clone();
            let done = done.clone();
            let value = value.clone();
            tokio::spawn(async move {
                let mut index = 0_u64;
                while Instant::now() < deadline {
                    put(
                        &store,
                        &format!("load/{client}/{}", index % 100),
                        value.clone(),
                    )
                    .await?;
                    done.fetch_add(1, Ordering::Relaxed);
                    index += 1;
                }
                Ok::<(), Failure>(())
            })
        })
        .collect();
    for client in clients {
        client
            .await
            .map_err(|error| format!("a client task failed: {error}"))??;
    }
    let elapsed = started.elapsed();
    let puts_per_second = done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64();
    eprintln!("  {name}: {puts_per_second:.0} puts/s");

    let watch = watch_latencies(store, &value).await?;
    eprintln!("  {name}: watch latencies done");
    Ok(Figures {
        name,
        put_p50: percentile(&latencies, 50),
        put_p99: percentile(&latencies, 99),
        puts_per_second,
        watch_p50: percentile(&watch, 50),
        watch_p99: percentile(&watch, 99),
        rss: String::new(),
    })
}

/// Starts `SIZES.watchers` watches on one prefix, then puts one key at a time and waits until every
/// watcher has it; returns every (put, watcher) delivery latency, sorted.
async fn watch_latencies<B: Backend + Clone>(
    store: &B,
    value: &[u8],
) -> Result<Vec<Duration>, Failure> {
    let (delivered, mut deliveries) = mpsc::unbounded_channel::<(Revision, Instant)>();
    let from = store
        .revisions()
        .await
        .map_err(|error| error.to_string())?
        .0
        .next();
    let mut watchers = Vec::with_capacity(SIZES.watchers);
    for _ in 0..SIZES.watchers {
        let mut watch = store
            .watch(Selector::Prefix("watched/".into()), from)
            .await
            .map_err(|error| error.to_string())?;
        let delivered = delivered.clone();
        watchers.push(tokio::spawn(async move {
            while let Some(Ok(event)) = watch.next().await {
                if delivered.send((event.revision(), Instant::now())).is_err() {
                    return;
                }
            }
        }));
    }
    let mut latencies = Vec::with_capacity(SIZES.watchers * SIZES.watched_puts);
    for index in 0..SIZES.watched_puts {
        let started = Instant::now();
        let revision = put(store, &format!("watched/{}", index % 10), value.to_vec()).await?;
        let mut seen = 0;
        while seen < SIZES.watchers {
            let received = tokio::time::timeout(PATIENCE, deliveries.recv()).await;
            match received {
                Ok(Some((delivered_revision, at))) if delivered_revision == revision => {
                    latencies.push(at.saturating_duration_since(started));
                    seen += 1;
                }
                Ok(Some((other, _))) => {
                    return Err(format!(
                        "a watcher got revision {other} while {revision} was due"
                    ));
                }
                Ok(None) | Err(_) => {
                    return Err(format!(
                        "only {seen} of {} watchers got revision {revision} within {PATIENCE:?}",
                        SIZES.watchers
                    ));
                }
            }
        }
    }
    for watcher in watchers {
        watcher.abort();
    }
    latencies.sort();
    Ok(latencies)
}

/// `tier store serve` over a store file of its own, killed when dropped.
struct ApiServer {
    child: Child,
    api: Arc<Api>,
}

/// Where the API is and how to call it.
struct Api {
    url: String,
    token: String,
    client: reqwest::Client,
}

impl ApiServer {
    async fn start(directory: &Path) -> Result<ApiServer, Failure> {
        let binary = match std::env::var_os("TIER_BIN") {
            Some(binary) => PathBuf::from(binary),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/tier"),
        };
        if !binary.is_file() {
            return Err(format!(
                "no tier binary at {} (set TIER_BIN, or run bash bench/store.sh, which builds it)",
                binary.display()
            ));
        }
        let port = tier_test::etcd::free_port()?;
        let tokens = directory.join("api-tokens.json");
        let log = std::fs::File::create(directory.join("api.log"))
            .map_err(|error| format!("cannot create the API server's log: {error}"))?;
        #[expect(
            clippy::disallowed_methods,
            reason = "the benchmark measures the real tier binary as a server"
        )]
        let mut command = std::process::Command::new(&binary);
        command
            .args(["store", "serve", "--env", "bench"])
            .arg("--backend")
            .arg(format!("file:{}", directory.join("api.redb").display()))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--tokens")
            .arg(&tokens)
            .arg("-C")
            .arg(directory)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = command
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", binary.display()))?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(usize::MAX)
            .build()
            .map_err(|error| error.to_string())?;
        let mut server = ApiServer {
            child,
            api: Arc::new(Api {
                url: format!("http://127.0.0.1:{port}"),
                token: String::new(),
                client,
            }),
        };
        let url = server.api.url.clone();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("tier store serve exited ({status})"));
            }
            let answer = server
                .api
                .client
                .get(format!("{url}/v1/kv/ping"))
                .send()
                .await;
            if answer.is_ok_and(|answer| answer.status() == reqwest::StatusCode::UNAUTHORIZED) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "tier store serve did not answer within {PATIENCE:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let text = std::fs::read_to_string(&tokens)
            .map_err(|error| format!("cannot read {}: {error}", tokens.display()))?;
        let file: serde_json::Value =
            serde_json::from_str(&text).map_err(|error| format!("tokens file: {error}"))?;
        let token = file["read_write"]
            .as_str()
            .ok_or("the tokens file has no read_write token")?
            .to_owned();
        server.api = Arc::new(Api {
            url,
            token,
            client: server.api.client.clone(),
        });
        Ok(server)
    }
}

impl Api {
    /// `PUT /v1/kv/<key>`: the change's revision.
    async fn put(&self, key: &str, value: &serde_json::Value) -> Result<Revision, Failure> {
        let request = self
            .client
            .put(format!("{}/v1/kv/{key}", self.url))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "value": value }))
            .send();
        let response = tokio::time::timeout(PATIENCE, request)
            .await
            .map_err(|_| format!("a put took longer than {PATIENCE:?}"))?
            .map_err(|error| error.to_string())?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.map_err(|error| error.to_string())?;
        match body["revision"].as_u64() {
            Some(revision) if status.is_success() => Ok(Revision(revision)),
            _ => Err(format!("a put was refused ({status}): {body}")),
        }
    }

    async fn revision(&self) -> Result<Revision, Failure> {
        let response = self
            .client
            .get(format!("{}/v1/kv?prefix=nothing/", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|error| error.to_string())?;
        let body: serde_json::Value = response.json().await.map_err(|error| error.to_string())?;
        body["revision"]
            .as_u64()
            .map(Revision)
            .ok_or_else(|| format!("a listing without a revision: {body}"))
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same figures as [`measure`], through the HTTP API.
async fn measure_api(name: &'static str, server: &Arc<Api>) -> Result<Figures, Failure> {
    let value = serde_json::Value::String("v".repeat(VALUE_BYTES));
    for index in 0..100 {
        server.put(&format!("warm/{index}"), &value).await?;
    }

    let mut latencies = Vec::with_capacity(SIZES.sequential_puts);
    for index in 0..SIZES.sequential_puts {
        let started = Instant::now();
        server.put(&format!("seq/{}", index % 100), &value).await?;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    eprintln!("  {name}: sequential puts done");

    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + SIZES.throughput_for;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let server = server.clone();
            let done = done.clone();
            let value = value.clone();
            tokio::spawn(async move {
                let mut index = 0_u64;
                while Instant::now() < deadline {
                    server
                        .put(&format!("load/{client}/{}", index % 100), &value)
                        .await?;
                    done.fetch_add(1, Ordering::Relaxed);
                    index += 1;
                }
                Ok::<(), Failure>(())
            })
        })
        .collect();
    for client in clients {
        client
            .await
            .map_err(|error| format!("a client task failed: {error}"))??;
    }
    let elapsed = started.elapsed();
    let puts_per_second = done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64();
    eprintln!("  {name}: {puts_per_second:.0} puts/s");

    let watch = api_watch_latencies(server, &value).await?;
    eprintln!("  {name}: watch latencies done");
    Ok(Figures {
        name,
        put_p50: percentile(&latencies, 50),
        put_p99: percentile(&latencies, 99),
        puts_per_second,
        watch_p50: percentile(&watch, 50),
        watch_p99: percentile(&watch, 99),
        rss: String::new(),
    })
}

/// `SIZES.watchers` SSE streams on one prefix through the API, then one put at a time; every
/// (put, watcher) delivery latency, sorted.
async fn api_watch_latencies(
    server: &Api,
    value: &serde_json::Value,
) -> Result<Vec<Duration>, Failure> {
    let (delivered, mut deliveries) = mpsc::unbounded_channel::<(Revision, Instant)>();
    let from = server.revision().await?.next();
    let mut watchers = Vec::with_capacity(SIZES.watchers);
    for _ in 0..SIZES.watchers {
        let response = server
            .client
            .get(format!(
                "{}/v1/watch?prefix=watched/&from={from}",
                server.url
            ))
            .bearer_auth(&server.token)
            .send()
            .await
            .map_err(|error| format!("opening a watch: {error}"))?;
        if !response.status().is_success() {
            return Err(format!("a watch was refused: {}", response.status()));
        }
        let delivered = delivered.clone();
        watchers.push(tokio::spawn(async move {
            let mut response = response;
            let mut buffer = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let revision = block
                        .lines()
                        .find_map(|line| line.strip_prefix("id:"))
                        .and_then(|id| id.trim().parse().ok());
                    if let Some(revision) = revision
                        && delivered
                            .send((Revision(revision), Instant::now()))
                            .is_err()
                    {
                        return;
                    }
                }
            }
        }));
    }
    let mut latencies = Vec::with_capacity(SIZES.watchers * SIZES.watched_puts);
    for index in 0..SIZES.watched_puts {
        let started = Instant::now();
        let revision = server
            .put(&format!("watched/{}", index % 10), value)
            .await?;
        let mut seen = 0;
        while seen < SIZES.watchers {
            let received = tokio::time::timeout(PATIENCE, deliveries.recv()).await;
            match received {
                Ok(Some((delivered_revision, at))) if delivered_revision == revision => {
                    latencies.push(at.saturating_duration_since(started));
                    seen += 1;
                }
                Ok(Some((other, _))) => {
                    return Err(format!(
                        "a watcher got revision {other} while {revision} was due"
                    ));
                }
                Ok(None) | Err(_) => {
                    return Err(format!(
                        "only {seen} of {} watchers got revision {revision} within {PATIENCE:?}",
                        SIZES.watchers
                    ));
                }
            }
        }
    }
    for watcher in watchers {
        watcher.abort();
    }
    latencies.sort();
    Ok(latencies)
}

async fn put<B: Backend>(store: &B, key: &str, value: Vec<u8>) -> Result<Revision, Failure> {
    tokio::time::timeout(PATIENCE, store.put(key, value, None))
        .await
        .map_err(|_| format!("a put took longer than {PATIENCE:?}"))?
        .map_err(|error| error.to_string())
}

fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = (sorted.len() * percent / 100).min(sorted.len() - 1);
    sorted[index]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn status_field_kib(pid: &str, field: &str) -> Result<u64, Failure> {
    let path = Path::new("/proc").join(pid).join("status");
    let text = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} in {}", path.display()))
}

fn own_peak_rss() -> Result<String, Failure> {
    Ok(format!(
        "{} MiB",
        status_field_kib("self", "VmHWM:")? / 1024
    ))
}

fn own_rss_kib() -> Result<u64, Failure> {
    status_field_kib("self", "VmRSS:")
}

fn peak_rss(pid: u32) -> Result<String, Failure> {
    Ok(format!(
        "{} MiB",
        status_field_kib(&pid.to_string(), "VmHWM:")? / 1024
    ))
}

fn etcd_version() -> String {
    #[expect(
        clippy::disallowed_methods,
        reason = "asks the etcd binary for its version, once"
    )]
    let output = std::process::Command::new("etcd").arg("--version").output();
    output
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown version".to_owned())
}
