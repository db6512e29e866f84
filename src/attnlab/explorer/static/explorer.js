// attnlab explorer: the page. Plain JS and SVG, nothing fetched but this server's /api.
// Routes: "/" the index of runs, "/run/<id>" one run's views, "/live" the pretrained encoder.
// Every drawn number carries its exact API value in a data-w attribute and is shown with 3 decimals.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const main = document.getElementById("main");
const tooltip = document.getElementById("tooltip");

// ---------------------------------------------------------------- helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function fmt(x) {
  return x === null || x === undefined ? "–" : (typeof x === "number" ? x.toFixed(3) : String(x));
}

async function api(path, params = {}) {
  const query = new URLSearchParams(params).toString();
  const response = await fetch(path + (query ? "?" + query : ""));
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function showError(where, err) {
  where.replaceChildren(el("p", { class: "error", id: "error", text: err.message }));
}

function showTip(event, text) {
  tooltip.textContent = text;
  tooltip.hidden = false;
  tooltip.style.left = event.clientX + 12 + "px";
  tooltip.style.top = event.clientY + 12 + "px";
}

function hideTip() { tooltip.hidden = true; }

function blue(w) {  // weight in [0, 1] -> fill colour
  const a = Math.max(0, Math.min(1, w));
  return `rgba(31, 119, 180, ${a.toFixed(3)})`;
}

function select(id, options, value, onchange) {
  const node = el("select", { id, onchange: (e) => onchange(e.target.value) });
  options.forEach(([v, label]) => node.append(el("option", { value: v, text: label })));
  node.value = String(value);
  return node;
}

function range(n) { return Array.from({ length: n }, (_, i) => i); }

// ---------------------------------------------------------------- drawing pieces

// Lines from query tokens (left) to key tokens (right), one head's (I, J) matrix.
// Hover or click a token to isolate its lines; the readout lists that token's weights.
function headView(matrix, rows, cols, readout) {
  const rowH = 18, width = 420;
  const height = Math.max(rows.length, cols.length) * rowH + 20;
  const root = svg("svg", { id: "head-view", width, height });
  const lines = [];
  matrix.forEach((row, i) => row.forEach((w, j) => {
    if (w < 0.005) return;
    const line = svg("line", {
      class: "att", x1: 130, y1: 20 + i * rowH - 4, x2: width - 130, y2: 20 + j * rowH - 4,
      "stroke-width": 1 + 3 * w, "stroke-opacity": Math.max(0.05, w), "data-q": i, "data-k": j, "data-w": w,
    });
    lines.push(line);
    root.append(line);
  }));
  let pinned = null;
  function isolate(side, index) {
    lines.forEach((line) => {
      const hit = index === null || Number(line.dataset[side]) === index;
      line.style.display = hit ? "" : "none";
    });
    root.querySelectorAll(".tok").forEach((t) => t.classList.toggle(
      "active", index !== null && t.dataset.side === side && Number(t.dataset.index) === index));
    if (index === null) { readout.textContent = "hover or click a token"; return; }
    const text = side === "q"
      ? matrix[index].map((w, j) => `${cols[j]}\t${fmt(w)}`)
      : matrix.map((row, i) => `${rows[i]}\t${fmt(row[index])}`);
    const who = side === "q" ? rows[index] : cols[index];
    readout.textContent = `${side === "q" ? "query" : "key"} ${index} "${who}"\n` + text.join("\n");
    readout.dataset.side = side;
    readout.dataset.index = index;
  }
  const addTokens = (labels, side, x, anchor) => labels.forEach((label, index) => {
    const t = svg("text", {
      class: "tok", x, y: 20 + index * rowH, "text-anchor": anchor, "data-side": side, "data-index": index,
    }, label);
    t.addEventListener("mouseenter", () => { if (pinned === null) isolate(side, index); });
    t.addEventListener("mouseleave", () => { if (pinned === null) isolate(null, null); });
    t.addEventListener("click", () => {
      pinned = pinned && pinned[0] === side && pinned[1] === index ? null : [side, index];
      isolate(pinned ? side : null, pinned ? index : null);
    });
    root.append(t);
  });
  addTokens(rows, "q", 120, "end");
  addTokens(cols, "k", width - 120, "start");
  isolate(null, null);
  return root;
}

// A heatmap of an (I, J) matrix; every cell has a tooltip and data-w; onhover(i, j, w) is told.
function heatmap(id, matrix, rows, cols, { cell = 18, onhover = null, maxValue = 1 } = {}) {
  const left = rows ? 110 : 10, top = cols ? 70 : 10;
  const I = matrix.length, J = I ? matrix[0].length : 0;
  const root = svg("svg", { id, width: left + J * cell + 10, height: top + I * cell + 10, class: "heatmap" });
  matrix.forEach((row, i) => row.forEach((w, j) => {
    const rect = svg("rect", {
      class: "hm", x: left + j * cell, y: top + i * cell, width: cell - 1, height: cell - 1,
      fill: blue(Math.abs(w) / maxValue), "data-i": i, "data-j": j, "data-w": w,
    });
    const label = `${rows ? rows[i] : i} → ${cols ? cols[j] : j}: ${fmt(w)}`;
    rect.addEventListener("mousemove", (e) => { showTip(e, label); if (onhover) onhover(i, j, w); });
    rect.addEventListener("mouseleave", hideTip);
    root.append(rect);
  }));
  if (rows) rows.forEach((r, i) => root.append(svg("text", {
    x: left - 4, y: top + i * cell + cell * 0.7, "text-anchor": "end" }, r)));
  if (cols) cols.forEach((c, j) => root.append(svg("text", {
    x: 0, y: 0, transform: `translate(${left + j * cell + cell * 0.7}, ${top - 4}) rotate(-60)` }, c)));
  return root;
}

// The layers x heads overview: one small heatmap per (layer, head); click one to select it.
function overview(layers, selected, best, onpick) {
  const size = 64, gap = 8;
  const L = layers.length, H = layers[0].length;
  const root = svg("svg", { id: "overview", width: 40 + H * (size + gap), height: 24 + L * (size + gap) });
  range(H).forEach((h) => root.append(svg("text", { x: 40 + h * (size + gap) + size / 2, y: 14, "text-anchor": "middle" }, `head ${h}`)));
  layers.forEach((heads, l) => {
    root.append(svg("text", { x: 0, y: 24 + l * (size + gap) + size / 2 }, `L${l}`));
    heads.forEach((m, h) => {
      const x0 = 40 + h * (size + gap), y0 = 20 + l * (size + gap);
      const I = m.length, J = m[0].length;
      const g = svg("g", {});
      m.forEach((row, i) => row.forEach((w, j) => g.append(svg("rect", {
        x: x0 + (j * size) / J, y: y0 + (i * size) / I, width: size / J + 0.3, height: size / I + 0.3, fill: blue(w),
      }))));
      const frame = svg("rect", {
        class: "cell", x: x0, y: y0, width: size, height: size, fill: "transparent", stroke: "#bbb",
        "data-layer": l, "data-head": h,
      });
      if (l === selected[0] && h === selected[1]) frame.classList.add("selected");
      if (best && l === best[0] && h === best[1]) frame.classList.add("best");
      frame.addEventListener("click", () => onpick(l, h));
      g.append(frame);
      root.append(g);
    });
  });
  return root;
}

// ---------------------------------------------------------------- the index

function sparkline(curve, metric) {
  const points = curve.filter((p) => typeof p[metric] === "number");
  const root = svg("svg", { width: 120, height: 28, class: "curve" });
  if (points.length < 2) return root;
  const ys = points.map((p) => p[metric]);
  const lo = Math.min(...ys), hi = Math.max(...ys), span = hi - lo || 1;
  const d = points.map((p, k) => `${k ? "L" : "M"}${(k / (points.length - 1)) * 116 + 2},${26 - ((p[metric] - lo) / span) * 24}`);
  root.append(svg("path", { d: d.join(" "), fill: "none", stroke: "#1f77b4", "stroke-width": 1.5 }));
  root.append(svg("title", {}, `${metric}: ${fmt(ys[0])} → ${fmt(ys[ys.length - 1])}`));
  return root;
}

async function showIndex() {
  const data = await api("/api/runs");
  const runs = el("table", { id: "runs" }, el("tr", {},
    ...["run", "task", "family", "parameters", "final", "learning curve (val)"].map((h) => el("th", { text: h }))));
  data.runs.forEach((r) => {
    const final = r.metric && r.final[r.metric] !== undefined ? `${r.metric} ${fmt(r.final[r.metric])} (${r.final_split})` : "";
    const name = el("td", {}, el("a", { href: "/run/" + r.id, class: "run-link", text: r.id }));
    if (r.error) name.append(el("span", { class: "bad", title: r.error, text: " ⚠ " + r.error }));
    runs.append(el("tr", { class: r.error ? "broken" : "", "data-id": r.id }, name,
      el("td", { text: r.task ?? "?" }), el("td", { text: r.family ?? "?" }),
      el("td", { class: "num", text: r.parameters ?? "" }), el("td", { class: "final", text: final }),
      el("td", {}, sparkline(r.curve, r.metric))));
  });
  const parts = [
    el("h1", { text: `${data.runs.length} runs under ${data.roots.map((r) => r.path).join(", ")}` }),
    el("p", {}, data.live.available
      ? el("a", { href: "/live", text: "live: type a sentence through the pretrained encoder" })
      : el("span", { class: "muted", text: "live encoder unavailable: " + data.live.reason })),
    runs,
  ];
  data.compares.forEach((c) => {
    parts.push(el("h2", { text: `comparison ${c.id}: ${c.task} (${c.metric} on test)` }));
    if (c.error) parts.push(el("p", { class: "error", text: c.error }));
    const table = el("table", { class: "compare" }, el("tr", {},
      ...["model", c.sweep || "setting", "seeds", "mean", "std", "min", "max"].map((h) => el("th", { text: h }))));
    c.summary.forEach((s) => table.append(el("tr", {}, el("td", { text: s.model }), el("td", { text: s.setting ?? "" }),
      el("td", { class: "num", text: s.seeds }), ...["mean", "std", "min", "max"].map((k) => el("td", { class: "num", text: fmt(s[k]) })))));
    parts.push(table);
    c.plots.forEach((p) => parts.push(el("img", { class: "plot", src: "/api/file?path=" + encodeURIComponent(p), alt: p })));
  });
  main.replaceChildren(...parts);
}

// ---------------------------------------------------------------- a run

const VIEWS = {};  // name -> function(data, area, rerun): draws one view's data

async function showRun(id) {
  const run = await api("/api/run", { id });
  const area = el("div", { id: "view" });
  const tabs = el("div", { class: "tabs" });
  const summary = el("p", { id: "summary", text:
    `${run.task} · ${run.family} · ${run.parameters ?? "?"} parameters · ` +
    (run.metric && run.final[run.metric] !== undefined ? `${run.metric} ${fmt(run.final[run.metric])}` : "no final metrics") });
  main.replaceChildren(el("h1", { id: "run-title", text: id }), summary, tabs, area);
  if (run.error) main.insertBefore(el("p", { class: "error", text: run.error }), tabs);
  if (!run.views.length) { area.append(el("p", { id: "note", class: "muted", text: run.note })); return; }
  const state = { view: run.views[0].name, example: 0, typed: null };
  const example = el("input", { id: "example", type: "number", min: 0, max: run.examples - 1, value: 0 });
  const typed = el("input", { id: "typed", type: "text" });
  const go = el("button", { id: "go", text: "show" });
  const controls = el("div", { class: "controls" }, el("label", { text: `test example (0–${run.examples - 1})` }, example),
    el("label", { id: "typed-label" }, typed), go);
  const drawn = el("div", { id: "drawn" });
  area.append(controls, drawn);
  let latest = 0;  // only the newest request draws: an older answer arriving late is dropped
  async function load() {
    const mine = ++latest;
    drawn.dataset.ready = "";
    const view = run.views.find((v) => v.name === state.view);
    document.getElementById("typed-label").style.display = view.typed ? "" : "none";
    typed.placeholder = view.typed ? "or type " + view.typed : "";
    const params = { id, view: state.view, example: state.example };
    const key = state.view === "hops" ? "question" : "text";
    if (view.typed && state.typed) params[key] = state.typed;
    drawn.replaceChildren(el("p", { class: "muted", text: "loading…" }));
    try {
      const data = await api("/api/view", params);
      if (mine !== latest) return;
      drawn.replaceChildren();
      drawn.dataset.view = state.view;
      VIEWS[state.view](data, drawn);
      drawn.dataset.ready = "1";
    } catch (err) {
      if (mine !== latest) return;
      showError(drawn, err);
      drawn.dataset.ready = "1";
    }
  }
  run.views.forEach((v) => tabs.append(el("button", {
    id: "tab-" + v.name, text: v.title, class: v.name === state.view ? "active" : "",
    onclick: (e) => {
      tabs.querySelectorAll("button").forEach((b) => b.classList.remove("active"));
      e.target.classList.add("active");
      state.view = v.name; state.typed = null; typed.value = ""; load();
    },
  })));
  example.addEventListener("change", () => { state.example = Number(example.value); state.typed = null; typed.value = ""; load(); });
  go.addEventListener("click", () => { state.example = Number(example.value); state.typed = typed.value.trim() || null; load(); });
  typed.addEventListener("keydown", (e) => { if (e.key === "Enter") go.click(); });
  await load();
}

// Heads: stack, layer and head selectors, the head view, and the layers x heads overview.
function drawHeads(where, stacks, best = null) {
  const state = { stack: 0, layer: best ? best[0] : 0, head: best ? best[1] : 0 };
  const controls = el("div", { class: "controls" });
  const panel = el("div", { class: "panel" });
  where.append(controls, panel);
  function draw() {
    const s = stacks[state.stack];
    const L = s.layers.length, H = s.layers[0].length;
    controls.replaceChildren(
      stacks.length > 1 ? el("label", { text: "stack" }, select("stack", stacks.map((x, k) => [k, x.name]), state.stack,
        (v) => { state.stack = Number(v); state.layer = 0; state.head = 0; draw(); })) : "",
      el("label", { text: "layer" }, select("layer", range(L).map((l) => [l, `layer ${l}`]), state.layer, (v) => { state.layer = Number(v); draw(); })),
      el("label", { text: "head" }, select("head", range(H).map((h) => [h, `head ${h}`]), state.head, (v) => { state.head = Number(v); draw(); })),
      el("span", { id: "selected", text: `${s.name}: layer ${state.layer}, head ${state.head}` }));
    const readout = el("div", { class: "readout", id: "readout" });
    panel.replaceChildren(
      el("div", {}, el("h2", { text: "head view (queries → keys)" }), headView(s.layers[state.layer][state.head], s.rows, s.cols, readout)),
      el("div", {}, el("h2", { text: "weights" }), readout),
      el("div", {}, el("h2", { text: "layers × heads" }), overview(s.layers, [state.layer, state.head], best,
        (l, h) => { state.layer = l; state.head = h; draw(); })));
  }
  draw();
}

VIEWS.heads = (data, where) => {
  where.append(el("pre", { id: "rendered", text: data.text }));
  drawHeads(where, data.stacks);
};

VIEWS.translation = (data, where) => {
  const state = { module: 0, head: 0 };
  const M = data.greedy.layers.length, H = M ? data.greedy.layers[0].length : 0;
  const controls = el("div", { class: "controls" });
  const panel = el("div", { class: "panel" });
  where.append(
    el("p", {}, el("b", { text: "source: " }), el("span", { id: "source", text: data.source_text })),
    data.reference ? el("p", {}, el("b", { text: "reference: " }), el("span", { id: "reference", text: data.reference })) : "",
    el("p", {}, el("b", { text: "greedy: " }), el("span", { id: "greedy-out", text: data.greedy.translation })),
    el("p", {}, el("b", { text: `beam (${data.beam_size}): ` }), el("span", { id: "beam-out", text: data.beam.translation })),
    controls, el("p", { class: "readout", id: "hover", text: "hover a cell" }), panel);
  function draw() {
    if (!M) { panel.replaceChildren(el("p", { id: "no-alignment", class: "muted", text: "this family has no cross-attention: no alignment to show" })); return; }
    controls.replaceChildren(
      M > 1 ? el("label", { text: "layer" }, select("module", range(M).map((m) => [m, `cross-attention ${m}`]), state.module, (v) => { state.module = Number(v); draw(); })) : "",
      H > 1 ? el("label", { text: "head" }, select("head", range(H).map((h) => [h, `head ${h}`]), state.head, (v) => { state.head = Number(v); draw(); })) : "");
    const hover = document.getElementById("hover");
    const one = (name, found) => el("div", { class: "alignment" }, el("h2", { text: `${name}: target (rows) × source (columns)` }),
      heatmap(name + "-matrix", found.layers[state.module][state.head], found.target, found.source,
        { onhover: (i, j, w) => { hover.textContent = `${name}: ${found.target[i]} → ${found.source[j]}: ${fmt(w)}`; } }));
    panel.replaceChildren(one("greedy", data.greedy), one("beam", data.beam));
  }
  draw();
};

VIEWS.hops = (data, where) => {
  const table = el("table", { id: "hops" }, el("tr", {}, el("th", { text: "slot" }), el("th", { text: "sentence" }),
    ...range(data.hops).map((k) => el("th", { text: `hop ${k + 1}` }))));
  data.sentences.forEach((s, r) => {
    const row = el("tr", { class: data.supporting[r] ? "support" : "", "data-row": r },
      el("td", { class: "num", text: data.slots[r] }), el("td", { class: "sentence", text: s }));
    data.weights[r].forEach((w, k) => row.append(el("td", {
      class: "num w", "data-w": w, "data-hop": k, style: `background: ${blue(w)}`, text: fmt(w) })));
    table.append(row);
  });
  where.append(
    el("p", {}, el("b", { text: "question: " }), el("span", { id: "question", text: data.question })),
    el("p", {}, el("b", { text: "answer: " }), el("span", { id: "answer", text: data.answer ?? "(typed question: unknown)" }),
      el("b", { text: "   predicted: " }), el("span", { id: "predicted", text: data.predicted })),
    table, el("p", { class: "muted", text: "★ supporting fact" }));
};

VIEWS.machine = (data, where) => {
  const T = data.steps;
  const fit = (rows, cols) => Math.max(4, Math.min(18, Math.floor(320 / Math.max(rows, cols))));  // cell side in px
  const slider = el("input", { id: "slider", type: "range", min: 0, max: T - 1, value: 0 });
  const label = el("span", { id: "step-label" });
  const readout = el("div", { class: "readout", id: "step-info" });
  const panel = el("div", { class: "panel" });
  where.append(el("div", { class: "controls" }, el("label", { text: "time step" }, slider), label), readout, panel);
  function draw() {
    const t = Number(slider.value);
    label.textContent = `t = ${t} of ${T - 1}`;
    const parts = [];
    const lines = [`step ${t}`];
    for (const kind of ["write", "read"]) {
      if (!data[kind]) continue;
      data[kind].forEach((head, h) => {
        const column = head.map((slots) => slots[t]);
        const top = column.indexOf(Math.max(...column));
        lines.push(`${kind} head ${h}: slot ${top} weight ${fmt(column[top])}`);
      });
      data[kind].forEach((head, h) => {  // head: (n, t)
        const cell = fit(head.length, T);
        const grid = heatmap(`${kind}-map-${h}`, head, null, null, { cell });
        grid.append(svg("rect", { class: "marker", x: 10 + t * cell, y: 10, width: cell, height: head.length * cell, fill: "none", stroke: "#c40", "stroke-width": 2 }));
        parts.push(el("div", {}, el("h2", { text: `${kind} head ${h}: slots (rows) × time (columns)` }), grid));
      });
    }
    if (data.memory) {
      parts.push(el("div", {}, el("h2", { text: `memory M_${t}: slots × word` }),
        heatmap("memory-map", data.memory[t], null, null, { cell: fit(data.memory[t].length, data.memory[t][0].length), maxValue: Math.max(1e-6, ...data.memory[t].flat().map(Math.abs)) })));
    } else {
      parts.push(el("p", { class: "muted", text: data.memory_note }));
    }
    readout.textContent = lines.join("\n");
    readout.dataset.step = t;
    panel.replaceChildren(...parts);
  }
  slider.addEventListener("input", draw);
  draw();
};

// An image (c, y, x) in [0, 1] drawn on a canvas `scale` pixels per pixel (its longer side about `fit`
// pixels), with an SVG overlay of the same size.
function imageWithOverlay(image, overlayId, fit = 360) {
  const [C, Y, X] = [image.length, image[0].length, image[0][0].length];
  const scale = Math.max(2, Math.floor(fit / Math.max(Y, X)));
  const canvas = el("canvas", { id: "image", width: X * scale, height: Y * scale });
  const ctx = canvas.getContext("2d");
  const pixels = ctx.createImageData(X, Y);
  for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) {
    const o = 4 * (y * X + x);
    const v = (c) => Math.round(255 * Math.max(0, Math.min(1, image[C === 3 ? c : 0][y][x])));
    pixels.data[o] = v(0); pixels.data[o + 1] = v(1); pixels.data[o + 2] = v(2); pixels.data[o + 3] = 255;
  }
  const small = document.createElement("canvas");
  small.width = X; small.height = Y;
  small.getContext("2d").putImageData(pixels, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, X * scale, Y * scale);
  const overlay = svg("svg", { id: overlayId, width: X * scale, height: Y * scale, style: "position:absolute; left:0; top:0" });
  const box = el("div", { style: "position: relative; display: inline-block" }, canvas, overlay);
  return { box, overlay, scale, Y, X };
}

