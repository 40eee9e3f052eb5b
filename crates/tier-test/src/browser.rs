//! A real headless Chromium, driven over WebDriver: Debian's `chromium` and `chromium-driver`
//! (`/usr/bin/chromium`, `/usr/bin/chromedriver`), which `.ci/run` installs. ChromeDriver runs
//! in a process group of its own on a free port of 127.0.0.1 and the group (the browser
//! included) is killed when the [`Browser`] is dropped, so a failing test leaves no browser
//! behind.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

pub use fantoccini::{Client, Locator};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    pub client: Client,
    driver: std::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium with an empty profile, at `width`×`height`.
    /// The flags keep Chromium from reaching for the network this machine does not have.
    pub async fn start(width: u32, height: u32) -> Browser {
        assert!(
            Path::new(CHROMEDRIVER).is_file() && Path::new(CHROMIUM).is_file(),
            "the browser tests need Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver"
        );
        let port = crate::free_port();
        #[expect(
            clippy::disallowed_methods,
            reason = "tests start a real ChromeDriver; tier_local::spawn is for replicas"
        )]
        let mut command = std::process::Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        let driver = command.spawn().expect("start chromedriver");
        let profile = tempfile::Builder::new()
            .prefix("tier-chromium-")
            .tempdir()
            .expect("a profile directory");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last = String::new();
        // ChromeDriver listens a moment after it starts.
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match fantoccini::ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        _profile: profile,
                    };
                }
                Err(error) => last = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut browser_less = driver;
        let _ = browser_less.kill();
        panic!("chromedriver on port {port} did not start a browser: {last}");
    }

    /// Ends the session (ChromeDriver closes the browser), then stops ChromeDriver.
    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        self.kill();
    }

    fn kill(&mut self) {
        if let Ok(pid) = i32::try_from(self.driver.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.driver.wait();
    }

    /// Waits until `script` (a JavaScript expression) is true in the page, for at most
    /// `within`; fails the test with `what` when it never is.
    pub async fn wait_until(&self, script: &str, within: Duration, what: &str) {
        let deadline = std::time::Instant::now() + within;
        loop {
            let answer = self
                .client
                .execute(&format!("return !!({script});"), Vec::new())
                .await;
            if matches!(answer, Ok(serde_json::Value::Bool(true))) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what} did not happen within {within:?} (last answer: {answer:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of a JavaScript expression in the page.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(&format!("return ({script});"), Vec::new())
            .await
            .unwrap_or_else(|error| panic!("{script}: {error}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}
