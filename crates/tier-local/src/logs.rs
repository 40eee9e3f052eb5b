//! Replica output on disk: one file per replica under `.tier/<env>/logs/`, rotated by size, and
//! the reader behind `tier logs` that merges them in time order and follows them.
//!
//! A line on disk is `<unix milliseconds> <out|err> <text>`, so files merge by time without
//! parsing dates. Replica names are reused from one run of an environment to the next, so the
//! agent marks when a run begins (`run-started`) and `tier logs` starts there by default.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When a log file passes this size it is rotated.
pub const ROTATE_BYTES: u64 = 10 * 1024 * 1024;
/// How many rotated files are kept beside the current one.
pub const KEEP_ROTATED: u32 = 3;

/// Appends lines to one log file, rotating it when it grows past its limit.
pub struct LogFile {
    path: PathBuf,
    file: File,
    written: u64,
    limit: u64,
}

impl LogFile {
    pub fn open(path: &Path, limit: u64) -> std::io::Result<LogFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let written = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            written,
            limit,
        })
    }

    pub fn append(&mut self, stream: Stream, text: &str) -> std::io::Result<()> {
        let line = format!("{} {} {}\n", now_millis(), stream.as_str(), text);
        if self.written + line.len() as u64 > self.limit && self.written > 0 {
            self.rotate()?;
        }
        self.file.write_all(line.as_bytes())?;
        self.written += line.len() as u64;
        Ok(())
    }

    /// Appends several lines with one write.
    pub fn append_all(&mut self, stream: Stream, texts: &[String]) -> std::io::Result<()> {
        let now = now_millis();
        let mut buffer = String::with_capacity(texts.iter().map(|text| text.len() + 24).sum());
        for text in texts {
            buffer.push_str(&format!("{now} {} {text}\n", stream.as_str()));
        }
        if self.written + buffer.len() as u64 > self.limit && self.written > 0 {
            self.rotate()?;
        }
        self.file.write_all(buffer.as_bytes())?;
        self.written += buffer.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        for index in (1..KEEP_ROTATED).rev() {
            let from = rotated(&self.path, index);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, index + 1))?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

fn rotated(path: &Path, index: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
        }
    }
}

pub fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis())
}

/// One line of a replica's output, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub millis: u128,
    /// `backend-2`
    pub source: String,
    pub text: String,
}

/// The file in a logs directory that holds when the environment's latest run began.
const RUN_FILE: &str = "run-started";

/// Records that a run of the environment begins now: `tier logs` shows the lines from here on
/// by default, so the lines of an earlier run under the same replica names stay out of it.
pub fn mark_run(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(RUN_FILE);
    let partial = dir.join(format!("{RUN_FILE}.partial"));
    std::fs::write(&partial, format!("{}\n", now_millis()))?;
    std::fs::rename(partial, path)
}

/// When the environment's latest run began, in unix milliseconds; `None` before the first.
pub fn run_started(dir: &Path) -> Option<u128> {
    std::fs::read_to_string(dir.join(RUN_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Which lines `tier logs` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Only lines at or after this time, in unix milliseconds.
    pub since: Option<u128>,
    /// Only the last this many lines of those.
    pub tail: Option<usize>,
}

impl Window {
    /// The lines in the window, in order; lines of an unknown time (0) are kept.
    pub fn select(&self, lines: Vec<Line>) -> Vec<Line> {
        let mut lines: Vec<Line> = match self.since {
            Some(since) => lines
                .into_iter()
                .filter(|line| line.millis == 0 || line.millis >= since)
                .collect(),
            None => lines,
        };
        if let Some(tail) = self.tail {
            let skip = lines.len().saturating_sub(tail);
            lines.drain(..skip);
        }
        lines
    }
}

/// The replica log files in a logs directory, optionally of one service, by source name.
fn sources(dir: &Path, service: Option<&str>) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let source = name.strip_suffix(".log")?.to_owned();
            let (owner, replica) = source.rsplit_once('-')?;
            replica.parse::<u32>().ok()?;
            if service.is_some_and(|service| service != owner) {
                return None;
            }
            Some((source, entry.path()))
        })
        .collect();
    found.sort();
    found
}

fn parse_line(source: &str, raw: &str) -> Option<Line> {
    let (millis, rest) = raw.split_once(' ')?;
    let (_stream, text) = rest.split_once(' ').unwrap_or((rest, ""));
    Some(Line {
        millis: millis.parse().ok()?,
        source: source.to_owned(),
        text: text.to_owned(),
    })
}

/// Every line of every replica (of one service, if named), oldest first, rotated files first.
pub fn read_all(dir: &Path, service: Option<&str>) -> Vec<Line> {
    let mut lines = Vec::new();
    for (source, path) in sources(dir, service) {
        for index in (1..=KEEP_ROTATED).rev() {
            read_file(&rotated(&path, index), &source, &mut lines);
        }
        read_file(&path, &source, &mut lines);
    }
    lines.sort_by_key(|line| line.millis);
    lines
}

fn read_file(path: &Path, source: &str, out: &mut Vec<Line>) {
    let Ok(file) = File::open(path) else { return };
    out.extend(
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|raw| parse_line(source, &raw)),
    );
}

