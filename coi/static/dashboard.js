// The dashboard refreshes itself: every N seconds (data-refresh-seconds) it fetches the body
// part (data-body-url) and swaps it in, then says when the figures were taken. A failed
// fetch keeps what is shown and says since when it has not been updated: never a blank page.
(function () {
  "use strict";
  const root = document.getElementById("dashboard");
  if (!root) return;
  const status = document.getElementById("dashboard-status");
  const seconds = Math.max(1, parseInt(root.dataset.refreshSeconds, 10) || 30);
  const url = root.dataset.bodyUrl;
  // A request that hangs must not stop the refreshing: it is given up after this long.
  const timeoutMs = Math.max(10, seconds) * 1000;
  let lastUpdated = (document.getElementById("dashboard-body") || root).dataset.updated || "";

  function show(text, stale) {
    status.textContent = text;
    status.classList.toggle("stale", stale);
  }

  async function fetchBody() {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const response = await fetch(url, { cache: "no-store", credentials: "same-origin",
                                          redirect: "follow", signal: controller.signal });
      // A logged-out session is redirected to the login page: that is no dashboard.
      if (!response.ok || response.redirected) throw new Error(`HTTP ${response.status}`);
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.getElementById("dashboard-body");
      if (!fresh) throw new Error("the answer is not the dashboard");
      return fresh;
    } finally {
      clearTimeout(timer);
    }
  }

  async function refresh() {
    try {
      const fresh = await fetchBody();
      const current = document.getElementById("dashboard-body");
      current.replaceWith(document.adoptNode(fresh));
      lastUpdated = fresh.dataset.updated || lastUpdated;
      show(`Updated ${lastUpdated}`, false);
    } catch (error) {
      show(`Not updated since ${lastUpdated} (retrying)`, true);
    } finally {
      // The next one once this one is done: slow answers never pile up.
      setTimeout(refresh, seconds * 1000);
    }
  }

  setTimeout(refresh, seconds * 1000);
})();
