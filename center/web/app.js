// edge112 center dashboard: fetches /api/v1/..., redraws on server-sent "change" events.
// No libraries, no CDN: the chart is SVG built here. Data is only ever set as text.
"use strict";

const CATEGORIES = ["darurat", "informasi", "prank", "ghost", "terputus", "unclassified"];
const CATEGORY_LABEL = {
  darurat: "darurat", informasi: "informasi", prank: "prank", ghost: "ghost",
  terputus: "terputus", unclassified: "belum",
};
const COLORS = {
  darurat: "#c62828", informasi: "#1565c0", prank: "#ef6c00", ghost: "#6a1b9a",
  terputus: "#546e7a", unclassified: "#b0bec5",
};
const CHART_REGIONS = 15;
const REFRESH_DELAY_MS = 250;

const $ = (id) => document.getElementById(id);
let knownCalls = null;  // call ids already shown, to mark new ones
let refreshTimer = null;

function periodQuery() {
  // Presets ask the server for its last N local days (its utc_offset, not this browser's zone).
  const choice = $("period").value;
  if (choice === "custom" && $("start").value && $("end").value) {
    const end = new Date($("end").value + "T00:00:00Z");
    end.setUTCDate(end.getUTCDate() + 1);  // the end date is included
    return `start=${$("start").value}&end=${end.toISOString().slice(0, 10)}`;
  }
  const days = { today: 1, "7d": 7, "30d": 30 }[choice] || 7;
  return `days=${days}`;
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function fillTable(id, rows, build) {
  const body = $(id).querySelector("tbody");
  body.replaceChildren();
  for (const item of rows) {
    const row = document.createElement("tr");
    build(row, item);
    body.appendChild(row);
  }
}

function seconds(ms) {
  return ms === null || ms === undefined ? "–" : (ms / 1000).toFixed(1) + " s";
}

function age(s) {
  if (s < 90) return Math.round(s) + " dtk";
  if (s < 5400) return Math.round(s / 60) + " mnt";
  if (s < 172800) return Math.round(s / 3600) + " jam";
  return Math.round(s / 86400) + " hari";
}

function drawChart(regions) {
  const top = regions.filter((r) => r.calls > 0).slice(0, CHART_REGIONS);
  const box = $("chart");
  box.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  // drawn at the box's own pixel width, so text stays 12 px on a phone too
  const width = Math.max(300, Math.min(1200, box.clientWidth || 720));
  const labelWidth = Math.min(190, Math.round(width * 0.38));
  const barHeight = 22, gap = 6;
  const maxChars = Math.floor(labelWidth / 6.5);
  const height = Math.max(1, top.length) * (barHeight + gap) + 20;
  const max = Math.max(1, ...top.map((r) => r.calls));
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "xMinYMin meet");
  top.forEach((region, index) => {
    const y = index * (barHeight + gap) + 4;
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", labelWidth - 6);
    label.setAttribute("y", y + barHeight * 0.7);
    label.setAttribute("text-anchor", "end");
    label.setAttribute("font-size", "12");
    const name = region.region_name || region.region;
    label.textContent = name.length > maxChars ? name.slice(0, maxChars - 1) + "…" : name;
    const fullName = document.createElementNS(ns, "title");
    fullName.textContent = name;
    label.appendChild(fullName);
    svg.appendChild(label);
    let x = labelWidth;
    for (const category of CATEGORIES) {
      const count = region[category] || 0;
      if (!count) continue;
      const w = ((width - labelWidth - 50) * count) / max;
      const rect = document.createElementNS(ns, "rect");
      rect.setAttribute("x", x);
      rect.setAttribute("y", y);
      rect.setAttribute("width", Math.max(w, 1));
      rect.setAttribute("height", barHeight);
      rect.setAttribute("fill", COLORS[category]);
      rect.setAttribute("data-region", region.region);
      rect.setAttribute("data-category", category);
      rect.setAttribute("data-count", count);
      const title = document.createElementNS(ns, "title");
      title.textContent = `${region.region_name || region.region}: ${count} ${CATEGORY_LABEL[category]}`;
      rect.appendChild(title);
      svg.appendChild(rect);
      x += w;
    }
    const total = document.createElementNS(ns, "text");
    total.setAttribute("x", x + 4);
    total.setAttribute("y", y + barHeight * 0.7);
    total.setAttribute("font-size", "12");
    total.textContent = region.calls;
    svg.appendChild(total);
  });
  box.appendChild(svg);
  const legend = document.createElement("div");
  legend.className = "legend";
  for (const category of CATEGORIES) {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = COLORS[category];
    item.appendChild(swatch);
    item.appendChild(document.createTextNode(CATEGORY_LABEL[category]));
    legend.appendChild(item);
  }
  box.appendChild(legend);
}

