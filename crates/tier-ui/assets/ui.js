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
  for (const [env, html] of Object.entries(change.columns || {})) {
    const element = document.getElementById("env-" + env);
    if (element) { element.innerHTML = html; times(element); }
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
if (status) status.addEventListener("change", applyFilter);

// Keys: "/" to filter, arrows to move between cells, Enter to open the environment.
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
      if (first) { event.preventDefault(); first.focus(); }
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
  if (event.key === "Enter") {
    const env = cell.id.split(".")[0];
    location.href = "/env/" + env;
  }
  if (target) { event.preventDefault(); target.focus(); }
});

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
    if (button.dataset.action === "flag") {
      const value = button.dataset.value === "" ? null : button.dataset.value === "true";
      act("/api/env/" + env + "/flags/" + button.dataset.flag, { value });
    }
  });
}