/// Follows the current log files, calling `emit` with each new line, until `keep_going` says
/// stop. Picks up replicas that appear later and files that were rotated.
///
/// Polls rather than watching for file events: one stat per file every 200 ms is cheap and
/// works on every filesystem.
#[expect(
    clippy::disallowed_methods,
    reason = "following files is a polling loop on the CLI thread"
)]
pub fn follow(
    dir: &Path,
    service: Option<&str>,
    mut emit: impl FnMut(Line),
    keep_going: impl Fn() -> bool,
) {
    let mut offsets: BTreeMap<PathBuf, u64> = sources(dir, service)
        .into_iter()
        .map(|(_, path)| {
            let length = std::fs::metadata(&path).map_or(0, |metadata| metadata.len());
            (path, length)
        })
        .collect();
    while keep_going() {
        let mut batch = Vec::new();
        for (source, path) in sources(dir, service) {
            let offset = offsets.entry(path.clone()).or_insert(0);
            let length = std::fs::metadata(&path).map_or(0, |metadata| metadata.len());
            if length < *offset {
                // Rotated: the current file is new.
                *offset = 0;
            }
            if length == *offset {
                continue;
            }
            let Ok(mut file) = File::open(&path) else {
                continue;
            };
            if file.seek(SeekFrom::Start(*offset)).is_err() {
                continue;
            }
            let mut reader = BufReader::new(file);
            let mut raw = String::new();
            while let Ok(read) = reader.read_line(&mut raw) {
                if read == 0 || !raw.ends_with('\n') {
                    break;
                }
                *offset += read as u64;
                if let Some(line) = parse_line(&source, raw.trim_end_matches('\n')) {
                    batch.push(line);
                }
                raw.clear();
            }
        }
        batch.sort_by_key(|line| line.millis);
        for line in batch {
            emit(line);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A stable color per service name, so `backend` looks the same in every run.
pub fn color_for(service: &str) -> console::Color {
    const COLORS: [console::Color; 6] = [
        console::Color::Cyan,
        console::Color::Green,
        console::Color::Yellow,
        console::Color::Magenta,
        console::Color::Blue,
        console::Color::Red,
    ];
    let hash = service.bytes().fold(0usize, |hash, byte| {
        hash.wrapping_mul(31).wrapping_add(byte as usize)
    });
    COLORS[hash % COLORS.len()]
}

/// `backend-2 | text`, the prefix colored by service.
pub fn format_line(source: &str, text: &str, width: usize) -> String {
    let service = source
        .rsplit_once('-')
        .map_or(source, |(service, _)| service);
    let prefix = format!("{source:<width$} |");
    format!("{} {text}", console::style(prefix).fg(color_for(service)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_newest_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("web-1.log");
        let mut log = LogFile::open(&path, 200).expect("open");
        for n in 0..100 {
            log.append(Stream::Out, &format!("line {n}"))
                .expect("append");
        }
        let lines = read_all(dir.path(), None);
        assert!(rotated(&path, 1).exists());
        assert!(!rotated(&path, KEEP_ROTATED + 1).exists());
        assert_eq!(lines.last().map(|line| line.text.as_str()), Some("line 99"));
        assert!(lines.len() < 100, "old lines are dropped: {}", lines.len());
        let texts: Vec<&str> = lines.iter().map(|line| line.text.as_str()).collect();
        let mut sorted = texts.clone();
        sorted.sort_by_key(|text| text.trim_start_matches("line ").parse::<u32>().unwrap_or(0));
        assert_eq!(texts, sorted, "rotated files come first, in order");
    }

    #[test]
    fn a_window_keeps_lines_since_a_time_then_the_last_few() {
        let lines: Vec<Line> = (1..=10)
            .map(|millis| Line {
                millis,
                source: "web-1".to_owned(),
                text: format!("line {millis}"),
            })
            .collect();
        let texts = |window: Window| -> Vec<String> {
            window
                .select(lines.clone())
                .into_iter()
                .map(|line| line.text)
                .collect()
        };
        assert_eq!(texts(Window::default()).len(), 10);
        assert_eq!(
            texts(Window {
                since: Some(8),
                tail: None
            }),
            ["line 8", "line 9", "line 10"]
        );
        assert_eq!(
            texts(Window {
                since: Some(3),
                tail: Some(2)
            }),
            ["line 9", "line 10"]
        );
        assert_eq!(
            texts(Window {
                since: None,
                tail: Some(0)
            }),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_latest_run_is_remembered() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(run_started(dir.path()), None);
        let before = now_millis();
        mark_run(dir.path()).expect("mark");
        let started = run_started(dir.path()).expect("a run");
        assert!(started >= before && started <= now_millis());
        assert!(
            sources(dir.path(), None).is_empty(),
            "the mark is no replica's log"
        );
    }

    #[test]
    fn merges_replicas_of_one_service_only_when_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        for source in ["web-1", "web-2", "api-1"] {
            let mut log = LogFile::open(&dir.path().join(format!("{source}.log")), ROTATE_BYTES)
                .expect("open");
            log.append(Stream::Err, &format!("hello from {source}"))
                .expect("append");
        }
        assert_eq!(read_all(dir.path(), None).len(), 3);
        let web: Vec<String> = read_all(dir.path(), Some("web"))
            .into_iter()
            .map(|line| line.source)
            .collect();
        assert_eq!(web.len(), 2);
        assert!(web.iter().all(|source| source.starts_with("web-")));
    }
}