async function refreshOverview() {
  const query = periodQuery();
  $("csv-link").href = `/api/v1/stats/regions?format=csv&${query}`;
  const data = await getJson(`/api/v1/overview?${query}`);
  if ($("period").value !== "custom") {
    $("start").value = data.period.first_day;
    $("end").value = data.period.last_day;
  }
  const totals = data.totals;
  $("total-calls").textContent = totals.calls;
  $("total-darurat").textContent = totals.darurat;
  $("total-terputus").textContent = totals.terputus;
  $("total-ghost").textContent = totals.ghost;
  $("total-prank").textContent = totals.prank;
  $("total-escalations").textContent = totals.escalations;
  $("answer-p50").textContent = seconds(data.answer_time.p50_ms);
  $("answer-p90").textContent = seconds(data.answer_time.p90_ms);
  $("gateways-up").textContent = `${data.health.gateways_online} / ${data.health.gateways_offline}`;
  $("lines-up").textContent = `${data.health.lines_up} / ${data.health.lines_down}`;
  $("open-alarms").textContent = data.open_alarms;
  fillTable("regions-table", data.regions, (row, r) => {
    row.dataset.region = r.region;
    cell(row, r.region_name || "wilayah tidak dikenal");
    cell(row, r.region);
    cell(row, r.calls, "num").dataset.field = "calls";
    for (const category of CATEGORIES) cell(row, r[category], "num").dataset.field = category;
    cell(row, r.escalations, "num").dataset.field = "escalations";
  });
  fillTable("escalations-table", data.escalations, (row, e) => {
    row.dataset.agency = e.agency;
    cell(row, e.agency);
    cell(row, e.escalations, "num");
  });
  drawChart(data.regions);
}

async function refreshCalls() {
  const calls = await getJson("/api/v1/calls?limit=30");
  const list = $("calls-feed");
  list.replaceChildren();
  const seen = new Set();
  for (const call of calls) {
    seen.add(call.call_id);
    const item = document.createElement("li");
    item.dataset.callId = call.call_id;
    item.dataset.category = call.category;
    if (knownCalls && !knownCalls.has(call.call_id)) item.classList.add("new");
    const when = document.createElement("time");
    when.textContent = new Date(call.counted_at).toLocaleTimeString();
    const where = document.createElement("span");
    where.textContent = `${call.region_name || call.region} · ${call.gateway_id}/${call.line}`;
    const category = document.createElement("span");
    category.className = `cat ${call.category}`;
    category.textContent = CATEGORY_LABEL[call.category] || call.category;
    const ring = document.createElement("span");
    ring.textContent = call.answered ? `dijawab ${seconds(call.ring_time_ms)}` : call.abandoned ? "terputus" : "berdering";
    item.append(when, category, where, ring);
    list.appendChild(item);
  }
  knownCalls = seen;
}

async function refreshHealth() {
  const [gateways, lines, alarms] = await Promise.all([
    getJson("/api/v1/gateways"), getJson("/api/v1/lines"), getJson("/api/v1/alarms?state=open"),
  ]);
  fillTable("gateways-table", gateways, (row, g) => {
    row.dataset.gateway = g.gateway_id;
    cell(row, g.gateway_id);
    cell(row, g.region);
    cell(row, g.status || "?", `state-${g.status || "unknown"}`).dataset.field = "status";
    cell(row, age(g.last_seen_age_s));
    cell(row, `${g.contiguous_seq} / ${g.highest_seq}`, "num").dataset.field = "seq";
    cell(row, g.missing, "num").dataset.field = "missing";
    cell(row, g.duplicates, "num").dataset.field = "duplicates";
  });
  fillTable("lines-table", lines, (row, l) => {
    row.dataset.line = `${l.gateway_id}/${l.line}`;
    cell(row, l.gateway_id);
    cell(row, l.line);
    cell(row, l.state, `state-${l.state}`).dataset.field = "state";
    cell(row, l.signal_dbm === null ? "–" : `${l.signal_dbm} dBm`);
  });
  const gaps = gateways.flatMap((g) => g.gaps);
  fillTable("gaps-table", gaps, (row, gap) => {
    row.dataset.gateway = gap.gateway_id;
    cell(row, gap.gateway_id);
    cell(row, gap.first_seq === gap.last_seq ? gap.first_seq : `${gap.first_seq}–${gap.last_seq}`);
    cell(row, gap.size, "num");
    cell(row, age(gap.age_s));
    cell(row, gap.explained_by ? `dijelaskan: ${gap.explained_by}` : "hilang");
  });
  const list = $("alarms-list");
  list.replaceChildren();
  for (const alarm of alarms) {
    const item = document.createElement("li");
    item.dataset.code = alarm.code;
    item.textContent = `${alarm.raised_at.slice(0, 19).replace("T", " ")} · ${alarm.message}`;
    list.appendChild(item);
  }
}

async function refreshAll() {
  try {
    await Promise.all([refreshOverview(), refreshCalls(), refreshHealth()]);
    document.body.dataset.refreshed = String(Date.now());
  } catch (error) {
    console.error(error);
  }
}

function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refreshAll(); }, REFRESH_DELAY_MS);
}

function connectLive() {
  const source = new EventSource("/api/v1/stream");
  source.addEventListener("open", () => { $("live-status").textContent = "live"; $("live-status").className = "badge on"; });
  source.addEventListener("error", () => { $("live-status").textContent = "reconnecting"; $("live-status").className = "badge off"; });
  source.addEventListener("change", scheduleRefresh);
}

$("period-form").addEventListener("submit", (event) => { event.preventDefault(); refreshAll(); });
$("period").addEventListener("change", () => { if ($("period").value !== "custom") refreshAll(); });
for (const id of ["start", "end"]) $(id).addEventListener("change", () => { $("period").value = "custom"; });
let lastWidth = window.innerWidth;
window.addEventListener("resize", () => {
  if (Math.abs(window.innerWidth - lastWidth) > 40) { lastWidth = window.innerWidth; scheduleRefresh(); }
});
refreshAll();
connectLive();
