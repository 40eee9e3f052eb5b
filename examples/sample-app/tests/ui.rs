//! `tier ui` in a real headless Chromium (Debian's chromium and chromium-driver), with the
//! sample app's dev and stage running under real agents: the matrix shows both, a killed
//! replica's cell changes and recovers, a flag toggled in the page changes the sample page, dev
//! rolls back from the page, a protected environment's action needs its name typed in, and a
//! request without the launch token changes nothing.

use std::time::Duration;

use tier_test::browser::{Browser, Locator};
use tier_test::{Stream, TestContext, http_get, wait_for};

/// Up to this long for anything the page shows after a change: the collector reads once a
/// second, and a loaded machine is slower.
const SHOWN: Duration = Duration::from_secs(30);

/// The sample app with dev and stage exposed on free ports, stage protected.
fn context() -> (TestContext, u16, u16) {
    let mut context = TestContext::sample_app();
    let (dev, stage) = (context.free_port(), context.free_port());
    context.write(
        "envs/dev.toml",
        &format!("[services.frontend]\nexpose = {dev}\n"),
    );
    context.write(
        "envs/stage.toml",
        &format!("[services.frontend]\nexpose = {stage}\n\n[services.backend]\nreplicas = 2\n"),
    );
    // The backend's source with a real lockfile, so each apply records what it locks.
    let project = context
        .read("tier.toml")
        .replacen(
            "[environments.stage]\n",
            "[environments.stage]\nprotected = true\n",
            1,
        )
        .replacen("source = \".\"", "source = \"backend\"", 1);
    // dev-eu extends dev: the matrix groups it under dev. It is never started.
    let project =
        format!("{project}\n[environments.dev-eu]\nextends = \"dev\"\nregion = \"eu-west-1\"\n");
    context.write("tier.toml", &project);
    let lockfile = std::fs::read_to_string(tier_test::repo_root().join("Cargo.lock"))
        .expect("the repository's Cargo.lock");
    context.write("backend/Cargo.lock", &lockfile);
    (context, dev, stage)
}

