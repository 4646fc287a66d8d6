// Logger file upload on the shipment page: drop or choose a file, watch it upload, read the
// preview of what the server found in it, then commit it (the same file is sent again with
// the SHA-256 the preview showed, so what is stored is what was shown). Nothing is stored
// before the commit.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const zone = document.getElementById("dropzone");
  const input = document.getElementById("file-input");
  const bar = document.getElementById("upload-progress");
  const answer = document.getElementById("upload-answer");
  const maxBytes = Number(form.dataset.maxBytes);
  const zoneInput = document.getElementById("zone-input");
  const loggerInput = document.getElementById("logger-input");
  let busy = false;
  let previewed = null; // the file whose preview is shown: read again when the zone changes

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    children.forEach((c) => node.append(c));
    return node;
  }

  function send(url, file, extra) {
    return new Promise((resolve) => {
      const data = new FormData();
      data.append("csrf_token", form.querySelector("[name=csrf_token]").value);
      const logger = form.querySelector("[name=logger]");
      if (logger) data.append("logger", logger.value);
      if (zoneInput) data.append("zone", zoneInput.value.trim());
      Object.entries(extra || {}).forEach(([k, v]) => data.append(k, v));
      data.append("file", file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("Accept", "application/json");
      bar.hidden = false;
      bar.value = 0;
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) bar.value = (100 * event.loaded) / event.total;
      };
      xhr.onload = () => {
        bar.value = 100;
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        resolve({ status: xhr.status, body });
      };
      xhr.onerror = () => resolve({ status: 0, body: null });
      xhr.send(data);
    });
  }

  function showProblem(result, file, mapping) {
    const body = result.body || {};
    const box = el("div", { class: "verdict refused", role: "alert" },
      el("p", {}, el("b", {}, body.title || (result.status ? "Refused" : "The upload did not reach the server")),
        " ", body.detail || (result.status === 413 ? "The file is larger than the upload limit." :
          "Check the connection and try again.")));
    const errors = (body.errors || []).map((e) => el("li", {}, e.message));
    if (errors.length > 1) box.append(el("ul", {}, ...errors));
    answer.replaceChildren(box);
    // A file with columns the readers could not place: say which column is which.
    if (file && body.layout) answer.append(mappingForm(file, body.layout, mapping || {}));
  }

  // The column mapping: which column holds the time (and the date, if apart), which the
  // temperature, its unit and the date order. "Read again" previews the file through it.
  function mappingForm(file, layout, given) {
    const columns = layout.columns.map((name, i) => [String(i + 1), `${i + 1}: ${name || "(no name)"}`]);
    const fields = [
      ["date", "Date column (if apart from the time)", [["", "none: the time column has the date"], ...columns]],
      ["time", "Time column", columns],
      ["value", "Temperature column", columns],
      ["unit", "Unit", [["", "as the header says"], ["C", "°C"], ["F", "°F"]]],
      ["order", "Date order", [["", "as the dates show"], ["DMY", "day first (31.12.2024)"],
        ["MDY", "month first (12/31/2024)"], ["YMD", "year first (2024-12-31)"]]],
    ];
    const box = el("form", { class: "mapping stack", id: "mapping-form" },
      el("h3", {}, "Which column is which?"),
      el("p", { class: "muted" }, "First rows: " + layout.sample.map((row) => row.join(" | ")).join(" / ")));
    fields.forEach(([key, label, options]) => {
      const select = el("select", { name: `map_${key}`, id: `map-${key}` },
        ...options.map(([value, text]) => el("option", { value }, text)));
      select.value = given[`map_${key}`] || (key === "time" ? String(Math.min(2, columns.length)) : "");
      box.append(el("label", { for: `map-${key}` }, label, " ", select));
    });
    const again = el("button", { type: "submit", class: "primary" }, "Read again with this mapping");
    box.append(el("p", {}, again));
    box.addEventListener("submit", async (event) => {
      event.preventDefault();
      const mapping = {};
      new FormData(box).forEach((value, key) => { if (value) mapping[key] = value; });
      answer.replaceChildren(el("p", { class: "muted" }, `Reading ${file.name} with the mapping…`));
      const result = await send(form.action, file, mapping);
      if (result.status === 200) showPreview(file, result.body, mapping);
      else showProblem(result, file, mapping);
    });
    return box;
  }

  function reading(r) {
    return r ? `${r.celsius.toFixed(2)} °C at ${r.local}` : "–";
  }

  function showPreview(file, p, mapping) {
    const zoneFrom = !p.zone_source ? "" : p.zone_source === "configured" ? " (the logger’s configured zone)" :
      ` (stated in the file: ${p.zone_source})`;
    const rows = [["Format", p.format + (p.zone ? ` · times read as ${p.zone}${zoneFrom}` : "")], ["Logger", p.logger]];
    if (p.days) {  // a daily-summary report: days, not readings
      rows.push(["Days", `${p.days.count.toLocaleString()} daily summaries (min, max and time in alarm per day), no readings`]);
      if (p.days.outside_window) rows.push(["Outside the window", `${p.days.outside_window} (kept, not judged)`]);
    } else {
      rows.push(["Readings", p.count.toLocaleString() + (p.duplicates ? ` (${p.duplicates} duplicate rows dropped)` : "")],
        ["First", reading(p.first)], ["Last", reading(p.last)],
        ["Range", `${p.min_celsius.toFixed(2)} to ${p.max_celsius.toFixed(2)} °C`]);
    }
    rows.push(["Shipment window", `${p.window.start} to ${p.window.end}`]);
    if (p.outside_window) rows.push(["Outside the window", `${p.before_window} before, ${p.after_window} after (kept, not judged)`]);
    if (p.clock_offset_s) rows.push(["Logger clock", `${p.clock_offset_s} s off; times corrected`]);
    if (p.zone_changes) {
      rows.push(["Logger’s zone", `${p.zone_was || "none"} → ${p.logger_zone} (kept for the logger when stored)`]);
    } else if (p.logger_zone) {
      rows.push(["Logger’s zone", `${p.logger_zone} (confirmed)`]);
    }
    rows.push(["Skipped", p.skipped_count ? `${p.skipped_count.toLocaleString()} row(s), see below` : "nothing"]);
    if (p.saved_format) rows.push(["Read with", `the saved format “${p.saved_format}”`]);
    else if (p.mapping) rows.push(["Read with", "the column mapping above"]);
    const list = el("dl", {});
    rows.forEach(([k, v]) => list.append(el("dt", {}, k), el("dd", {}, String(v))));
    const box = el("div", { class: "preview" }, el("h3", {}, `Preview of ${p.filename}`), list);
    if (p.zone_conflict) {  // the file states another zone than the logger is configured with
      box.append(el("p", { class: "verdict refused", role: "alert" }, el("b", {}, "Check the zone: "), p.zone_conflict));
    }
    if (p.skipped.length) {
      box.append(el("ul", { class: "skipped" }, ...p.skipped.map((s) =>
        el("li", {}, s.where || `line ${s.line ?? "?"}${s.column ? ", column " + s.column : ""}: ${s.why}`))));
    }
    if (p.notes && p.notes.length) {
      box.append(el("p", {}, el("b", {}, "Notes")), el("ul", { class: "notes" }, ...p.notes.map((n) =>
        el("li", {}, `${n.line ? "line " + n.line + ": " : ""}${n.why}`))));
    }
    const nothing = p.already && p.already.linked_here;
    if (nothing) {
      box.append(el("p", { class: "verdict" }, `This file was stored before (file ${p.already.file}, ` +
        `shipment ${p.already.shipment}, ${p.already.uploaded_at}): storing it again changes nothing.`));
    } else if (p.already) {
      box.append(el("p", { class: "verdict" }, `This file was stored for shipment ${p.already.shipment} ` +
        `(file ${p.already.file}, ${p.already.uploaded_at}): its logger travelled this leg too. ` +
        "Attaching it judges its stored readings in this shipment’s window; it is not stored twice."));
    }
    // A mapping given here may be kept for every file of this layout.
    const formatName = el("input", { name: "format_name", id: "format-name", maxlength: "80",
      placeholder: "e.g. Vendor X two-probe export" });
    if (mapping && !p.already) {
      box.append(el("label", { for: "format-name" }, "Save this mapping as a format (optional) ", formatName));
    }
    const commit = el("button", { type: "button", class: "primary", id: "commit" },
      nothing ? "Close" : p.already ? "Attach to this shipment" :
        p.days ? `Store ${p.days.count.toLocaleString()} days` : `Store ${p.count.toLocaleString()} readings`);
    const cancel = el("button", { type: "button" }, "Cancel");
    commit.addEventListener("click", async () => {
      if (nothing) { answer.replaceChildren(); return; }
      commit.disabled = cancel.disabled = true;
      const extra = Object.assign({ sha256: p.sha256 }, mapping || {});
      if (mapping && formatName.value.trim()) extra.format_name = formatName.value.trim();
      const result = await send(form.dataset.commit, file, extra);
      if (result.status === 200 || result.status === 201) {
        const alarms = (result.body.alarms || []).map((a) => el("li", { class: "sev-" + a.severity }, `${a.severity}: ${a.summary_local || a.summary}`));
        answer.replaceChildren(el("div", { class: "verdict accepted", role: "status" },
          el("p", {}, el("b", {}, result.body.message)),
          alarms.length ? el("ul", { class: "alarms" }, ...alarms) : "",
          el("p", {}, el("a", { href: result.body.shipment_url }, "Show the updated chart"))));
      } else {
        showProblem(result, file, mapping);
      }
      busy = false;
    });
    cancel.addEventListener("click", () => { answer.replaceChildren(); busy = false; previewed = null; });
    box.append(el("p", {}, commit, " ", cancel));
    answer.replaceChildren(box);
  }

  async function take(file) {
    if (!file || busy) return;
    if (file.size > maxBytes) {
      showProblem({ status: 413, body: { title: "Too large", detail: `${file.name} is ${file.size.toLocaleString()} bytes; the limit is ${maxBytes.toLocaleString()}.` } });
      return;
    }
    busy = true;
    answer.replaceChildren(el("p", { class: "muted" }, `Reading ${file.name}…`));
    const result = await send(form.action, file);
    if (result.status === 200) {
      previewed = file;
      // The zone the file was read in for its logger is the one the commit confirms.
      if (zoneInput && !zoneInput.value.trim() && result.body.logger_zone) zoneInput.value = result.body.logger_zone;
      showPreview(file, result.body);
    } else {
      showProblem(result, file);
      busy = false;
    }
  }

  input.addEventListener("change", () => take(input.files[0]));
  // The preview is read again in the zone chosen; a logger chosen brings its own zone.
  if (zoneInput) zoneInput.addEventListener("change", () => {
    if (previewed) { busy = false; take(previewed); }
  });
  if (loggerInput && zoneInput) loggerInput.addEventListener("change", () => {
    const chosen = loggerInput.selectedOptions[0];
    zoneInput.value = zoneInput.defaultValue = chosen ? chosen.dataset.zone : "";
    if (previewed) { busy = false; take(previewed); }
  });
  ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    take(event.dataTransfer.files[0]);
  });
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") input.click();
  });
})();
