// The usage dashboard: reads /dashboard/data for the chosen filter and draws it.
// The filter lives in the page's query string, so a view can be bookmarked or shared.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const DATA_URL = "/dashboard/data";
  const LIVE_SECONDS = 15;
  const state = readState();
  let last = null;
  let timer = null;
  let loading = false;

  const COLUMN_LABELS = {
    project_id: "project", agent_name: "agent", session_id: "session", tool_name: "tool",
    events: "calls", input_tokens: "input", output_tokens: "output", cache_read_tokens: "cache read",
    cache_write_tokens: "cache write", reasoning_tokens: "reasoning", cost_usd: "cost (USD)",
    unpriced_events: "unpriced", failed_events: "failed", tool_calls: "tool calls",
    calls: "calls", errors: "errors", error_rate: "error rate", success_rate: "success rate",
    avg_duration_ms: "avg ms", p95_duration_ms: "p95 ms",
  };
  const TOP_COLUMNS = ["events", "input_tokens", "output_tokens", "cost_usd", "failed_events"];
  const NUMERIC = new Set(["events", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "cost_usd", "unpriced_events", "failed_events", "tool_calls", "calls", "errors",
    "error_rate", "success_rate", "avg_duration_ms", "p95_duration_ms"]);

  function readState() {
    const q = new URLSearchParams(location.search);
    return {
      range: q.get("range") || "24h", project: q.get("project") || "", agent: q.get("agent") || "",
      since: q.get("since") || "", until: q.get("until") || "", stack: q.get("stack") || "model",
      live: q.get("live") !== "0",
    };
  }

  function params() {
    const q = new URLSearchParams({ range: state.range, stack: state.stack });
    if (state.project) q.set("project", state.project);
    if (state.agent) q.set("agent", state.agent);
    if (state.range === "custom") { q.set("since", state.since); q.set("until", state.until); }
    return q;
  }

  function saveState() {
    const q = params();
    if (!state.live) q.set("live", "0");
    history.replaceState(null, "", `${location.pathname}?${q}`);
  }

  const fmtInt = new Intl.NumberFormat("en-US");
  function money(text) {
    const v = Number(text || 0);
    return "$" + (v !== 0 && Math.abs(v) < 1 ? v.toFixed(4) : v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
  }
  function percent(text) { return text == null ? "–" : (Number(text) * 100).toFixed(1) + "%"; }
  function display(column, value) {
    if (value == null || value === "") return "–";
    if (column === "cost_usd") return money(value);
    if (column === "error_rate" || column === "success_rate") return percent(value);
    if (column.endsWith("_ms")) return Number(value).toFixed(1);
    if (NUMERIC.has(column)) return fmtInt.format(Number(value));
    return String(value);
  }

  async function load() {
    if (loading) return;
    loading = true;
    document.body.dataset.state = "loading";
    try {
      const response = await fetch(`${DATA_URL}?${params()}`, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(response.status === 401 ? "this dashboard needs the admin token (Authorization: Bearer $USAGE_ADMIN_TOKEN)" : body.error || response.statusText);
      last = body;
      render(body);
      setStatus(`updated ${new Date().toISOString().slice(11, 19)} UTC${state.live && state.range !== "custom" ? ` · live, every ${LIVE_SECONDS} s` : ""}`);
      document.body.dataset.state = "ready";
    } catch (error) {
      setStatus(String(error.message || error), true);
      document.body.dataset.state = "error";
    } finally {
      loading = false;
    }
  }

  function setStatus(message, isError) {
    $("status").textContent = message;
    $("status").classList.toggle("error", !!isError);
  }

  function render(data) {
    const f = data.filter;
    const note = $("range-note");
    note.replaceChildren(`${f.since} → ${f.until}, ${f.bucket_seconds / 60} min buckets. Cards equal `);
    const code = document.createElement("code");
    code.textContent = data.report_command;
    note.append(code);
    renderChoices(data.panels.choices.rows || []);
    renderCards(data.cards);
    renderUnpriced(data.panels.unpriced_models.rows || []);
    renderCost(data);
    renderTokens(data);
    for (const kind of ["projects", "agents", "sessions", "models"]) renderTop(kind, data.panels[`top_${kind}`], data.panels.unpriced_models.rows || []);
    renderTools(data);
  }

  function renderChoices(rows) {
    fill($("f-project"), "All projects", [...new Set(rows.map((r) => r[0]))], state.project);
    const agents = rows.filter((r) => !state.project || r[0] === state.project).map((r) => r[1]);
    fill($("f-agent"), "All agents", [...new Set(agents)].sort(), state.agent);
  }

  function fill(select, allLabel, values, chosen) {
    if (chosen && !values.includes(chosen)) values = [chosen, ...values];
    const options = [new Option(allLabel, "")].concat(values.map((v) => new Option(v, v)));
    select.replaceChildren(...options);
    select.value = chosen;
  }

  function renderCards(cards) {
    const box = $("cards");
    box.replaceChildren(...cards.map((card) => {
      const node = document.createElement("div");
      node.className = "card";
      node.dataset.metric = card.metric;
      node.dataset.value = card.value == null ? "" : card.value;
      const label = document.createElement("div");
      label.className = "label";
      label.textContent = card.label;
      const value = document.createElement("div");
      value.className = "value";
      value.title = card.value == null ? "" : card.value;
      value.textContent = card.metric === "cost_usd" ? money(card.value) : card.metric.endsWith("_share") ? percent(card.value) : fmtInt.format(Number(card.value));
      if ((card.metric === "unpriced_events" || card.metric === "failed_events") && Number(card.value) > 0) node.classList.add("alert");
      node.append(label, value);
      return node;
    }));
  }

  function renderUnpriced(rows) {
    $("unpriced").hidden = rows.length === 0;
    $("unpriced-list").replaceChildren(...rows.map(([provider, model, unpriced]) => {
      const li = document.createElement("li");
      li.dataset.model = `${provider}/${model}`;
      li.textContent = `${provider}/${model}: ${fmtInt.format(unpriced)} unpriced calls`;
      return li;
    }));
  }

  function bucketsOf(f) {
    const out = [];
    const size = f.bucket_seconds * 1000;
    const start = Math.floor(Date.parse(f.since) / size) * size;
    for (let t = start; t < Date.parse(f.until); t += size) out.push(new Date(t).toISOString().replace(".000Z", "Z"));
    return out;
  }

  function pivot(rows, buckets, valueIndex) {
    const index = new Map(buckets.map((b, i) => [b, i]));
    const series = new Map();
    for (const row of rows) {
      const name = row[1];
      if (!series.has(name)) series.set(name, { name, values: buckets.map(() => 0), labels: buckets.map(() => "0") });
      const i = index.get(row[0]);
      if (i === undefined) continue;
      series.get(name).values[i] += Number(row[valueIndex]);
      series.get(name).labels[i] = String(row[valueIndex]);
    }
    const list = [...series.values()];
    list.sort((a, b) => (a.name === "(other)") - (b.name === "(other)") || b.values.reduce((x, y) => x + y, 0) - a.values.reduce((x, y) => x + y, 0));
    return list;
  }

  function unavailable(container, panel) {
    container.replaceChildren();
    const p = document.createElement("p");
    p.className = "unavailable";
    p.textContent = panel.unavailable;
    container.appendChild(p);
  }

  function renderCost(data) {
    const panel = data.panels.cost_over_time;
    for (const button of $("stack-switch").querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(button.dataset.stack === state.stack));
      button.disabled = button.dataset.stack === "model" && !!state.agent;
    }
    if (panel.rows == null) return unavailable($("chart-cost"), panel);
    const buckets = bucketsOf(data.filter);
    UsageCharts.stackedBars($("chart-cost"), {
      buckets, bucketSeconds: data.filter.bucket_seconds, series: pivot(panel.rows, buckets, 2),
      formatValue: (v) => "$" + (v >= 100 ? v.toFixed(0) : v >= 1 || v === 0 ? v.toFixed(2) : v.toPrecision(2)), label: `Cost over time by ${state.stack}`,
    });
  }

  function renderTokens(data) {
    const panel = data.panels.tokens_over_time;
    const buckets = bucketsOf(data.filter);
    const names = ["input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens"];
    const series = names.map((name, k) => {
      const values = buckets.map(() => 0);
      const at = new Map(buckets.map((b, i) => [b, i]));
      for (const row of panel.rows || []) if (at.has(row[0])) values[at.get(row[0])] = Number(row[k + 1]);
      return { name: COLUMN_LABELS[name], values };
    });
    UsageCharts.lines($("chart-tokens"), {
      buckets, bucketSeconds: data.filter.bucket_seconds, series,
      formatValue: (v) => (v >= 1e6 ? (v / 1e6).toFixed(1) + "M" : v >= 1e3 ? (v / 1e3).toFixed(0) + "k" : v.toFixed(0)),
      label: "Tokens over time",
    });
  }

  function table(container, columns, rows, rowClass) {
    container.replaceChildren();
    const t = document.createElement("table");
    const head = t.createTHead().insertRow();
    for (const c of columns) {
      const th = document.createElement("th");
      th.textContent = COLUMN_LABELS[c] || c;
      if (NUMERIC.has(c)) th.className = "num";
      head.appendChild(th);
    }
    const body = t.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      if (rowClass) tr.className = rowClass(row);
      columns.forEach((c, i) => {
        const td = tr.insertCell();
        td.textContent = display(c, row[i]);
        if (row[i] != null) td.title = String(row[i]);
        if (NUMERIC.has(c)) td.className = "num";
        if (c === "error") td.className = "error-text";
      });
    }
    if (!rows.length) {
      const td = body.insertRow().insertCell();
      td.colSpan = columns.length;
      td.textContent = "nothing in this range";
    }
    container.appendChild(t);
  }

  function project(panel, columns) {
    const at = columns.map((c) => panel.columns.indexOf(c));
    return (panel.rows || []).map((row) => at.map((i) => row[i]));
  }

  function renderTop(kind, panel, unpricedRows) {
    const container = document.querySelector(`.table[data-panel="top_${kind}"]`);
    if (panel.rows == null) return unavailable(container, panel);
    const keys = panel.columns.slice(0, panel.columns.indexOf("events"));
    const shownKeys = kind === "projects" ? ["project_id"] : kind === "agents" ? ["project_id", "agent_name"] : kind === "sessions" ? (state.project ? ["session_id"] : ["project_id", "session_id"]) : ["provider", "model"];
    const columns = [...shownKeys.filter((k) => keys.includes(k)), ...TOP_COLUMNS];
    const unpriced = new Set(unpricedRows.map((r) => `${r[0]}/${r[1]}`));
    const at = columns.indexOf("session_id");
    const rows = project(panel, columns).map((r) => (at >= 0 && r[at] === "" ? r.map((v, i) => (i === at ? "(no session)" : v)) : r));
    table(container, columns, rows, kind === "models" ? (r) => (unpriced.has(`${r[0]}/${r[1]}`) ? "unpriced" : "") : null);
  }

  function renderTools(data) {
    const tools = data.panels.tools;
    const rows = (tools.rows || []).map(([name, calls, errors, avg, p95]) => {
      const rate = calls ? errors / calls : null;
      return [name, calls, errors, rate == null ? null : 1 - rate, rate, avg, p95];
    });
    table(document.querySelector('.table[data-panel="tools"]'),
      ["tool_name", "calls", "errors", "success_rate", "error_rate", "avg_duration_ms", "p95_duration_ms"], rows);
    UsageCharts.horizontalBars($("chart-tools"), {
      label: "Most-used tools", valueName: "calls", partName: "errors",
      rows: (tools.rows || []).slice(0, 10).map(([name, calls, errors]) => ({
        label: name, value: calls, part: errors, valueText: `${fmtInt.format(calls)} calls`, partText: `${fmtInt.format(errors)} errors`,
      })),
    });
    const overTime = data.panels.tools_over_time;
    const buckets = bucketsOf(data.filter);
    UsageCharts.stackedBars($("chart-tools-time"), {
      buckets, bucketSeconds: data.filter.bucket_seconds, series: pivot(overTime.rows || [], buckets, 2),
      formatValue: (v) => fmtInt.format(Math.round(v)), label: "Tool calls over time",
    });
    table(document.querySelector('.table[data-panel="tool_errors_by_agent"]'), data.panels.tool_errors_by_agent.columns, data.panels.tool_errors_by_agent.rows || []);
    const failures = data.panels.recent_failures;
    const failureBox = document.querySelector('.table[data-panel="recent_failures"]');
    if (failures.rows == null) return unavailable(failureBox, failures);
    const failureRows = failures.rows.map(([time, , agent, , , model, error, toolCalls]) => [time.slice(0, 19).replace("T", " "), agent, model, describeFailure(error, toolCalls)]);
    table(failureBox, ["time", "agent", "model", "error"], failureRows);
  }

  function describeFailure(error, toolCalls) {
    const parts = error ? [error] : [];
    try {
      for (const call of JSON.parse(toolCalls || "[]")) if (call.error) parts.push(`${call.name}: ${call.error}`);
    } catch (_) { /* stored JSON is always valid; show the call error alone otherwise */ }
    return parts.join("; ");
  }

  // --- CSV export of what is shown -------------------------------------------------------------
  function csvCell(value) {
    const text = value == null ? "" : String(value);
    return /[",\n\r]/.test(text) || /^[=+\-@]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  }

  function toCsv(data) {
    const lines = [`# usage dashboard ${data.filter.since} to ${data.filter.until}`, `# cards equal: ${data.report_command}`, "metric,value"];
    for (const card of data.cards) lines.push(`${card.metric},${csvCell(card.value)}`);
    for (const [name, panel] of Object.entries(data.panels)) {
      if (name === "choices" || panel.rows == null) continue;
      lines.push("", `# ${name}`, panel.columns.map(csvCell).join(","));
      for (const row of panel.rows) lines.push(row.map(csvCell).join(","));
    }
    return lines.join("\n") + "\n";
  }

  function exportCsv() {
    if (!last) return;
    const blob = new Blob([toCsv(last)], { type: "text/csv" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `usage-dashboard-${last.filter.since.slice(0, 16).replace(/:/g, "")}.csv`;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  // --- wiring -------------------------------------------------------------------------------------
  function schedule() {
    clearInterval(timer);
    if (state.live && state.range !== "custom") timer = setInterval(load, LIVE_SECONDS * 1000);
  }

  function changed() { saveState(); schedule(); load(); }

  function wire() {
    $("f-range").value = state.range;
    $("f-live").checked = state.live;
    $("custom-range").hidden = state.range !== "custom";
    $("f-since").value = state.since.slice(0, 16);
    $("f-until").value = state.until.slice(0, 16);
    $("f-project").addEventListener("change", (e) => { state.project = e.target.value; state.agent = ""; changed(); });
    $("f-agent").addEventListener("change", (e) => {
      state.agent = e.target.value;
      if (state.agent && state.stack === "model") state.stack = "agent";
      changed();
    });
    $("f-range").addEventListener("change", (e) => {
      state.range = e.target.value;
      $("custom-range").hidden = state.range !== "custom";
      if (state.range !== "custom") changed();
    });
    $("apply-custom").addEventListener("click", () => {
      state.since = $("f-since").value ? $("f-since").value + ":00Z" : "";
      state.until = $("f-until").value ? $("f-until").value + ":00Z" : "";
      changed();
    });
    $("f-live").addEventListener("change", (e) => { state.live = e.target.checked; saveState(); schedule(); });
    $("export-csv").addEventListener("click", exportCsv);
    for (const button of $("stack-switch").querySelectorAll("button")) {
      button.addEventListener("click", () => { state.stack = button.dataset.stack; changed(); });
    }
    if (state.agent && state.stack === "model") state.stack = "agent";
    schedule();
    load();
  }

  window.UsageDashboard = { toCsv: () => (last ? toCsv(last) : ""), reload: load };
  document.addEventListener("DOMContentLoaded", wire);
})();
