//! The config store's backends side by side: the embedded redb store and a real etcd 3.4 (via
//! `EtcdStore`), both durable (redb `Durability::Immediate`; etcd fsyncs its WAL by default),
//! measured in one run on one machine. Run through `bash bench/store.sh`, which prints the
//! machine and this program's table.
//!
//! Figures: sequential put latency (one client, each put durable before the next), put
//! throughput with 16 concurrent clients, watch delivery latency with 1,000 watchers on one
//! prefix (from the start of the put to each watcher's receipt), and memory (peak RSS).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tier_store::{
    Backend, EmbeddedConfig, EmbeddedStore, EtcdConfig, EtcdStore, Revision, Selector,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

const SEQUENTIAL_PUTS: usize = 1_000;
const CLIENTS: usize = 16;
const THROUGHPUT_FOR: Duration = Duration::from_secs(10);
const WATCHERS: usize = 1_000;
const WATCHED_PUTS: usize = 200;
const VALUE_BYTES: usize = 128;
/// How long any one wait of the benchmark may take before it gives up.
const PATIENCE: Duration = Duration::from_secs(60);

type Failure = String;

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

    println!();
    println!("etcd: {etcd_version}");
    println!(
        "values of {VALUE_BYTES} bytes; sequential: {SEQUENTIAL_PUTS} puts; throughput: {CLIENTS} clients for {}s; watch: {WATCHERS} watchers on one prefix, {WATCHED_PUTS} puts one at a time",
        THROUGHPUT_FOR.as_secs()
    );
    println!();
    println!(
        "| backend | put p50 ms | put p99 ms | puts/s ({CLIENTS} clients) | watch p50 ms | watch p99 ms ({WATCHERS} watchers) | peak RSS |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    for figures in [&embedded, &etcd] {
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

    let mut latencies = Vec::with_capacity(SEQUENTIAL_PUTS);
    for index in 0..SEQUENTIAL_PUTS {
        let started = Instant::now();
        put(store, &format!("seq/{}", index % 100), value.clone()).await?;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    eprintln!("  {name}: sequential puts done");

    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + THROUGHPUT_FOR;
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

/// Starts `WATCHERS` watches on one prefix, then puts one key at a time and waits until every
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
    let mut watchers = Vec::with_capacity(WATCHERS);
    for _ in 0..WATCHERS {
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
    let mut latencies = Vec::with_capacity(WATCHERS * WATCHED_PUTS);
    for index in 0..WATCHED_PUTS {
        let started = Instant::now();
        let revision = put(store, &format!("watched/{}", index % 10), value.to_vec()).await?;
        let mut seen = 0;
        while seen < WATCHERS {
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
                        "only {seen} of {WATCHERS} watchers got revision {revision} within {PATIENCE:?}"
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