VIEWS.glimpse = (data, where) => {
  const G = data.glimpses;
  const slider = el("input", { id: "slider", type: "range", min: 0, max: G - 1, value: G - 1 });
  const readout = el("div", { class: "readout", id: "glimpse-info" });
  const { box, overlay, scale } = imageWithOverlay(data.image, "glimpse-path");
  where.append(el("p", {}, el("b", { text: "label / predicted: " }), el("span", { id: "label", text: `${data.label} / ${data.predicted}` })),
    el("div", { class: "controls" }, el("label", { text: "glimpse" }, slider)), el("div", { class: "panel" }, box, readout));
  const centre = (t) => [(data.centres[t][1] + 0.5) * scale, (data.centres[t][0] + 0.5) * scale];
  function draw() {
    const t = Number(slider.value);
    overlay.replaceChildren();
    if (data.box) {
      const [top, left, h, w] = data.box;
      overlay.append(svg("rect", { x: left * scale, y: top * scale, width: w * scale, height: h * scale, fill: "none", stroke: "lime", "stroke-dasharray": "4 3" }));
    }
    const path = range(t + 1).map((k) => centre(k));
    overlay.append(svg("polyline", { points: path.map((p) => p.join(",")).join(" "), fill: "none", stroke: "cyan", "stroke-width": 1.5 }));
    range(t + 1).forEach((k) => {
      const [cx, cy] = centre(k);
      overlay.append(svg("circle", { class: "glimpse-centre", cx, cy, r: 3, fill: k === t ? "#f40" : "#fc0", "data-t": k }));
      overlay.append(svg("text", { x: cx + 4, y: cy - 4, fill: "#fc0" }, String(k + 1)));
    });
    const [r, c] = data.centres[t];
    data.sides.forEach((side) => overlay.append(svg("rect", {
      class: "scale", x: (c - Math.floor(side / 2)) * scale, y: (r - Math.floor(side / 2)) * scale,
      width: side * scale, height: side * scale, fill: "none", stroke: "#f40", "data-side": side,
    })));
    readout.textContent = `glimpse ${t + 1} of ${G}\ncentre (row, col): ${r}, ${c}\nlocation: ${fmt(data.locations[t][0])}, ${fmt(data.locations[t][1])}\nscales: ${data.sides.join(", ")} px`;
    readout.dataset.t = t;
  }
  slider.addEventListener("input", draw);
  draw();
};

