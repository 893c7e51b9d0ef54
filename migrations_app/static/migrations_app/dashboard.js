/* The plan dashboard: draws the data the page embeds, then polls the JSON endpoint every few seconds while
   the plan is not terminal. Charts are uPlot (vendor/uplot). Everything from the server is inserted as text,
   never as HTML. window.cutoverDashboard exposes the charts and poll counters (the browser tests read them). */
(function () {
  "use strict";

  const root = document.getElementById("cutover-dashboard");
  if (!root || typeof uPlot === "undefined") return;

  const css = getComputedStyle(root);
  const COLOR = {
    baseline: css.getPropertyValue("--cd-baseline").trim() || "#4f7cac",
    candidate: css.getPropertyValue("--cd-candidate").trim() || "#e0700b",
    bad: css.getPropertyValue("--cd-bad").trim() || "#c62828",
    noise: "#8e8e8e",
    text: getComputedStyle(document.body).color,
    grid: "rgba(128, 128, 128, 0.18)",
  };
  const STATE_COLOR = {
    draft: "#78909c", evaluating: "#6a1b9a", shadowing: "#00838f", rolling_out: "#1565c0", optimizing: "#2e7d32",
    completed: "#1b5e20", paused: "#b26a00", rolled_back: "#c62828", aborted: "#424242",
  };

  // --- formatting ---------------------------------------------------------------------------------------
  const dash = "–";
  const fmt = {
    pct: (v) => (v == null ? dash : (100 * v).toFixed(Math.abs(v) < 0.01 ? 2 : 1) + " %"),
    ms: (v) => (v == null ? dash : Math.round(v).toLocaleString() + " ms"),
    usd: (v) => (v == null ? dash : "$" + v.toFixed(v < 0.01 ? 5 : 4)),
    score: (v) => (v == null ? dash : v.toFixed(2)),
    num: (v) => (v == null ? dash : v.toLocaleString(undefined, {maximumFractionDigits: 1})),
    percent: (v) => (v == null ? dash : v.toLocaleString() + " %"),
  };
  const METRIC_FORMAT = {
    error_rate: fmt.pct, timeout_rate: fmt.pct, fallback_rate: fmt.pct, refusal_rate: fmt.pct,
    format_compliance: fmt.pct, task_completion: fmt.pct, latency_p50: fmt.ms, latency_p95: fmt.ms,
    latency_p99: fmt.ms, ttft_p95: fmt.ms, cost_per_request: fmt.usd, satisfaction: fmt.score,
  };
  const pad = (n) => String(n).padStart(2, "0");
  function utc(seconds, withDate) {
    const d = new Date(seconds * 1000);
    const time = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
    return withDate ? d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " + time
      : time;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children.flat(Infinity)) {
      if (child == null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fill(target, ...children) {
    target.replaceChildren(...children.flat(Infinity).filter((c) => c != null));
  }

  // --- charts -------------------------------------------------------------------------------------------
  const charts = {};
  const ARM_CHARTS = [
    ["error_rate", fmt.pct], ["latency_p50", fmt.ms], ["latency_p95", fmt.ms],
    ["cost_per_request", fmt.usd], ["satisfaction", fmt.score], ["requests_per_minute", fmt.num],
  ];

  function widthOf(node) {
    return Math.max(240, Math.floor(node.clientWidth || node.parentNode.clientWidth) - 4);
  }

  // Axis ticks: short labels (1.2 s rather than 1,200 ms) so they fit beside the plot.
  const TICK = new Map([
    [fmt.ms, (v) => (v >= 1000 ? +(v / 1000).toFixed(2) + " s" : Math.round(v) + " ms")],
    [fmt.usd, (v) => "$" + +v.toPrecision(3)],
  ]);
  function axis(format) {
    const tick = TICK.get(format) || format;
    return {stroke: COLOR.text, grid: {stroke: COLOR.grid}, ticks: {stroke: COLOR.grid}, size: 72,
      values: (u, ticks) => ticks.map(tick)};
  }

  // Whole seconds and round minutes, hours and days between time ticks.
  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    172800, 604800];
  // Time ticks in UTC, 24-hour, with the date once the span passes a day and seconds below five minutes.
  function timeTicks(u, ticks) {
    const span = u.scales.x.max - u.scales.x.min;
    return ticks.map((t) => {
      const text = utc(t, span > 86400);
      return span > 86400 ? text.slice(5, 16) : span < 300 ? text : text.slice(0, 5);
    });
  }

  function makeChart(name, series, format, options) {
    const node = document.getElementById("chart-" + name);
    const opts = Object.assign({
      width: widthOf(node), height: 170,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      cursor: {drag: {x: false, y: false}},
      scales: {x: {time: true}},
      axes: [{stroke: COLOR.text, grid: {stroke: COLOR.grid}, ticks: {stroke: COLOR.grid}, values: timeTicks,
        space: 70, incrs: TIME_STEPS},
        axis(format)],
      series: [{value: (u, v) => (v == null ? dash : utc(v, true))}].concat(series.map((s) => Object.assign(
        {width: 2, spanGaps: false, value: (u, v) => format(v)}, s))),
      legend: {live: true},
    }, options || {});
    node.replaceChildren();
    charts[name] = new uPlot(opts, [[]].concat(series.map(() => [])), node);
    return charts[name];
  }

  function armSeries() {
    return [{label: "baseline", stroke: COLOR.baseline}, {label: "candidate", stroke: COLOR.candidate}];
  }

  function buildCharts() {
    for (const [name, format] of ARM_CHARTS) {
      const options = name === "satisfaction" ? {scales: {x: {time: true}, y: {range: [0, 1]}}} : {};
      makeChart(name, armSeries(), format, options);
    }
    makeChart("candidate_percent",
      [{label: "candidate %", stroke: COLOR.candidate, fill: "rgba(224, 112, 11, 0.12)", spanGaps: true,
        paths: uPlot.paths.stepped({align: 1})}],
      fmt.percent, {height: 150, scales: {x: {time: true},
        y: {range: (u, min, max) => [0, Math.min(100, Math.max(10, 1.25 * (max || 0)))]}}});
    makeChart("shadow", [
      {label: "candidate disagreement", stroke: COLOR.candidate},
      {label: "noise floor (baseline vs itself)", stroke: COLOR.noise},
      {label: "limit (noise floor + max)", stroke: COLOR.bad, dash: [6, 4], width: 1, spanGaps: true},
    ], fmt.pct, {scales: {x: {time: true}, y: {range: (u, min, max) => [0, Math.max(0.05, max * 1.1)]}}});
  }

  function setData(name, data) {
    const chart = charts[name];
    if (chart) chart.setData(data, true);
  }

  function drawCharts(data) {
    const s = data.series;
    for (const [name] of ARM_CHARTS) {
      setData(name, [s.t, s.arms.baseline[name], s.arms.candidate[name]]);
    }
    const p = data.timeline.percent;
    setData("candidate_percent", [p.t, p.candidate_percent]);
    const sh = data.shadow.series;
    const floor = data.shadow.noise_floor;
    const limit = sh.t.map(() => (floor == null ? null : floor + data.shadow.max_disagreement));
    setData("shadow", [sh.t, sh.disagreement, sh.noise_floor, limit]);
  }

  window.addEventListener("resize", () => {
    for (const [name, chart] of Object.entries(charts)) {
      chart.setSize({width: widthOf(document.getElementById("chart-" + name)), height: chart.height});
    }
    drawPhases(current.timeline);
  });

  // --- tables and figures -------------------------------------------------------------------------------
  function drawHeader(data) {
    const plan = data.plan;
    const state = document.getElementById("cd-state");
    state.textContent = plan.state.replace("_", " ") + (plan.paused_from ? " (from " + plan.paused_from + ")" : "");
    state.className = "cd-badge state-" + plan.state;
    document.getElementById("cd-rollback").hidden = !plan.rollback;
    document.getElementById("cd-percent").textContent = fmt.percent(plan.candidate_percent);
    document.getElementById("cd-step").textContent = plan.step == null ? dash
      : plan.step + " of " + plan.steps.length + " (" + fmt.percent(plan.steps[plan.step - 1]) + ")";
    const counts = {};
    for (const rule of data.rules) counts[rule.verdict] = (counts[rule.verdict] || 0) + 1;
    const health = document.getElementById("cd-health");
    health.textContent = data.rules.length === 0 ? "no rules" : [
      ["breached", "breached"], ["inconclusive", "inconclusive"], ["healthy", "healthy"],
      ["not_enough_data", "waiting for data"],
    ].filter(([key]) => counts[key]).map(([key, label]) => counts[key] + " " + label).join(" · ");
    health.className = "cd-mid " + (counts.breached ? "cd-bad" : counts.inconclusive ? "cd-warn" : "cd-good");
    const alertCount = document.getElementById("cd-alert-count");
    alertCount.textContent = String(data.alerts.length);
    alertCount.className = "cd-mid " + (data.alerts.length ? "cd-bad" : "cd-good");
    const w = data.window;
    document.getElementById("cd-window-note").textContent = "(" + utc(w.since, true) + " to " + utc(w.until) +
      " UTC, " + data.series.resolution_minutes + "-minute buckets; requests: baseline " +
      fmt.num(data.series.arms.baseline.requests) + ", candidate " + fmt.num(data.series.arms.candidate.requests) + ")";
  }

  function drawAlerts(alerts) {
    const target = document.getElementById("cd-alerts");
    if (!alerts.length) {
      fill(target, el("div", {class: "cd-ok"}, "No firing alerts."));
      return;
    }
    fill(target, el("h2", {}, "Firing alerts"), alerts.map((a) => el("div", {class: "cd-alert severity-" + a.severity},
      el("strong", {}, a.severity.toUpperCase() + " · " + a.name), a.summary,
      el("div", {class: "cd-label"}, "action " + a.action + " · since " + utc(a.first_seen, true) +
        " UTC · last seen " + utc(a.last_seen) + " UTC"))));
  }

  function drawPhases(timeline) {
    const target = document.getElementById("cd-phases");
    const plot = charts.candidate_percent && charts.candidate_percent.over;
    if (plot) {  // line the strip up with the chart's plotting area below it
      target.style.marginLeft = plot.style.left;
      target.style.width = plot.style.width;
    }
    const phases = timeline.phases;
    if (!phases.length) return fill(target);
    const start = phases[0].start;
    const span = Math.max(1, phases[phases.length - 1].end - start);
    fill(target, phases.map((phase) => {
      const width = 100 * Math.max(0, phase.end - phase.start) / span;
      const title = phase.state.replace("_", " ") + " at " + phase.percent + " % from " + utc(phase.start, true) +
        " UTC (" + phase.action + (phase.reason ? ": " + phase.reason : "") + ")";
      const node = el("div", {class: "cd-phase", title: title}, phase.state.replace("_", " ") +
        (phase.percent ? " " + phase.percent + " %" : ""));
      node.style.left = (100 * (phase.start - start) / span) + "%";
      node.style.width = "max(3px, " + width + "%)";
      node.style.background = STATE_COLOR[phase.state] || "#777";
      return node;
    }));
  }

  function effectText(rule) {
    if (rule.effect == null) return dash;
    const format = METRIC_FORMAT[rule.metric] || fmt.num;
    const one = rule.comparison === "ratio" ? (v) => (v == null ? "∞" : v.toFixed(2) + "×") : format;
    const interval = rule.interval ? " [" + one(rule.interval[0]) + ", " + one(rule.interval[1]) + "]" : "";
    return one(rule.effect) + interval;
  }

  function drawRules(rules) {
    const body = document.querySelector("#cd-rules tbody");
    if (!rules.length) return fill(body, el("tr", {}, el("td", {colspan: 8, class: "cd-empty"}, "No enabled rules.")));
    fill(body, rules.map((rule) => {
      const format = METRIC_FORMAT[rule.metric] || fmt.num;
      const threshold = rule.comparison === "ratio" ? rule.threshold + "× baseline"
        : rule.comparison === "delta" ? "baseline ± " + format(rule.threshold) : format(rule.threshold);
      const since = rule.breached_since ? " since " + utc(rule.breached_since) + " UTC" : "";
      return el("tr", {class: "rule-" + rule.verdict},
        el("td", {}, rule.metric.replace(/_/g, " ") + " vs " + threshold),
        el("td", {}, rule.action + " (" + rule.severity + ")"),
        el("td", {}, el("span", {class: "cd-verdict verdict-" + rule.verdict}, rule.verdict.replace(/_/g, " ")),
          since),
        el("td", {}, format(rule.candidate_value)),
        el("td", {}, format(rule.baseline_value)),
        el("td", {}, effectText(rule)),
        el("td", {}, rule.samples ? rule.samples[0] + " / " + rule.samples[1] : dash),
        el("td", {}, rule.summary || dash, el("div", {class: "cd-label"}, rule.source)));
    }));
  }

  function drawShadow(shadow) {
    const target = document.getElementById("cd-shadow-figures");
    const interval = shadow.interval ? "[" + fmt.pct(shadow.interval[0]) + ", " + fmt.pct(shadow.interval[1]) + "]"
      : dash;
    const rows = [
      ["verdict", el("span", {class: "cd-verdict verdict-" + shadow.verdict}, shadow.verdict)],
      ["comparisons", fmt.num(shadow.comparisons) + " (need " + fmt.num(shadow.min_comparisons) + ")"],
      ["disagreement", fmt.pct(shadow.disagreement)],
      ["noise floor", fmt.pct(shadow.noise_floor) + " (" + fmt.num(shadow.noise_samples) + " re-asks)"],
      ["above noise", fmt.pct(shadow.disagreement_above_noise) + " " + interval],
      ["max allowed", fmt.pct(shadow.max_disagreement)],
      ["candidate failures", fmt.num(shadow.candidate_failures)],
    ];
    fill(target, el("dl", {}, rows.map(([label, value]) => [el("dt", {}, label), el("dd", {}, value)])));
    if (!shadow.comparisons) target.append(el("p", {class: "cd-empty"}, "No shadow comparisons yet."));
  }

  function drawAudit(events) {
    const body = document.querySelector("#cd-audit tbody");
    if (!events.length) return fill(body, el("tr", {}, el("td", {colspan: 5, class: "cd-empty"}, "No events yet.")));
    fill(body, events.map((e) => el("tr", {}, el("td", {}, utc(e.at, true)), el("td", {}, e.actor),
      el("td", {}, e.action), el("td", {}, e.changes), el("td", {}, e.reason))));
  }

  function draw(data) {
    drawHeader(data);
    drawAlerts(data.alerts);
    drawPhases(data.timeline);
    drawRules(data.rules);
    drawShadow(data.shadow);
    drawAudit(data.audit);
    drawCharts(data);
  }

  // --- live refresh -------------------------------------------------------------------------------------
  const status = {fetches: 0, failures: 0, lastUpdate: null, polling: false};
  const live = document.getElementById("cd-live");

  function showLive(data, ok) {
    if (data.plan.terminal) {
      live.className = "cd-live";
      live.textContent = "final: the plan is " + data.plan.state + " (no refresh)";
    } else if (ok) {
      live.className = "cd-live live";
      live.textContent = "live: updated " + utc(data.generated_at) + " UTC, every " + data.refresh_seconds + " s";
    } else {
      live.className = "cd-live stale";
      live.textContent = "refresh failed; showing " + utc(data.generated_at) + " UTC, retrying";
    }
  }

  let current = JSON.parse(document.getElementById("cd-data").textContent);

  async function poll() {
    if (document.hidden) return schedule();
    try {
      const response = await fetch(root.dataset.url, {credentials: "same-origin", headers: {Accept: "application/json"}});
      if (!response.ok) throw new Error("HTTP " + response.status);
      current = await response.json();
      status.fetches += 1;
      status.lastUpdate = Date.now();
      draw(current);
      showLive(current, true);
    } catch (error) {
      status.failures += 1;
      showLive(current, false);
    }
    schedule();
  }

  function schedule() {
    status.polling = !current.plan.terminal;
    if (status.polling) window.setTimeout(poll, 1000 * current.refresh_seconds);
  }

  buildCharts();
  draw(current);
  showLive(current, true);
  schedule();
  window.cutoverDashboard = {charts: charts, status: status, data: () => current};
})();
