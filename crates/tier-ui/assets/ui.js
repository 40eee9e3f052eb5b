// tier ui: live updates, filtering, keys and actions on top of pages that work without it.
"use strict";

// The launch token arrives once in the URL and is kept for this tab; only then can the page
// change anything.
const params = new URLSearchParams(location.search);
if (params.get("token")) {
  sessionStorage.setItem("tier-token", params.get("token"));
  history.replaceState(null, "", location.pathname);
}
const token = sessionStorage.getItem("tier-token");
if (token) document.body.classList.add("can-act");

function ago(ms) {
  const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (seconds < 60) return seconds + " s ago";
  if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
  if (seconds < 86400) return Math.round(seconds / 3600) + " h ago";
  return Math.round(seconds / 86400) + " d ago";
}
function times(root) {
  for (const time of root.querySelectorAll("time[data-unix-ms]")) {
    time.title = time.textContent.includes("UTC") ? time.textContent : time.title;
    time.textContent = ago(Number(time.dataset.unixMs));
  }
}
times(document);
setInterval(() => times(document), 30000);

// Live: the server sends what changed; no polling from here.
const live = document.getElementById("live");
const events = new EventSource("/api/events");
// A browser gives one host six connections; a page left behind must give its streams back.
const streams = [events];
addEventListener("pagehide", () => streams.forEach((stream) => stream.close()));
events.onopen = () => live && live.classList.remove("offline");
events.onerror = () => live && live.classList.add("offline");
events.onmessage = (message) => {
  const change = JSON.parse(message.data);
  if (change.reload) { location.reload(); return; }
  for (const [id, cell] of Object.entries(change.cells || {})) {
    const element = document.getElementById(id);
    if (!element) continue;
    element.className = cell.class;
    element.title = cell.title;
    element.innerHTML = cell.html;
    element.dataset.health = cell.health;
  }
  const graphEnv = document.body.classList.contains("graph-page") && document.body.dataset.env;
  for (const [id, cell] of Object.entries(change.cells || {})) {
    const [env, service] = id.split(".");
    if (env === graphEnv) paintNode(service, cell.health);
  }
  for (const [env, html] of Object.entries(change.columns || {})) {
    const element = document.getElementById("env-" + env);
    if (!element) continue;
    // An environment's page lists its flags and config: a new store revision offers a reload
    // (not forced: the user may be in the middle of a change).
    const revision = (text) => (text.match(/config r(\d+)/) || [])[1];
    const moved = revision(element.textContent) !== revision(html.replace(/<[^>]+>/g, ""));
    element.innerHTML = html;
    times(element);
    const notice = document.getElementById("stale");
    if (moved && notice && document.body.dataset.env === env) notice.hidden = false;
  }
  applyFilter();
};

// Filtering by name and by health.
const filter = document.getElementById("filter");
const status = document.getElementById("status");
function applyFilter() {
  if (!filter) return;
  const words = filter.value.trim().toLowerCase();
  const unhealthy = status && status.value === "unhealthy";
  for (const row of document.querySelectorAll("#matrix tbody tr")) {
    const named = !words || row.dataset.service.includes(words);
    const bad = row.querySelector(".cell.failing, .cell.degraded, .cell.starting, .cell.stopped");
    row.classList.toggle("hidden", !(named && (!unhealthy || bad)));
  }
}
if (filter) filter.addEventListener("input", applyFilter);

// Sorting rows: by name, or the worst cell first.
const sort = document.getElementById("sort");
const badness = { failing: 5, degraded: 4, starting: 3, stopped: 2 };
function rowBadness(row) {
  let worst = 0;
  for (const cell of row.querySelectorAll("td.cell")) {
    for (const [name, weight] of Object.entries(badness)) {
      if (cell.classList.contains(name)) worst = Math.max(worst, weight);
    }
    if (cell.classList.contains("drifted")) worst = Math.max(worst, 1);
  }
  return worst;
}
function applySort() {
  const body = document.querySelector("#matrix tbody");
  if (!body || !sort) return;
  const rows = [...body.rows];
  rows.sort((a, b) => (sort.value === "health" ? rowBadness(b) - rowBadness(a) : 0)
    || a.dataset.service.localeCompare(b.dataset.service));
  for (const row of rows) body.appendChild(row);
}
if (sort) sort.addEventListener("change", applySort);
if (status) status.addEventListener("change", applyFilter);

// Cells take focus only when moved to, so the page need not carry ten thousand tabindexes.
function focusCell(cell) {
  cell.tabIndex = -1;
  cell.focus();
}