VIEWS.spatial = (data, where) => {
  const state = { layer: 0, head: 0 };
  const [GY, GX] = data.grid;
  const controls = el("div", { class: "controls" });
  const readout = el("div", { class: "readout", id: "cell-info", text: "hover a cell" });
  const { box, overlay, scale, Y, X } = imageWithOverlay(data.image, "spatial-map");
  where.append(el("p", {}, el("b", { text: "label / predicted: " }), el("span", { id: "label", text: `${data.label} / ${data.predicted}` })),
    controls, el("div", { class: "panel" }, box, readout));
  function draw() {
    const heads = data.layers[state.layer];
    controls.replaceChildren(
      data.layers.length > 1 ? el("label", { text: "module" }, select("layer", data.paths.map((p, l) => [l, p || "model"]), state.layer, (v) => { state.layer = Number(v); state.head = 0; draw(); })) : "",
      el("label", { text: "head" }, select("head", range(heads.length).map((h) => [h, `head ${h}`]), state.head, (v) => { state.head = Number(v); draw(); })));
    const grid = heads[state.head];
    const top = Math.max(1e-9, ...grid.flat());
    overlay.replaceChildren();
    const cw = (X * scale) / GX, ch = (Y * scale) / GY;
    grid.forEach((row, r) => row.forEach((w, c) => {
      const cell = svg("rect", { class: "hm", x: c * cw, y: r * ch, width: cw, height: ch, fill: `rgba(255, 90, 0, ${(0.75 * w / top).toFixed(3)})`,
        stroke: "rgba(255,255,255,0.15)", "data-i": r, "data-j": c, "data-w": w });
      cell.addEventListener("mousemove", () => { readout.textContent = `head ${state.head}: cell (${r}, ${c}): ${fmt(w)}`; });
      overlay.append(cell);
    }));
  }
  draw();
};

