// gridwatch's auditors' page: the work queue, an anomaly's evidence chart, history and life
// cycle. Plain JavaScript, no build step. The token lives in sessionStorage (this tab only)
// and every API call sends it; all data is written with textContent, never as HTML.
//
// A link to /#anomaly=<id> (the auditors' Grafana dashboard makes them) opens that anomaly once a
// token is set: the token is never part of a link, and the fragment never reaches the server.
"use strict";

const TOKEN_KEY = "gridwatch.token";
const PAGE = 50;
let cursor = null;
let current = null;

const $ = (id) => document.getElementById(id);
const token = () => sessionStorage.getItem(TOKEN_KEY);

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

async function api(path, options) {
  const headers = Object.assign({ Authorization: "Bearer " + token() }, (options || {}).headers);
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    showToken();
  }
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try {
      const body = await response.json();
      if (body && body.error) message = body.error.message;
    } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

const tz = () => $("tz").value;

function localTime(iso) {
  if (!iso) return "";
  const offset = tz();
  const sign = offset[0] === "-" ? -1 : 1;
  const minutes = sign * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(4, 6)));
  const shifted = new Date(Date.parse(iso) + minutes * 60000).toISOString();
  return shifted.slice(0, 10) + " " + shifted.slice(11, 16);
}

const money = (kzt) => Math.round(kzt).toLocaleString("en-US") + " ₸";

function energy(wh) {
  if (wh >= 1e6) return (wh / 1e6).toLocaleString("en-US", { maximumFractionDigits: 1 }) + " MWh";
  return (wh / 1e3).toLocaleString("en-US", { maximumFractionDigits: 1 }) + " kWh";
}

const where = (a) => [a.region, a.node, a.meter, a.licence].filter(Boolean).join(" / ");

function showToken() {
  const has = Boolean(token());
  $("token-form").hidden = has;
  $("who").hidden = !has;
}