/// The pid of the first replica of a service, from `tier status --output json`.
fn replica_pid(context: &TestContext, env: &str, service: &str) -> i32 {
    let status = context.json(&["status", env]);
    let services = status[0]["status"]["services"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let found = services
        .iter()
        .find(|entry| entry["name"] == service)
        .unwrap_or_else(|| panic!("{service} in {env}'s status: {status}"));
    found["replicas"][0]["pid"].as_i64().expect("a pid") as i32
}

/// `curl` as a user would: the status code it got.
fn curl(args: &[&str]) -> String {
    #[expect(
        clippy::disallowed_methods,
        reason = "the test runs curl as a user would"
    )]
    let output = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("run curl (apt-get install -y curl)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The status code of a POST of `body`, with the token when given.
fn curl_post(url: &str, token: Option<&str>, body: &str) -> String {
    let mut args = vec![
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data",
        body,
    ];
    let header = token.map(|token| format!("X-Tier-Token: {token}"));
    if let Some(header) = &header {
        args.extend(["-H", header.as_str()]);
    }
    args.push(url);
    curl(&args)
}

/// Clicks the element `css` finds, or fails the test naming `what`.
async fn click(client: &tier_test::browser::Client, css: &str, what: &str) {
    let element = client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("{what} ({css}): {error}"));
    element
        .click()
        .await
        .unwrap_or_else(|error| panic!("click {what}: {error}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_the_environments_and_changes_need_the_token() {
    let (context, dev_port, _) = context();
    let _dev = context.down_on_drop("dev");
    let _stage = context.down_on_drop("stage");
    context.tier(&["apply", "dev"]).success();
    context
        .tier(&["apply", "dev", "--set", "services.backend.replicas=2"])
        .success();
    context
        .tier(&["apply", "stage", "--confirm", "stage"])
        .success();

    let mut ui = context.spawn(&["ui", "--listen", "127.0.0.1:0"]);
    let url = ui.wait_for_line(Stream::Stdout, "http://127.0.0.1:", Duration::from_secs(20));
    let base = url.split("/?token=").next().unwrap_or_default().to_owned();
    let token = url.split("token=").nth(1).unwrap_or_default().to_owned();
    assert_eq!(token.len(), 32, "a 128-bit token in {url}");

    // Without the token nothing changes: 403, before and after the page is open.
    let body = r#"{"value": true}"#;
    let flag = format!("{base}/api/env/dev/flags/show-replica");
    assert_eq!(curl_post(&flag, None, body), "403");
    assert_eq!(curl_post(&flag, Some("not-the-token"), body), "403");
    assert_eq!(
        curl_post(
            &format!("{base}/api/env/dev/rollback"),
            None,
            r#"{"to": 1}"#
        ),
        "403"
    );
    assert!(!http_get(dev_port, "/").1.contains("Served by"));
    // A page elsewhere that points a name of its own at 127.0.0.1 gets nothing.
    assert_eq!(curl(&[&base]), "200");
    assert_eq!(curl(&["-H", "Host: attacker.example", &base]), "403");

    let browser = Browser::start(900, 320).await;
    let client = &browser.client;
    client.goto(&url).await.expect("open the dashboard");

    // The matrix: both running environments, each service's cell running.
    let headers = browser
        .eval("[...document.querySelectorAll('th.env')].map(th => th.dataset.env)")
        .await;
    assert_eq!(
        headers,
        serde_json::json!(["dev", "dev-eu", "stage", "prod"])
    );
    let groups = browser
        .eval("[...document.querySelectorAll('tr.groups th.group')].map(th => [th.textContent, th.colSpan])")
        .await;
    assert_eq!(
        groups,
        serde_json::json!([["dev", 2], ["", 1], ["", 1]]),
        "dev-eu under dev"
    );
    for cell in [
        "dev.backend",
        "dev.frontend",
        "stage.backend",
        "stage.frontend",
    ] {
        browser
            .wait_until(
                &format!("document.getElementById('{cell}').classList.contains('running')"),
                SHOWN,
                &format!("{cell} running"),
            )
            .await;
    }
    let stage_ready = browser
        .eval("document.getElementById('stage.backend').textContent")
        .await;
    assert!(
        stage_ready.as_str().unwrap_or_default().contains("2/2"),
        "{stage_ready}"
    );
    if let Ok(path) = std::env::var("TIER_UI_SCREENSHOT") {
        let png = client.screenshot().await.expect("a screenshot");
        std::fs::write(&path, png).expect("write the screenshot");
    }

    // A backend replica killed: its cell counts the restart and comes back to running.
    let pid = replica_pid(&context, "dev", "backend");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill a backend replica");
    browser
        .wait_until(
            "document.querySelector('#dev\\\\.backend .restarts') !== null",
            SHOWN,
            "the killed replica's restart in its cell",
        )
        .await;
    browser
        .wait_until(
            "document.getElementById('dev.backend').classList.contains('running')",
            SHOWN,
            "dev.backend running again",
        )
        .await;

    // A config file edited behind the agent's back shows as drift in its cell.
    let config_dir = context.path().join(".tier/dev/config");
    let edited = std::fs::read_dir(&config_dir)
        .expect("dev's config files")
        .filter_map(Result::ok)
        .find(|entry| entry.file_name().to_string_lossy().starts_with("frontend-"))
        .expect("the frontend's config file")
        .path();
    std::fs::write(&edited, "{}").expect("edit the config file");
    browser
        .wait_until(
            "document.getElementById('dev.frontend').classList.contains('drifted')",
            SHOWN,
            "the edited config file as drift in dev.frontend",
        )
        .await;
    let title = browser
        .eval("document.getElementById('dev.frontend').title")
        .await;
    assert!(
        title.as_str().unwrap_or_default().contains("config"),
        "{title}"
    );

    // A flag toggled from dev's page changes the sample page.
    client
        .goto(&format!("{base}/env/dev"))
        .await
        .expect("open dev");
    click(
        client,
        "button[data-flag='show-replica'][data-value='true']",
        "the flag's on button",
    )
    .await;
    wait_for(SHOWN, "the page to name the replica", || {
        http_get(dev_port, "/").1.contains("Served by")
    });

    // Dev rolls back to revision 1 from its history.
    client
        .goto(&format!("{base}/env/dev"))
        .await
        .expect("open dev");
    click(
        client,
        "button[data-action='rollback'][data-to='1']",
        "the rollback button of revision 1",
    )
    .await;
    wait_for(Duration::from_secs(60), "dev to roll back", || {
        let history = context.json(&["history", "dev"]);
        history.as_array().is_some_and(|revisions| {
            revisions.iter().any(|revision| {
                revision["origin"]["kind"] == "rollback"
                    && revision["outcome"]["status"] == "succeeded"
            })
        })
    });
    let status = context.json(&["status", "dev"]);
    let backend = &status[0]["status"]["services"][0];
    assert_eq!(
        (backend["name"].as_str(), backend["desired"].as_u64()),
        (Some("backend"), Some(1))
    );

    // A service's page: its replicas, its resolved values with where each came from, and its
    // output, which follows a restarted replica's first line as it is written.
    client
        .goto(&format!("{base}/env/stage/service/backend"))
        .await
        .expect("open the service");
    // The agent may be busy for a moment (a replica restarting): the page is read again.
    let mut replicas = serde_json::Value::Null;
    for _ in 0..30 {
        replicas = browser
            .eval("document.querySelectorAll('table.replicas tbody tr').length")
            .await;
        if replicas == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        client
            .goto(&format!("{base}/env/stage/service/backend"))
            .await
            .expect("open the service again");
    }
    assert_eq!(replicas, 2, "stage's two backend replicas");
    let origin = browser
        .eval("[...document.querySelectorAll('table.values tr')].find(tr => tr.cells[0].textContent === 'replicas').cells[2].textContent")
        .await;
    assert!(
        origin
            .as_str()
            .unwrap_or_default()
            .contains("envs/stage.toml"),
        "{origin}"
    );
    let before = browser
        .eval("document.getElementById('logs').textContent.split('listening on').length")
        .await;
    let pid = replica_pid(&context, "stage", "backend");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill a stage backend replica");
    browser
        .wait_until(
            &format!("document.getElementById('logs').textContent.split('listening on').length > {before}"),
            SHOWN,
            "the restarted replica's output in the live tail",
        )
        .await;

    // The diff of dev and stage, with where each side's value comes from.
    client
        .goto(&format!("{base}/diff?left=dev&right=stage"))
        .await
        .expect("open the diff");
    let row = browser
        .eval("[...document.querySelectorAll('table.diff tbody tr')].find(tr => tr.cells[0].textContent === 'services.backend.replicas').textContent")
        .await;
    assert!(
        row.as_str().unwrap_or_default().contains("envs/stage.toml"),
        "{row}"
    );

    // Dev's dependency graph: both services in their waves, each coloured by its health.
    client
        .goto(&format!("{base}/env/dev/graph"))
        .await
        .expect("open the graph");
    browser
        .wait_until(
            "document.querySelector(\"g.service[data-service='backend']\").classList.contains('running')",
            SHOWN,
            "the backend's node coloured running",
        )
        .await;
    let waves = browser
        .eval("document.querySelector(\"g.service[data-service='frontend']\").dataset.wave")
        .await;
    assert_eq!(waves, "2", "the frontend waits for the backend");

    // Libraries: where a library the backend locks runs, from the deployed bill of materials.
    client
        .goto(&format!("{base}/libraries?library=serde_json"))
        .await
        .expect("open libraries");
    let environments = browser
        .eval("[...new Set([...document.querySelectorAll('table.libraries tbody tr')].map(tr => tr.cells[0].textContent))]")
        .await;
    assert_eq!(environments, serde_json::json!(["dev", "stage"]));

    // A config key's history, and a rollback to its first value from the page. The header
    // follows the store's revision live.
    client
        .goto(&format!("{base}/env/dev"))
        .await
        .expect("open dev");
    let revision_shown = "Number((document.getElementById('env-dev').textContent.match(/config r(\\d+)/) || [0, 0])[1])";
    browser
        .wait_until(
            &format!("{revision_shown} > 0"),
            SHOWN,
            "dev's config revision",
        )
        .await;
    let before = browser.eval(revision_shown).await;
    context
        .tier(&["config", "set", "dev", "greeting", "hello"])
        .success();
    context
        .tier(&["config", "set", "dev", "greeting", "bonjour"])
        .success();
    browser
        .wait_until(
            &format!("{revision_shown} > {before}"),
            SHOWN,
            "the new config revision in the header",
        )
        .await;
    let stale = "!document.getElementById('stale').hidden";
    browser
        .wait_until(stale, SHOWN, "the offer to read the page again")
        .await;
    client
        .goto(&format!("{base}/env/dev"))
        .await
        .expect("open dev");
    click(
        client,
        "table.config tr[data-key='greeting'] a",
        "the greeting key",
    )
    .await;
    browser
        .wait_until(
            "document.querySelectorAll('table.key-history tbody tr').length === 2",
            SHOWN,
            "two changes",
        )
        .await;
    click(
        client,
        "button[data-action='config-rollback']",
        "the rollback to the first value",
    )
    .await;
    wait_for(SHOWN, "greeting back to hello", || {
        context
            .tier(&["config", "get", "dev", "greeting"])
            .stdout
            .trim()
            == "hello"
    });

    // Stage is protected: refused until its name is typed in.
    client
        .goto(&format!("{base}/env/stage"))
        .await
        .expect("open stage");
    let on = Locator::Css("button[data-flag='show-replica'][data-value='true']");
    client
        .find(on)
        .await
        .expect("stage's on button")
        .click()
        .await
        .expect("click");
    client
        .send_alert_text("dev")
        .await
        .expect("type a wrong name");
    client.accept_alert().await.expect("answer the prompt");
    browser
        .wait_until(
            "document.getElementById('message').textContent.includes('protected')",
            SHOWN,
            "the refusal of a wrong name",
        )
        .await;
    let value = browser
        .eval("document.querySelector(\"tr[data-flag='show-replica'] .value\").textContent")
        .await;
    assert_eq!(value, "false", "nothing changed in stage");
    client
        .find(on)
        .await
        .expect("stage's on button")
        .click()
        .await
        .expect("click");
    client.send_alert_text("stage").await.expect("type stage");
    client.accept_alert().await.expect("answer the prompt");
    browser
        .wait_until(
            "document.querySelector(\"tr[data-flag='show-replica'] .value\")?.textContent === 'true'",
            SHOWN,
            "stage's flag on once its name was typed",
        )
        .await;

    // A service added to tier.toml shows up: the page reloads with its row.
    client.goto(&url).await.expect("open the matrix");
    let project = context.read("tier.toml")
        + "\n[services.worker]\ncommand = [\"target/release/sample-backend\"]\nport = 8095\n";
    context.write("tier.toml", &project);
    browser
        .wait_until(
            "document.querySelector(\"tr[data-service='worker']\") !== null",
            SHOWN,
            "the new service's row",
        )
        .await;

    browser.close().await;
    drop(ui);
}