// Captions: the image once, a row of word chips per caption (greedy, and beam when asked for);
// hover a word to lay its weights alpha_t (rows x cols, upsampled smoothly) over the image, click to pin it;
// hover a cell of the image for that word's weight on it.
VIEWS.caption = (data, where) => {
  const [GY, GX] = data.grid;
  const captions = [["greedy", data.greedy]].concat(data.beam ? [["beam", data.beam]] : []);
  const readout = el("div", { class: "readout", id: "word-info", text: data.attends ? "hover or click a word" : "this model does not attend: no weights to show" });
  const cellInfo = el("p", { class: "muted", id: "cell-info", text: "" });
  const { box, overlay, scale, Y, X } = imageWithOverlay(data.image, "caption-map", 640);
  const heat = el("canvas", { id: "caption-heat", width: X * scale, height: Y * scale, style: "position:absolute; left:0; top:0; pointer-events:none" });
  box.insertBefore(heat, overlay);
  const beam = select("beam", [["", "off"], ...range(7).map((k) => [k + 2, `${k + 2}`])], data.beam_size ?? "", async (v) => {
    where.dataset.ready = "";
    try {
      const next = await api("/api/view", v ? { id: data.id, view: "caption", example: data.example, beam: v } : { id: data.id, view: "caption", example: data.example });
      where.replaceChildren();
      VIEWS.caption(next, where);
    } catch (err) { showError(where, err); }
    where.dataset.ready = "1";
  });
  let pinned = null;
  function show(which, t) {  // which: "greedy" | "beam" | null
    where.querySelectorAll(".chip").forEach((c) => c.classList.toggle("active", c.dataset.which === which && Number(c.dataset.t) === t));
    const ctx = heat.getContext("2d");
    ctx.clearRect(0, 0, heat.width, heat.height);
    overlay.replaceChildren();
    cellInfo.textContent = "";
    if (which === null || !data.attends) {
      readout.textContent = data.attends ? "hover or click a word" : readout.textContent;
      delete readout.dataset.which;
      delete readout.dataset.t;
      return;
    }
    const found = which === "greedy" ? data.greedy : data.beam;
    const alpha = found.alphas[t];  // (L,) row-major over the grid
    const top = Math.max(1e-9, ...alpha);
    const cells = document.createElement("canvas");
    cells.width = GX; cells.height = GY;
    const pixels = cells.getContext("2d").createImageData(GX, GY);
    alpha.forEach((w, i) => { pixels.data.set([255, 110, 0, Math.round(160 * w / top)], 4 * i); });  // the image shows through
    cells.getContext("2d").putImageData(pixels, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "low";  // bilinear, as attention_over_image upsamples
    ctx.drawImage(cells, 0, 0, heat.width, heat.height);
    const cw = (X * scale) / GX, ch = (Y * scale) / GY;
    const [pr, pc] = found.peaks[t];
    alpha.forEach((w, i) => {
      const r = Math.floor(i / GX), c = i % GX;
      const cell = svg("rect", { class: "hm" + (r === pr && c === pc ? " peak" : ""), x: c * cw, y: r * ch, width: cw, height: ch,
        fill: "transparent", stroke: r === pr && c === pc ? "#0cf" : "rgba(255,255,255,0.12)", "stroke-width": r === pr && c === pc ? 2 : 1,
        "data-i": r, "data-j": c, "data-w": w });
      cell.addEventListener("mousemove", () => { cellInfo.textContent = `"${found.words[t]}": cell (${r}, ${c}): ${fmt(w)}`; });
      overlay.append(cell);
    });
    readout.textContent = `${which} word ${t} "${found.words[t]}"\npeak cell (row, col): ${pr}, ${pc}\npeak weight: ${fmt(alpha[pr * GX + pc])}`;
    readout.dataset.which = which;
    readout.dataset.t = t;
  }
  const rows = captions.map(([which, found]) => el("p", { class: "chips", id: which + "-words" },
    el("b", { text: which === "greedy" ? "greedy: " : `beam (${data.beam_size}): ` }),
    ...found.words.map((word, t) => {
      const chip = el("span", { class: "chip", text: word, "data-which": which, "data-t": t });
      chip.addEventListener("mouseenter", () => { if (pinned === null) show(which, t); });  // stays: the cells can be hovered next
      chip.addEventListener("click", () => {
        pinned = pinned && pinned[0] === which && pinned[1] === t ? null : [which, t];
        show(pinned ? which : null, pinned ? t : null);
      });
      return chip;
    })));
  where.append(
    el("p", {}, el("b", { text: "references: " }), el("span", { id: "references", text: data.references.join(" · ") })),
    el("p", {}, el("b", { text: "greedy caption: " }), el("span", { id: "greedy-caption", text: data.greedy.caption })),
    data.beam ? el("p", {}, el("b", { text: `beam caption (${data.beam_size}): ` }), el("span", { id: "beam-caption", text: data.beam.caption })) : "",
    el("div", { class: "controls" }, el("label", { text: "beam search" }, beam)),
    ...rows, el("div", { class: "panel" }, box, el("div", {}, readout, cellInfo)));
};

// ---------------------------------------------------------------- live

async function showLive() {
  const text = el("input", { id: "typed", type: "text", value: "The animal didn't cross the street because it was too tired." });
  const go = el("button", { id: "go", text: "attend" });
  const probe = el("p", { id: "best", class: "muted", text: "finding the pronoun probe's head…" });
  const drawn = el("div", { id: "drawn" });
  main.replaceChildren(el("h1", { text: "pretrained encoder: every layer and head" }),
    el("div", { class: "controls" }, text, go), probe, drawn);
  let best = null;
  try {
    const p = await api("/api/live/probe");
    best = p.best_head;
    probe.textContent = `pronoun probe's best head: layer ${best[0]} head ${best[1]} (outlined in the grid; ${p.source})`;
    probe.dataset.layer = best[0];
    probe.dataset.head = best[1];
  } catch (err) { probe.textContent = "no probe head: " + err.message; }
  async function run() {
    drawn.dataset.ready = "";
    try {
      const data = await api("/api/live", { text: text.value });
      drawn.replaceChildren();
      drawHeads(drawn, [{ name: "encoder self", layers: data.layers, rows: data.tokens, cols: data.tokens }], best);
    } catch (err) { showError(drawn, err); }
    drawn.dataset.ready = "1";
  }
  go.addEventListener("click", run);
  text.addEventListener("keydown", (e) => { if (e.key === "Enter") run(); });
  await run();
}

// ---------------------------------------------------------------- routing

async function route() {
  const path = decodeURIComponent(location.pathname);
  try {
    if (path.startsWith("/run/")) await showRun(path.slice(5));
    else if (path === "/live") await showLive();
    else await showIndex();
  } catch (err) { showError(main, err); }
  main.dataset.ready = "1";
}

route();