function queueQuery() {
  const params = new URLSearchParams({ sort: "priority", limit: String(PAGE) });
  for (const [name, id] of [["kind", "f-kind"], ["region", "f-region"], ["status", "f-status"], ["severity", "f-severity"]]) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

async function loadQueue(more) {
  const status = $("queue-status");
  const body = $("queue").tBodies[0];
  if (!token()) {
    status.textContent = "Enter a token to see the queue.";
    return;
  }
  const params = queueQuery();
  if (more && cursor) params.set("cursor", cursor);
  status.textContent = "Loading…";
  try {
    const page = await (await api("/api/v1/anomalies?" + params)).json();
    if (!more) body.replaceChildren();
    for (const a of page.items) body.appendChild(queueRow(a));
    cursor = page.next_cursor;
    $("more").hidden = !cursor;
    const count = body.rows.length;
    status.textContent = count === 0 ? "No anomaly matches." : count + " anomalies, the most money at stake first.";
  } catch (error) {
    status.textContent = "Could not load the queue: " + error.message;
  }
}

function queueRow(a) {
  const row = el("tr", undefined, { "data-id": a.id, tabindex: "0" });
  row.append(
    el("td", money(a.priority_kzt), { class: "num" }),
    el("td", a.kind.replace(/_/g, " ")),
    el("td", where(a)),
    el("td", localTime(a.started_at)),
    el("td", energy(a.energy_wh), { class: "num" }),
    el("td", money(a.loss_kzt), { class: "num" }),
    el("td", a.severity, { class: "sev sev-" + a.severity }),
    el("td", a.status, { class: "status" }),
  );
  row.addEventListener("click", () => openAnomaly(a.id));
  row.addEventListener("keydown", (e) => { if (e.key === "Enter") openAnomaly(a.id); });
  return row;
}

async function openAnomaly(id) {
  for (const row of $("queue").tBodies[0].rows) row.classList.toggle("selected", row.dataset.id === id);
  try {
    const detail = await (await api("/api/v1/anomalies/" + encodeURIComponent(id))).json();
    showDetail(detail);
    // The address now names the open anomaly: a link to share, without the token.
    history.replaceState(null, "", "#anomaly=" + encodeURIComponent(detail.id));
    await loadChart(detail.id);
  } catch (error) {
    $("queue-status").textContent = "Could not open " + id + ": " + error.message;
  }
}

// The anomaly the address names (#anomaly=<id>), if any.
function linkedAnomaly() {
  const id = new URLSearchParams(location.hash.slice(1)).get("anomaly");
  return id && id.length <= 100 ? id : null;
}

// Opens the linked anomaly, or says a token is needed first (the token form is shown then).
async function openLinked() {
  const id = linkedAnomaly();
  if (!id || (current && current.id === id && !$("detail").hidden)) return;
  if (!token()) {
    $("queue-status").textContent = "Enter a token to open anomaly " + id + ".";
    return;
  }
  await openAnomaly(id);
  if (!$("detail").hidden && $("detail").dataset.id === id) $("detail").scrollIntoView();
}

function showDetail(a) {
  current = a;
  $("detail").hidden = false;
  $("detail").dataset.id = a.id;
  $("detail-title").textContent = a.kind.replace(/_/g, " ") + " at " + where(a) + " (" + a.status + ")";
  $("detail-summary").textContent = (a.evidence && a.evidence.summary) || "";
  const facts = $("detail-facts");
  facts.replaceChildren();
  const add = (term, value) => { facts.append(el("dt", term), el("dd", value)); };
  add("Id", a.id);
  add("Started", localTime(a.started_at));
  add("Ended", a.ended_at ? localTime(a.ended_at) : "still going on");
  add("Detected", localTime(a.detected_at));
  add("Energy", energy(a.energy_wh));
  add("Loss", money(a.loss_kzt));
  add("Confidence", Math.round(a.confidence * 100) + " %");
  add("At stake (loss × confidence)", money(a.priority_kzt));
  add("Severity", a.severity);
  add("Suspects", a.suspects.length ? a.suspects.join(", ") : "none named");
  showHistory(a.history);
  const to = $("to");
  to.replaceChildren();
  for (const status of a.next_statuses) to.appendChild(el("option", status, { value: status }));
  $("transition").hidden = a.next_statuses.length === 0;
  $("transition-result").textContent = "";
  const row = document.querySelector('#queue tr[data-id="' + CSS.escape(a.id) + '"] td.status');
  if (row) row.textContent = a.status;
}

function showHistory(entries) {
  const body = $("history").tBodies[0];
  body.replaceChildren();
  for (const h of entries) {
    const what = h.action === "transition" ? h.from + " → " + h.to : h.action + (h.to ? " (" + h.to + ")" : "");
    const row = el("tr", undefined, { "data-seq": String(h.seq) });
    row.append(el("td", h.seq), el("td", localTime(h.at)), el("td", h.actor), el("td", what), el("td", h.note || ""));
    body.appendChild(row);
  }
}

async function loadChart(id) {
  const chart = $("chart");
  chart.replaceChildren(el("p", "Drawing the evidence…"));
  try {
    const params = new URLSearchParams({ tz: tz() });
    const text = await (await api("/api/v1/anomalies/" + encodeURIComponent(id) + "/evidence.svg?" + params)).text();
    const doc = new DOMParser().parseFromString(text, "image/svg+xml");
    const svg = doc.documentElement;
    if (svg.nodeName !== "svg") throw new Error("the chart could not be read");
    svg.setAttribute("role", "img");
    chart.replaceChildren(document.importNode(svg, true));
  } catch (error) {
    chart.replaceChildren(el("p", "No chart: " + error.message));
  }
}

async function transition(event) {
  event.preventDefault();
  if (!current) return;
  const result = $("transition-result");
  const body = { to: $("to").value, note: $("note").value };
  result.textContent = "Recording…";
  try {
    const response = await api("/api/v1/anomalies/" + encodeURIComponent(current.id) + "/transitions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const detail = await response.json();
    showDetail(detail);
    $("note").value = "";
    result.textContent = "Recorded: now " + detail.status + ".";
  } catch (error) {
    result.textContent = "Refused: " + error.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    showToken();
    loadQueue(false).then(openLinked);
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showToken();
    $("queue").tBodies[0].replaceChildren();
    $("detail").hidden = true;
    current = null;
  });
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); loadQueue(false); });
  $("more").addEventListener("click", () => loadQueue(true));
  $("transition").addEventListener("submit", transition);
  $("tz").addEventListener("change", () => { if (current) { showDetail(current); loadChart(current.id); } });
  window.addEventListener("hashchange", openLinked);
  showToken();
  loadQueue(false).then(openLinked);
});
