// The dashboard's one script: live parts of server-rendered pages. Pages work
// without it (they are only not live).
"use strict";

(function () {
  const liveMs = Number(document.body.dataset.liveMs) || 2000;

  // Runs page: while a listed run is running, fetch the table's rows again.
  const rows = document.getElementById("runs-rows");
  if (rows && rows.dataset.live) {
    const refresh = async () => {
      try {
        const resp = await fetch(rows.dataset.live, { headers: { Accept: "text/html" }, cache: "no-store" });
        if (resp.ok) {
          rows.innerHTML = await resp.text();
          if (!rows.querySelector("tr.running")) return; // nothing runs any more
        }
      } catch (e) {
        // The coordinator is away (a restart): try again at the next tick.
      }
      setTimeout(refresh, liveMs);
    };
    setTimeout(refresh, liveMs);
  }

  // Run page: follow the run's progress over server-sent events; its details
  // (chunk map, totals, failed employees) come over the same stream as chunks
  // end, at most every 5 s, and with the run's end, before its final progress.
  const card = document.getElementById("progress");
  if (!card || card.dataset.final) return;
  const el = (id) => document.getElementById(id);
  const bar = el("bar"), details = el("details");

  // Progress is drawn at most twice a second: a large run ends chunks faster
  // than anyone reads, and each drawing costs the browser a style and paint pass
  // (20 tabs drawing every event took more CPU than the run they watched,
  // docs/benchmarks.md, "Real browser tabs"). The latest event is drawn; the
  // final one at once.
  let latest = null, drawTimer = null;
  const drawLatest = () => {
    drawTimer = null;
    if (latest) { const p = latest; latest = null; draw(p); }
  };
  const source = new EventSource(card.dataset.events);
  source.addEventListener("details", (ev) => { details.innerHTML = ev.data; });
  source.addEventListener("progress", (ev) => {
    latest = JSON.parse(ev.data);
    if (latest.final) {
      if (drawTimer) { clearTimeout(drawTimer); drawTimer = null; }
      drawLatest();
    } else if (!drawTimer) {
      drawTimer = setTimeout(drawLatest, 500);
    }
  });
  const draw = (p) => {
    bar.value = p.percent;
    bar.textContent = p.percent_text;
    el("percent").textContent = p.percent_text;
    el("employees").textContent = p.employees;
    el("chunks").textContent = p.chunks;
    el("elapsed").textContent = p.elapsed;
    el("eta").textContent = p.eta;
    const estado = el("estado");
    estado.textContent = p.estado_label;
    estado.title = p.estado;
    estado.className = "badge " + p.tone;
    if (p.final) {
      source.close();
      card.dataset.final = "1";
      if (p.reload) location.reload(); // the end's details did not come
    }
  };
  source.addEventListener("gone", () => source.close());
})();