// Keys: "/" to filter, arrows to move between cells, Enter to open the service.
document.addEventListener("keydown", (event) => {
  if (event.key === "/" && document.activeElement !== filter && filter) {
    event.preventDefault();
    filter.focus();
    return;
  }
  const cell = document.activeElement;
  if (!cell || cell.tagName !== "TD" || !cell.closest("#matrix")) {
    if (event.key.startsWith("Arrow") && document.activeElement === document.body) {
      const first = document.querySelector("#matrix tbody tr:not(.hidden) td");
      if (first) { event.preventDefault(); focusCell(first); }
    }
    return;
  }
  const row = cell.parentElement;
  const column = Array.prototype.indexOf.call(row.children, cell);
  let target = null;
  const sibling = (start, step) => {
    let at = start;
    do { at = step > 0 ? at.nextElementSibling : at.previousElementSibling; } while (at && at.classList.contains("hidden"));
    return at;
  };
  if (event.key === "ArrowRight") target = cell.nextElementSibling;
  if (event.key === "ArrowLeft" && column > 1) target = cell.previousElementSibling;
  if (event.key === "ArrowDown") { const next = sibling(row, 1); target = next && next.children[column]; }
  if (event.key === "ArrowUp") { const next = sibling(row, -1); target = next && next.children[column]; }
  if (event.key === "Enter") openCell(cell);
  if (target) { event.preventDefault(); focusCell(target); }
});

// A cell opens its service in that environment.
function openCell(cell) {
  const [env, service] = cell.id.split(".");
  if (env && service) location.href = "/env/" + env + "/service/" + service;
}
for (const cell of document.querySelectorAll("#matrix td.cell[id]")) {
  cell.addEventListener("click", () => openCell(cell));
}

// A service's page follows its output as it is written.
const logs = document.getElementById("logs");
if (logs && document.body.dataset.service) {
  const { env, service } = document.body.dataset;
  const tail = new EventSource("/api/env/" + env + "/service/" + service + "/logs");
  streams.push(tail);
  tail.onmessage = (message) => {
    logs.append(message.data + "\n");
    while (logs.childNodes.length > 2000) logs.removeChild(logs.firstChild);
    logs.scrollTop = logs.scrollHeight;
  };
}

// The graph's services take their cells' health.
function paintNode(service, health) {
  for (const node of document.querySelectorAll("g.service[data-service='" + service + "']")) {
    node.setAttribute("class", "service " + String(health).replace(" ", "-"));
  }
}
const healthData = document.getElementById("health");
if (healthData) {
  for (const [service, health] of Object.entries(JSON.parse(healthData.textContent))) paintNode(service, health);
}

// Actions, on an environment's page: each needs the token, and a protected environment's name.
const message = document.getElementById("message");
function say(text, failed) {
  if (!message) return;
  message.textContent = text;
  message.classList.toggle("error", !!failed);
}
async function act(path, body) {
  const env = document.body.dataset.env;
  if (document.body.dataset.protected === "true") {
    const typed = prompt(env + " is protected. Type its name to go on:");
    if (typed === null) { say("nothing was changed", true); return; }
    body.confirm = typed;
  }
  const answer = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Tier-Token": token || "" },
    body: JSON.stringify(body),
  });
  const result = await answer.json().catch(() => ({ error: answer.statusText }));
  if (answer.ok) {
    say("done");
    setTimeout(() => location.reload(), 300);
  } else {
    say(result.error || answer.statusText, true);
  }
}
for (const button of document.querySelectorAll("button[data-action]")) {
  button.addEventListener("click", () => {
    const env = document.body.dataset.env;
    if (button.dataset.action === "rollback") {
      say("rolling back to revision " + button.dataset.to + "…");
      act("/api/env/" + env + "/rollback", { to: Number(button.dataset.to) });
    }
    if (button.dataset.action === "config-rollback") {
      say("putting " + button.dataset.key + " back to revision " + button.dataset.to + "…");
      act("/api/env/" + env + "/config/rollback", { key: button.dataset.key, to: Number(button.dataset.to) });
    }
    if (button.dataset.action === "flag-percent") {
      const percent = Number(button.parentElement.querySelector("input.percent").value);
      act("/api/env/" + env + "/flags/" + button.dataset.flag, { value: { percent } });
    }
    if (button.dataset.action === "flag") {
      const value = button.dataset.value === "" ? null : button.dataset.value === "true";
      act("/api/env/" + env + "/flags/" + button.dataset.flag, { value });
    }
  });
}
