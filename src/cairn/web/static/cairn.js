// cairn serve: follows a running operation's progress (server-sent events); nothing else here
// is needed for the pages to work.
"use strict";
(function () {
  const box = document.getElementById("operation");
  if (!box || !window.EventSource) return;
  const $ = (id) => document.getElementById(id);
  const size = (n) => {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  };
  const source = new EventSource(box.dataset.events);
  source.onmessage = (event) => {
    const s = JSON.parse(event.data);
    const outcome = $("op-outcome");
    outcome.textContent = s.outcome;
    outcome.className = "outcome " + s.outcome;
    $("op-phase").textContent = [s.phase, s.status].filter(Boolean).join(": ");
    const bar = $("op-progress");
    if (s.bytes_total) { bar.max = s.bytes_total; bar.value = s.bytes_done; }
    else if (s.files_total) { bar.max = s.files_total; bar.value = s.files_done; }
    let counts = s.files_done + (s.files_total != null ? " of " + s.files_total : "") + " files, " + size(s.bytes_done);
    if (s.bytes_total != null) counts += " of " + size(s.bytes_total);
    $("op-counts").textContent = counts;
    $("op-summary").textContent = s.summary;
    $("op-log").textContent = s.log.join("\n");
    if (s.outcome !== "running") {
      source.close();
      bar.max = 1; bar.value = 1;
      const cancel = $("op-cancel");
      if (cancel) cancel.remove();
      box.dataset.done = s.outcome;
    }
  };
})();
