// The dashboard's own small SVG charts: stacked bars over time, lines over time, horizontal bars.
// Every series is one <g class="series" data-series="NAME">, so a test (or a script) can find
// what a chart shows; exact values are in each mark's <title>. Text is set as text, never markup.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const PALETTE = ["#3b5bdb", "#f08c00", "#2f9e44", "#c2255c", "#1098ad", "#7048e8", "#e8590c", "#5c940d", "#868e96"];
  const W = 900, H = 260, M = { top: 12, right: 12, bottom: 28, left: 64 };

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, attrs) {
    const node = el("text", Object.assign({ x, y }, attrs || {}), parent);
    node.textContent = content;
    return node;
  }

  function title(parent, content) {
    el("title", {}, parent).textContent = content;
  }

  function colorOf(name, index) {
    return name === "(other)" ? PALETTE[PALETTE.length - 1] : PALETTE[index % (PALETTE.length - 1)];
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  function shortTime(iso, bucketSeconds) {
    const d = new Date(iso);
    const pad = (n) => String(n).padStart(2, "0");
    const hm = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
    return bucketSeconds >= 86400 ? `${d.getUTCMonth() + 1}/${d.getUTCDate()}` : bucketSeconds >= 3600 ? `${d.getUTCMonth() + 1}/${d.getUTCDate()} ${hm}` : hm;
  }

  function frame(container, label) {
    container.replaceChildren();
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label }, container);
    return svg;
  }

  function axes(svg, buckets, max, bucketSeconds, formatValue) {
    const axis = el("g", { class: "axis" }, svg);
    const plotH = H - M.top - M.bottom;
    for (let i = 0; i <= 4; i++) {
      const y = M.top + plotH - (plotH * i) / 4;
      el("line", { class: "grid-line", x1: M.left, x2: W - M.right, y1: y, y2: y }, axis);
      text(axis, M.left - 6, y + 4, formatValue((max * i) / 4), { "text-anchor": "end" });
    }
    const n = buckets.length;
    const plotW = W - M.left - M.right;
    const ticks = n <= 1 ? [0] : [0, Math.floor((n - 1) / 2), n - 1];
    for (const i of ticks) {
      const x = M.left + (plotW * (i + 0.5)) / Math.max(n, 1);
      const anchor = ticks.length > 1 && i === n - 1 ? "end" : i === 0 && ticks.length > 1 ? "start" : "middle";
      text(axis, x, H - 8, shortTime(buckets[i], bucketSeconds), { "text-anchor": anchor });
    }
  }

  function legend(container, names) {
    const row = document.createElement("div");
    row.className = "legend-row";
    names.forEach((name, i) => {
      const item = document.createElement("span");
      item.dataset.legend = name;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colorOf(name, i);
      item.append(swatch, document.createTextNode(name));
      row.appendChild(item);
    });
    container.appendChild(row);
  }

  function empty(svg, message) {
    text(svg, W / 2, H / 2, message || "no data in this range", { class: "empty", "text-anchor": "middle" });
  }

  // series: [{name, values: [number per bucket], labels: [exact text per bucket]}]
  function stackedBars(container, { buckets, bucketSeconds, series, formatValue, label }) {
    const svg = frame(container, label);
    const totals = buckets.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
    const max = niceMax(Math.max(0, ...totals));
    axes(svg, buckets, max, bucketSeconds, formatValue);
    if (!series.length) return empty(svg);
    const plotW = W - M.left - M.right, plotH = H - M.top - M.bottom;
    const slot = plotW / buckets.length, barW = Math.max(1, slot * 0.8);
    const base = buckets.map(() => 0);
    series.forEach((s, index) => {
      const g = el("g", { class: "series", "data-series": s.name, fill: colorOf(s.name, index) }, svg);
      s.values.forEach((value, i) => {
        if (!value) return;
        const h = (value / max) * plotH;
        const y = M.top + plotH - base[i] - h;
        const rect = el("rect", { x: M.left + i * slot + (slot - barW) / 2, y, width: barW, height: Math.max(h, 0.5) }, g);
        title(rect, `${s.name} ${buckets[i]}: ${s.labels ? s.labels[i] : value}`);
        base[i] += h;
      });
    });
    legend(container, series.map((s) => s.name));
  }

  function lines(container, { buckets, bucketSeconds, series, formatValue, label }) {
    const svg = frame(container, label);
    const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
    axes(svg, buckets, max, bucketSeconds, formatValue);
    if (!buckets.length || series.every((s) => s.values.every((v) => !v))) empty(svg);
    const plotW = W - M.left - M.right, plotH = H - M.top - M.bottom;
    const x = (i) => M.left + (plotW * (i + 0.5)) / Math.max(buckets.length, 1);
    const y = (v) => M.top + plotH - (v / max) * plotH;
    series.forEach((s, index) => {
      const color = colorOf(s.name, index);
      const g = el("g", { class: "series", "data-series": s.name, stroke: color, fill: color }, svg);
      el("polyline", { fill: "none", "stroke-width": 2, points: s.values.map((v, i) => `${x(i)},${y(v)}`).join(" ") }, g);
      s.values.forEach((v, i) => {
        if (!v) return;
        const dot = el("circle", { cx: x(i), cy: y(v), r: buckets.length > 60 ? 1.5 : 3 }, g);
        title(dot, `${s.name} ${buckets[i]}: ${v}`);
      });
    });
    legend(container, series.map((s) => s.name));
  }

  // rows: [{label, value, part, valueText, partText}]: a bar per row, `part` drawn over it (e.g. errors).
  function horizontalBars(container, { rows, label, partName, valueName }) {
    container.replaceChildren();
    const BW = 520, rowH = 24, height = Math.max(rows.length, 1) * rowH + 8, left = 120;
    const svg = el("svg", { viewBox: `0 0 ${BW} ${height}`, role: "img", "aria-label": label }, container);
    if (!rows.length) return text(svg, BW / 2, height / 2 + 4, "no tool calls in this range", { class: "empty", "text-anchor": "middle" });
    const max = niceMax(Math.max(...rows.map((r) => r.value)));
    const whole = el("g", { class: "series", "data-series": valueName, fill: PALETTE[0] }, svg);
    const part = el("g", { class: "series", "data-series": partName, fill: "#d9480f" }, svg);
    const labels = el("g", { class: "axis" }, svg);
    rows.forEach((r, i) => {
      const y = 4 + i * rowH, width = ((BW - left - 90) * r.value) / max;
      text(labels, left - 8, y + 15, r.label, { "text-anchor": "end" });
      title(el("rect", { x: left, y, width: Math.max(width, 0.5), height: rowH - 6, "data-label": r.label }, whole), `${r.label}: ${r.valueText}`);
      if (r.part) {
        const w = ((BW - left - 90) * r.part) / max;
        title(el("rect", { x: left, y, width: Math.max(w, 0.5), height: rowH - 6, "data-label": r.label }, part), `${r.label}: ${r.partText}`);
      }
      text(labels, left + width + 6, y + 15, r.valueText);
    });
  }

  window.UsageCharts = { stackedBars, lines, horizontalBars, colorOf };
})();
