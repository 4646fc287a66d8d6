// The scan page: every code is judged by the server at once (POST /scan/judge, partial), the
// answer is shown big, green or red, and once the step is complete it is recorded when the
// person says so (Record, or Enter on the empty field; signed where the route asks). The input keeps focus so a handheld scanner can scan continuously.
(function () {
  "use strict";
  // Words for people (issue 17): what a camera refusal means and what to do instead, and how
  // long until a deadline. Kept apart from the page's flow so the wording has one place.
  const words = {
    camera(error) {
      const name = error && error.name;
      if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") {
        return ["No camera found on this device", "Type or scan the code instead."];
      }
      if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
        return ["The browser was not allowed to use the camera",
                "Allow the camera for this site in the browser's settings, or type or scan the code instead."];
      }
      if (name === "NotReadableError" || name === "AbortError" || name === "TrackStartError") {
        return ["The camera could not be started",
                "Another app may be using it: close that app and try again, or type or scan the code instead."];
      }
      return ["The camera could not be started", "Type or scan the code instead."];
    },
    duration(minutes) {  // as coi.core.display.duration_words: "30 days", "2 h 5 min", "45 min"
      const days = Math.floor(minutes / 1440), hours = Math.floor((minutes % 1440) / 60), mins = minutes % 60;
      if (days) return days + (days === 1 ? " day" : " days") + (hours ? " " + hours + " h" : "");
      if (hours) return hours + " h" + (mins ? " " + mins + " min" : "");
      return mins + " min";
    },
  };
  const app = document.getElementById("scan-app");
  if (!app) return;
  const $ = (id) => document.getElementById(id);
  const code = $("code"), again = $("again"), againBox = $("again-box");
  const verdict = $("verdict"), title = $("verdict-title"), lines = $("verdict-lines");
  const signCard = $("sign-card"), log = $("log");

  // A wedge scanner types a whole code within a few milliseconds per character; a person
  // takes far longer. Slower than this on average, the entry counts as typed.
  const TYPED_MS_PER_CHAR = 35;

  const state = { case: app.dataset.case || null, step: null, entries: [], busy: false,
                  pendingTyped: null, ready: false, signed: false, queue: [],
                  recording: false, recordKey: null, staleToken: false };
  let keyTimes = [];

  function uuid() {  // crypto.randomUUID needs a secure context; getRandomValues does not
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function focusEntry() {
    const target = state.pendingTyped ? again : code;
    if (document.activeElement !== target && !signCard.contains(document.activeElement)) {
      target.focus();
    }
  }
  // Keep the focus on the scan field: after any click elsewhere, and after every answer.
  document.addEventListener("click", () => setTimeout(focusEntry, 0));
  code.addEventListener("blur", () => setTimeout(focusEntry, 150));
  again.addEventListener("blur", () => setTimeout(focusEntry, 150));

  code.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      const text = code.value.trim();
      const typed = wasTyped(text);
      code.value = "";
      keyTimes = [];
      if (!text) {  // Enter on the empty field records a complete step that nobody signs
        if (state.ready && !state.signed) record();
        return;
      }
      if (typed) {
        state.pendingTyped = text;
        againBox.hidden = false;
        show("idle", "Typed, not scanned: type the same code once more and press Enter.", []);
        again.value = "";
        again.focus();
        return;
      }
      submit({ text: text, method: "scanned" });
    } else if (event.key.length === 1) {
      keyTimes.push(performance.now());
    }
  });
  code.addEventListener("paste", () => { keyTimes = [0, 1e9]; });  // pasted: counts as typed

  again.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    const first = state.pendingTyped;
    const second = again.value.trim();
    state.pendingTyped = null;
    again.value = "";
    againBox.hidden = true;
    code.focus();
    // The server compares the two typings (and refuses a mismatch); both are sent.
    submit({ text: first, method: "typed", again: second });
  });

  function wasTyped(text) {
    if (keyTimes.length < 2) return true;  // pasted, or filled in by the browser
    const perChar = (keyTimes[keyTimes.length - 1] - keyTimes[0]) / (keyTimes.length - 1);
    return perChar > TYPED_MS_PER_CHAR;
  }

  $("reset-button").addEventListener("click", () => {
    resetStep();
    show("idle", "Started over: scan the first label of the step.", []);
  });

  function resetStep() {
    state.entries = [];
    state.ready = false;
    state.recordKey = null;
    signCard.hidden = true;
    renderChecklist([]);
  }

  // The session ended (idle, 12 hours, logged out elsewhere): the server says why; the page
  // keeps what it holds, offers a login in a new tab, and takes a new CSRF token after it.
  class SignedOut extends Error {
    constructor(problem) { super(problem.detail); this.login = problem.login; }
  }

  async function freshToken() {
    const response = await fetch(app.dataset.tokenUrl, {
      headers: { "Accept": "application/json" }, credentials: "same-origin",
    });
    const data = await response.json().catch(() => ({}));
    if (response.status === 401) throw new SignedOut(data);
    if (!response.ok || !data.csrf) throw new Error("The page could not reach the server: try again.");
    app.dataset.csrf = data.csrf;
    state.staleToken = false;
  }

  function showSignedOut(error) {
    show("bad", "Signed out: nothing was recorded", [error.message]);
    const link = document.createElement("a");
    link.href = error.login || "/login";
    link.target = "_blank";
    link.rel = "opener";
    link.id = "login-again";
    link.textContent = "Log in again (opens a new tab)";
    const item = document.createElement("li");
    item.append(link);
    lines.append(item);
  }

  async function post(body) {
    if (state.staleToken) await freshToken();
    const response = await fetch(app.dataset.judgeUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json",
                 "X-CSRFToken": app.dataset.csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    const type = response.headers.get("Content-Type") || "";
    if (!type.includes("json")) {
      throw new Error("Your session has ended: log in again (nothing was recorded).");
    }
    const data = await response.json();
    if (response.status === 401) {
      state.staleToken = true;
      throw new SignedOut(data);
    }
    if (!response.ok) {
      const detail = data.detail || "The scan could not be judged.";
      throw new Error(detail);
    }
    return data;
  }

  function requestBody(entries, extra) {
    const site = $("site");
    return Object.assign({
      case: state.case, step: state.step, scans: entries,
      site: site && site.value ? site.value : null,
      idempotency_key: (extra && extra.idempotency_key) || uuid(),
      device_at: new Date().toISOString(),
      device: "scan page", partial: true,
    }, extra || {});
  }

  async function submit(entry) {
    if (state.busy) {  // scanned while the code before it is checked: judged next, in order
      state.queue.push(entry);
      addLog("idle", entry.text + ": checked after the code before it");
      return;
    }
    state.busy = true;
    show("busy", "Checking " + entry.text + " …", []);
    try {
      const answer = await post(requestBody([...state.entries, entry]));
      handle(answer, entry);
    } catch (error) {
      if (error instanceof SignedOut) showSignedOut(error);
      else show("bad", "Not checked", [error.message]);
      addLog("bad", entry.text + ": " + error.message);
    } finally {
      state.busy = false;
      focusEntry();
      const next = state.queue.shift();
      if (next) submit(next);
    }
  }

  // The case's holds, as soon as a scan names the case: before anything more is scanned.
  function renderHolds(holds) {
    const card = $("holds-card");
    const list = $("holds-list");
    if (!card || !list) return;
    list.replaceChildren(...(holds || []).map((h) => {
      const item = document.createElement("li");
      item.className = "sev-" + h.severity;
      item.textContent = h.message;
      return item;
    }));
    card.hidden = !(holds && holds.length);
  }

  function handle(answer, entry) {
    state.case = answer.case;
    state.step = answer.step;
    renderHolds(answer.holds);
    $("step-title").textContent = answer.step_title ? "Step: " + answer.step_title : "No step";
    $("case-line").textContent = "Case " + answer.case_display + (answer.site ? " · scanning at " + (answer.site_name || answer.site) : "");
    renderClock(answer.next);
    if (!answer.accepted) {
      const lines_ = answer.refusals.map((r) => r.message);
      answer.alarms.forEach((a) => lines_.push("Custody alarm raised (" + a.severity + "): " + a.message));
      if (answer.recorded) lines_.push("This refused scan is recorded on the case's ledger.");
      show("bad", "REFUSED: " + entry.text, lines_);
      addLog("bad", entry.text + ": " + answer.refusals.map((r) => r.title || r.code).join(", "));
      return;
    }
    if (answer.recorded) {
      const done = answer.phase === "give"
        ? "HANDED OVER: " + answer.step_title + ". Custody passes when the receiver scans."
        : "RECORDED: " + answer.step_title;
      const extra = [checkedLine(answer)];
      answer.alarms.forEach((a) => extra.push("Alarm raised (" + a.severity + "): " + a.message));
      if (answer.next) extra.push("Next: " + answer.next.title + (answer.next.due_local ? " by " + answer.next.due_local : ""));
      show(answer.alarms.length ? "warn" : "ok", done, extra);
      addLog("ok", done);
      resetStep();
      state.step = null;  // the next scan starts the case's next step
      renderChecklist(answer.checklist.map((c) => Object.assign({}, c, { done: true })));
      return;
    }
    state.entries.push(entry);
    renderChecklist(answer.checklist);
    const missing = answer.checklist.filter((c) => !c.done).map((c) => c.label);
    const lines_ = [checkedLine(answer)];
    state.ready = answer.ready;
    if (!answer.ready) {
      lines_.push("Still to scan: " + missing.join(", "));
      signCard.hidden = true;
    } else {
      state.signed = Boolean(answer.signing.doer || answer.signing.verifiers);
      lines_.push(state.signed ? "Everything is scanned: sign below to record the step."
                               : "Everything is scanned: press Enter (or Record) to record '" +
                                 answer.step_title + "'.");
      openRecording(answer.signing, answer.step_title);
    }
    show("ok", "OK: " + entry.text, lines_);
    addLog("ok", entry.text + " accepted for " + answer.step_title);
  }

  function checkedLine(answer) {
    return "Checked: check character, case " + answer.case_display + ", step '" + answer.step_title +
      "' in its turn, your role and site, custody of the units.";
  }

  function openRecording(signing, stepTitle) {
    signCard.hidden = false;
    $("sign-heading").textContent = state.signed ? "Sign to record this step" : "Record this step";
    $("signer-fields").hidden = !state.signed;
    $("verifier-fields").hidden = !signing.verifiers;
    $("sign-meaning").textContent = state.signed
      ? "Your signature means: " + (signing.doer || "authored") +
        (signing.verifiers ? "; the verifier's: verified." : ".")
      : "Nobody signs '" + stepTitle + "'.";
    $("sign-button").textContent = state.signed ? "Sign and record" : "Record " + stepTitle;
    if (state.signed) $("own-password").focus();
  }

  $("sign-form").addEventListener("submit", (event) => {
    event.preventDefault();
    record();
  });

  // One attempt to record the step, one idempotency key: a retry after no answer (the network,
  // a login in between) sends the same key, so the server records the step at most once; a
  // double click is one attempt (the button is disabled while it runs).
  async function record() {
    if (state.recording) return;
    if (state.busy) {
      show("bad", "Not recorded yet", ["A code is still being checked: record again when its answer is shown."]);
      return;
    }
    if (!state.ready) return;
    state.busy = state.recording = true;
    const button = $("sign-button");
    const label = button.textContent;
    button.disabled = true;
    button.textContent = "Recording…";
    show("busy", state.signed ? "Signing and recording …" : "Recording …", []);
    if (!state.recordKey) state.recordKey = uuid();
    const verifiers = [];
    if (state.signed && !$("verifier-fields").hidden) {
      verifiers.push({ username: $("verifier-username").value.trim(), password: $("verifier-password").value });
    }
    const extra = { partial: false, verifiers: verifiers, idempotency_key: state.recordKey };
    if (state.signed) extra.password = $("own-password").value;
    const body = requestBody(state.entries, extra);
    $("own-password").value = ""; $("verifier-password").value = "";
    try {
      const answer = await post(body);
      state.recordKey = null;  // answered: a new attempt (a corrected password) is a new request
      const last = state.entries[state.entries.length - 1] || { text: "" };
      if (!answer.accepted) {
        const lines_ = answer.refusals.map((r) => r.message);
        answer.alarms.forEach((a) => lines_.push("Custody alarm raised (" + a.severity + "): " + a.message));
        show("bad", "NOT RECORDED: " + (answer.step_title || ""), lines_);
        addLog("bad", "signing refused: " + answer.refusals.map((r) => r.title || r.code).join(", "));
      } else {
        handle(answer, last);
      }
    } catch (error) {
      if (error instanceof SignedOut) showSignedOut(error);
      else show("bad", "Not recorded", [error.message]);
    } finally {
      state.busy = state.recording = false;
      button.disabled = false;
      if (button.textContent === "Recording…") button.textContent = label;
      code.focus();
    }
  }

  function renderChecklist(items) {
    const list = $("checklist");
    list.replaceChildren(...items.map((c) => {
      const li = document.createElement("li");
      li.className = c.done ? "done" : "todo";
      li.textContent = (c.done ? "✔ " : "☐ ") + c.label;
      return li;
    }));
  }

  function renderClock(next) {
    const line = $("clock-line");
    if (!next || !next.due_at) { line.textContent = ""; return; }
    const left = Math.round((new Date(next.due_at) - new Date()) / 60000);
    const since = next.since ? "Since " + (next.since_title || next.since.replace(/_/g, " ")) + " (" + next.since_at + "): " : "";
    line.textContent = since + next.title + " due by " + next.due_local +
      (left >= 0 ? " (" + words.duration(left) + " left)" : " (" + words.duration(-left) + " overdue)");
    line.className = "clock" + (left < 0 ? " overdue" : left < 30 ? " soon" : "");
  }

  function show(kind, heading, items) {
    verdict.className = "verdict " + kind;
    title.textContent = heading;
    lines.replaceChildren(...items.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }));
  }

  function addLog(kind, text) {
    const li = document.createElement("li");
    li.className = kind;
    li.textContent = new Date().toLocaleTimeString() + " " + text;
    log.prepend(li);
  }

  if (app.dataset.waiting) {  // opened for a case: its clock from the start
    const waiting = JSON.parse(app.dataset.waiting);
    $("step-title").textContent = "Next: " + waiting.title;
    renderClock(waiting);
  }

  // The camera: frames go to the server, which decodes them (zxing-cpp, pyzbar).
  let stream = null, timer = null;
  $("camera-button").addEventListener("click", async () => {
    if (stream) { stopCamera(); return; }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      show("bad", "No camera here", ["This browser offers no camera on this page (it needs HTTPS): type or scan the code instead."]);
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    } catch (error) {
      const [heading, advice] = words.camera(error);
      show("bad", heading, [advice]);
      return;
    }
    const video = $("camera");
    video.srcObject = stream;
    await video.play();
    $("camera-box").hidden = false;
    $("camera-button").textContent = "Stop the camera";
    timer = setInterval(() => grab(video), 700);
  });

  function stopCamera() {
    if (timer) clearInterval(timer);
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null; timer = null;
    $("camera-box").hidden = true;
    $("camera-button").textContent = "Use the camera";
  }

  let grabbing = false;
  async function grab(video) {
    if (grabbing || state.busy || !video.videoWidth) return;
    grabbing = true;
    try {
      const canvas = document.createElement("canvas");
      canvas.width = video.videoWidth; canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0);
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
      const form = new FormData();
      form.append("frame", blob, "frame.jpg");
      const response = await fetch(app.dataset.decodeUrl, {
        method: "POST", body: form, credentials: "same-origin",
        headers: { "X-CSRFToken": app.dataset.csrf, "Accept": "application/json" },
      });
      const data = await response.json();
      if (response.ok && data.texts && data.texts.length) {
        stopCamera();
        await submit({ text: data.texts[0], method: "camera" });
      } else {
        $("camera-status").textContent = response.ok ? "No code read yet: hold the label steady, closer."
                                                     : (data.detail || "The frame could not be read.");
      }
    } finally {
      grabbing = false;
    }
  }
})();
