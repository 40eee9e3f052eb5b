//! `tier ui` of a kubernetes environment, read from the fake API server.

use super::Setup;

/// `tier ui` reads a kubernetes environment from its cluster: its revision from the records in
/// the namespace, each cell from the Deployment (the fake API server stands in for the cluster).
#[test]
fn the_dashboard_shows_a_kubernetes_environment_from_its_cluster() {
    let setup = Setup::shop("prod-admin");
    setup.run(&["apply", "prod"], 0);
    let mut ui = setup.context.spawn(&["ui", "--listen", "127.0.0.1:0"]);
    let url = ui.wait_for_line(
        tier_test::Stream::Stdout,
        "http://127.0.0.1:",
        std::time::Duration::from_secs(20),
    );
    let port: u16 = url
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("a port in the URL");
    let (status, body) = tier_test::http_get(port, "/api/matrix");
    assert_eq!(status, 200, "{body}");
    let matrix: serde_json::Value = serde_json::from_str(&body).expect("the matrix as JSON");
    let prod = matrix["environments"]
        .as_array()
        .and_then(|columns| columns.iter().find(|column| column["name"] == "prod"))
        .cloned()
        .expect("prod's column");
    assert_eq!(prod["runtime"], "kubernetes");
    assert_eq!(prod["running"], true, "{prod}");
    assert_eq!(prod["deployed"]["revision"], 1, "{prod}");
    let api = &matrix["cells"]["prod"]["api"];
    assert_eq!(
        (api["health"].as_str(), api["ready"].as_u64()),
        (Some("running"), Some(3)),
        "{api}"
    );
    assert_eq!(matrix["cells"]["dev"]["api"]["health"], "not-deployed");
    // The api's page shows its pods' output, read through the API server.
    setup.fake.log("shop-prod", "api-1-0", "listening on :8080");
    let (status, page) = tier_test::http_get(port, "/env/prod/service/api");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("api-1-0 | listening on :8080"), "{page}");
    // A Deployment deleted behind tier's back: its cell fails.
    setup.fake.remove("deployments", "shop-prod", "worker");
    tier_test::wait_for(
        std::time::Duration::from_secs(20),
        "worker's cell to fail",
        || {
            let (_, body) = tier_test::http_get(port, "/api/matrix");
            serde_json::from_str::<serde_json::Value>(&body)
                .is_ok_and(|matrix| matrix["cells"]["prod"]["worker"]["health"] == "failing")
        },
    );
    // Ctrl-C stops it even while a page follows its events.
    let mut events = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    std::io::Write::write_all(
        &mut events,
        b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    .expect("follow the events");
    let mut first = [0_u8; 64];
    let read = std::io::Read::read(&mut events, &mut first).expect("the events' first bytes");
    assert!(String::from_utf8_lossy(&first[..read]).starts_with("HTTP/1.1 200"));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(ui.id()).expect("a pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("interrupt tier ui");
    assert_eq!(
        ui.wait(std::time::Duration::from_secs(10)),
        0,
        "tier ui exits on Ctrl-C"
    );
}
