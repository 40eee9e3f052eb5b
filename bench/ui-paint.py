#!/usr/bin/env python3
"""Time page loads of a URL in headless Chromium through chromedriver (WebDriver, no packages).

Usage: python3 bench/ui-paint.py URL --runs 5 --rows 1000 [--chromedriver PATH] [--chromium PATH]

Each run is a fresh browser with a fresh profile, so nothing is cached between loads. Before
the page is requested, a script installed with `Page.addScriptToEvaluateOnNewDocument` notes
`performance.now()` when the document is parsed (DOMContentLoaded) with all ROWS rows of
`#matrix tbody` present, and again two animation frames later, once the frame holding the
whole table has been produced. After the load event the run reads the Performance API:
first-contentful-paint, largest-contentful-paint, the navigation entry's responseEnd and
loadEventEnd. Prints one JSON object per run to stdout, and a summary of medians last.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1600,1000",
]

# Installed before any of the page's own scripts run.
PROBE = """
(() => {
  const rows = %d;
  window.__bench = {};
  document.addEventListener("DOMContentLoaded", () => {
    const count = document.querySelectorAll("#matrix tbody tr").length;
    window.__bench.rows = count;
    window.__bench.parsed = performance.now();
    if (count !== rows) return;
    requestAnimationFrame(() => requestAnimationFrame(() => {
      window.__bench.painted = performance.now();
    }));
  });
  try {
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) window.__bench.lcp = entry.startTime;
    }).observe({ type: "largest-contentful-paint", buffered: true });
  } catch (error) {}
})();
"""

READ = """
const done = arguments[arguments.length - 1];
const deadline = performance.now() + 5000;
(function wait() {
  const b = window.__bench || {};
  const nav = performance.getEntriesByType("navigation")[0];
  if ((b.painted === undefined || !nav || nav.loadEventEnd === 0) && performance.now() < deadline) {
    setTimeout(wait, 10);
    return;
  }
  // A last frame so that largest-contentful-paint has been reported.
  requestAnimationFrame(() => setTimeout(() => {
    const fcp = performance.getEntriesByType("paint").find((e) => e.name === "first-contentful-paint");
    done({
      rows: b.rows, parsed: b.parsed, painted: b.painted, lcp: b.lcp,
      fcp: fcp ? fcp.startTime : null,
      response_end: nav ? nav.responseEnd : null,
      load_event_end: nav ? nav.loadEventEnd : null,
      transfer_bytes: nav ? nav.transferSize : null,
    });
  }, 50));
})();
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.load(answer).get("value")
    except urllib.error.HTTPError as error:
        sys.exit(f"error: chromedriver {method} {path}: {error.read().decode(errors='replace')}")


def wait_for_driver(base, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/status", timeout=1) as answer:
                if json.load(answer)["value"]["ready"]:
                    return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    sys.exit(f"error: chromedriver did not answer at {base} within {seconds} s")


def one_load(base, url, rows, chromium):
    profile = tempfile.mkdtemp(prefix="tier-bench-chromium.")
    try:
        capabilities = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {"binary": chromium, "args": FLAGS + [f"--user-data-dir={profile}"]},
        }}}
        session = call(base, "POST", "/session", capabilities)["sessionId"]
        try:
            prefix = f"/session/{session}"
            call(base, "POST", f"{prefix}/timeouts", {"script": 10000, "pageLoad": 30000})
            call(base, "POST", f"{prefix}/goog/cdp/execute",
                 {"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": PROBE % rows}})
            call(base, "POST", f"{prefix}/url", {"url": url})
            return call(base, "POST", f"{prefix}/execute/async", {"script": READ, "args": []})
        finally:
            call(base, "DELETE", f"/session/{session}")
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    port = free_port()
    driver = subprocess.Popen([args.chromedriver, f"--port={port}", "--allowed-ips=127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_driver(base)
        runs = []
        for index in range(args.runs):
            run = one_load(base, args.url, args.rows, args.chromium)
            if run.get("rows") != args.rows or run.get("painted") is None:
                sys.exit(f"error: run {index + 1} saw {run.get('rows')} rows, not {args.rows}: {run}")
            print(json.dumps(run))
            runs.append(run)
    finally:
        driver.terminate()
        try:
            driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            driver.kill()

    keys = ["fcp", "lcp", "parsed", "painted", "response_end", "load_event_end"]
    summary = {key: statistics.median(run[key] for run in runs if run.get(key) is not None)
               for key in keys if any(run.get(key) is not None for run in runs)}
    summary["max_painted"] = max(run["painted"] for run in runs)
    summary["transfer_bytes"] = runs[-1].get("transfer_bytes")
    summary["runs"] = len(runs)
    print(json.dumps({"summary": summary}))


if __name__ == "__main__":
    main()
