//! `tier ui`: the dashboard (tier-ui) served until Ctrl-C or SIGTERM.

use super::{CommandResult, Threads, fail, runtime, stop_on_signal};
use crate::args::Global;
use crate::output;

pub fn ui(global: &Global, listen: &str, open: bool) -> CommandResult {
    let workspace = super::workspace(global)?;
    let token = tier_ui::new_token().map_err(fail)?;
    let runtime = runtime(Threads::AllCores)?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|error| fail(format!("cannot listen on {listen}: {error}")))?;
        let address = listener
            .local_addr()
            .map_err(|error| fail(format!("cannot listen on {listen}: {error}")))?;
        if !address.ip().is_loopback() {
            output::hint(&format!(
                "{address} is reachable from other machines; anyone with the token can change environments"
            ));
        }
        let url = format!("http://{address}/?token={token}");
        eprintln!(
            "serving the dashboard of {} on http://{address}/ (Ctrl-C stops it)",
            workspace.project().name()
        );
        output::stdout_line(&url);
        if open {
            open_browser(&url);
        }
        let shutdown = tokio_util::sync::CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        tier_ui::serve(listener, workspace, token, shutdown)
            .await
            .map_err(|error| fail(format!("the dashboard stopped: {error}")))
    })
}

/// `xdg-open URL` (or `open` on macOS) in the background; a machine without one just has the
/// printed URL.
fn open_browser(url: &str) {
    let Some(opener) = ["xdg-open", "open"]
        .into_iter()
        .find(|tool| tier_local::spawn::on_path(tool))
    else {
        output::hint("no xdg-open here: open the URL above in a browser");
        return;
    };
    let url = url.to_owned();
    std::thread::spawn(move || {
        let _ = tier_local::spawn::run_to_end(opener, &[url.as_str()], std::path::Path::new("."));
    });
}
