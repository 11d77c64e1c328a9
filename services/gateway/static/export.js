/* The export page: a small client of the public API (bearer token, JSON, problem+json).
 *
 * The token comes from a paste (kept in sessionStorage) or from the URL fragment `#token=...`
 * (never sent to the server; removed from the address bar once read). A link's token is shown —
 * whose account it is — and used only once the person says so, unless it is for the identity already
 * signed in in this tab (then once the gateway takes it). While an export runs, its
 * status is polled about once a second; polling stops when the export is complete, failed,
 * cancelled or expired.
 */
(function () {
  "use strict";

  var TOKEN_KEY = "grove-export-token";
  var POLL_MS = 1000;
  var RETRY_MS = 3000;
  var API_TIMEOUT_MS = 30000; // an answer not all here by then is given up (and a poll asked again)
  var LINK_REFRESH_MS = 20 * 60 * 1000; // download links live an hour: refresh well before
  var NEEDS_TOKEN = "Paste your access token above to see your exports.";
  var NEEDS_ANSWER = "Say above whether the link's account is yours to see its exports.";
  var TERMINAL = { complete: true, failed: true, cancelled: true, expired: true };
  var BADGE = {
    pending: "Pending", cataloging: "Cataloging", assembling: "Assembling", uploading: "Uploading",
    complete: "Complete", failed: "Failed", cancelled: "Cancelled", expired: "Expired"
  };
  var DOING = {
    pending: "waiting to start", cataloging: "listing your content", assembling: "building the archive",
    uploading: "finishing the archive", complete: "complete", failed: "failed", cancelled: "cancelled",
    expired: "expired"
  };

  var $ = function (id) { return document.getElementById(id); };
  var el = {};
  var token = null;
  var offered = null;          // a #token= link's token, shown and not used until the person says so
  var fresher = null;          // a #token= link's token for the identity signed in, used once the gateway takes it
  var current = null;          // { id, status, data, cancelling }
  var pollGeneration = 0;
  var pollTimer = null;
  var historyGeneration = 0;
  var starting = false;
  // The start this page is still owed an answer for: { key, body, token, at }. A start whose answer was
  // lost (the connection dropped, a 5xx) is sent again with the same Idempotency-Key when the person
  // clicks again with the same choices, so the gateway answers with the export it started — or starts
  // the one it reserved and never logged. A new key each time got a 409 naming that export, and
  // "Show the active export" then said it could not be found.
  var pendingStart = null;
  var RETRY_SAME_START_MS = 60000; // the gateway's reservation lives 30 s (GROVE_RESERVATION_TIMEOUT_S)

  var dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  var timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

  /* ---------- formatting ---------- */

  function humanSize(n) {
    if (n === null || n === undefined) return "–";
    if (n < 1000) return n === 1 ? "1 byte" : n + " bytes";
    var units = ["KB", "MB", "GB", "TB", "PB"];
    var value = n;
    for (var i = 0; i < units.length; i++) {
      value /= 1000;
      if (Math.round(value * 10) / 10 < 1000 || i === units.length - 1) return value.toFixed(1) + " " + units[i];
    }
    return n + " bytes";
  }

  function formatEta(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 5) return "A few seconds left";
    if (seconds < 60) return "About " + Math.ceil(seconds) + " seconds left";
    if (seconds < 3600) {
      var m = Math.round(seconds / 60);
      return "About " + m + (m === 1 ? " minute" : " minutes") + " left";
    }
    var h = Math.floor(seconds / 3600);
    var rest = Math.round((seconds % 3600) / 60);
    return "About " + h + " h " + rest + " min left";
  }

  function formatDate(iso) {
    var d = new Date(iso);
    return isNaN(d.getTime()) ? String(iso) : dateTime.format(d);
  }

  function timeElement(iso, text) {
    var t = document.createElement("time");
    t.dateTime = iso;
    t.textContent = text || formatDate(iso);
    return t;
  }

  function describeCounts(counts) {
    if (!counts) return "";
    var order = ["posts", "pages", "images", "files"];
    var parts = [];
    order.forEach(function (k) {
      if (typeof counts[k] === "number") {
        var n = counts[k];
        var word = n === 1 ? k.replace(/s$/, "") : k;
        parts.push(n + " " + word);
      }
    });
    Object.keys(counts).forEach(function (k) {
      if (order.indexOf(k) < 0) parts.push(counts[k] + " " + k);
    });
    return parts.join(", ");
  }

  function modeName(mode) {
    return mode === "storage" ? "Storage" : "Blog";
  }

  /* ---------- the token ---------- */

  // The token a #token= link carries, taken out of the address bar at once; null without one.
  function takeLinkToken() {
    if (location.hash.length <= 1) return null;
    var params = new URLSearchParams(location.hash.slice(1));
    var fromHash = params.get("token");
    if (fromHash === null) return null;
    params.delete("token");
    var rest = params.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
    return cleanToken(fromHash) || null;
  }

  /* A #token= link is used at once only for the identity already signed in in this tab (a fresher token
     for the same person). Any other is offered, not used: the token is kept per tab, so a link opened in
     a new tab, where nobody is signed in yet, signed in silently — and a link can carry anyone's token,
     so someone could send one for their own account and the person opening it took that account for
     theirs (login CSRF). A link for someone else in a signed-in tab would swap accounts the same way. */
  function readToken() {
    var stored = null;
    try {
      stored = sessionStorage.getItem(TOKEN_KEY);
    } catch (e) { /* storage off */ }
    var signedIn = stored || token;
    var fromLink = takeLinkToken();
    if (fromLink && signedIn && sameIdentity(signedIn, fromLink)) {
      if (fromLink !== signedIn) fresher = fromLink; // see tryFresher
      return signedIn;
    }
    if (fromLink) offered = fromLink;
    return signedIn;
  }

  function identityOf(jwt) {
    var c = jwt ? claims(jwt) : null;
    return c && c.tenant && c.sub ? [c.tenant, c.sub, c.email].join("\n") : null;
  }

  function sameIdentity(current, next) {
    var id = identityOf(current);
    return id !== null && id === identityOf(next);
  }

  function claimText(value) {
    return typeof value === "string" && value ? value : null;
  }

  // What the page shows of an offered token: whose account it is, in the token's own words.
  function showOffer() {
    el.offer.hidden = !offered;
    if (!offered) return;
    var next = claims(offered) || {}, now = token ? claims(token) || {} : null;
    var name = claimText(next.username), was = now ? claimText(now.username) || "the token you provided" : null;
    el.offerTitle.textContent = name
      ? "This link signs you in as " + name + (was ? " instead of " + was : "") + "."
      : "This link's token does not say whose account it is" +
        (was ? " (you are signed in as " + was + ")" : "") + ".";
    [["offerUsername", next.username], ["offerEmail", next.email], ["offerTenant", next.tenant]].forEach(function (f) {
      el[f[0]].textContent = claimText(f[1]) || "–";
    });
    el.offerAccept.textContent = name ? "Continue as " + name : "Use this token";
  }

  /* A link's token replaces the one in use only once the gateway takes it — for the identity signed in
     here, and for another once the person says Continue. The page reads a token's claims unverified: a
     link's token naming this person's tenant, user and email replaced the working one at once, so an old
     link's expired token — or one anybody made up with those three, signed with any key — got a 401, and
     the page forgot the person's token (a forced sign-out). Resolves true when it is now the one in use. */
  function tryFresher() {
    var next = fresher;
    fresher = null;
    if (!next) return Promise.resolve(false);
    return api("GET", "/api/export/history", undefined, undefined, next).then(function (res) {
      if (res.ok) {
        saveToken(next);
        showAccess();
        return true;
      }
      say("info", res.status === 401
        ? "The link's access token was not accepted" + (res.data && res.data.detail ? ": " + res.data.detail : ".") +
          " You are still signed in as before."
        : "The link's access token could not be checked (" + (res.network ? "no connection" : "the service did not answer") +
          "), so it was not used. You are still signed in as before.");
      return false;
    });
  }

  function acceptOffer() {
    var next = offered;
    offered = null;
    if (!token) return useToken(next);
    // Someone is signed in here: they stay so unless the gateway takes the link's token (tryFresher).
    fresher = next;
    showAccess();
    tryFresher().then(function (used) {
      if (used) useToken(next);
      else el.main.focus();
    });
  }

  function useToken(next) {
    stopPolling();
    current = null;
    el.current.hidden = true;
    saveToken(next);
    showAccess();
    say(null);
    syncStartButton();
    if (token) loadHistory({ resume: true });
    el.main.focus();
  }

  function declineOffer() {
    offered = null;
    showAccess();
    say("info", token ? "The link was not used: you are still signed in as before."
                      : "The link was not used. Paste your own access token to see your exports.");
    if (token) el.main.focus();
    else el.tokenInput.focus();
  }

  function cleanToken(raw) {
    return String(raw || "").trim().replace(/^bearer\s+/i, "");
  }

  function saveToken(raw) {
    token = cleanToken(raw) || null;
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage may be off: the token then lives for this page only */ }
  }

  function claims(jwt) {
    try {
      var part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      while (part.length % 4) part += "=";
      var bytes = Uint8Array.from(atob(part), function (c) { return c.charCodeAt(0); });
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) {
      return null;
    }
  }

  function showAccess() {
    var who = token ? claims(token) : null;
    el.who.textContent = "";
    if (token) {
      if (who && who.username) {
        el.who.append("Signed in as ");
        var strong = document.createElement("strong");
        strong.textContent = who.username;
        el.who.append(strong);
        if (who.email) el.who.append(" (" + who.email + ")");
      } else {
        el.who.append("Using the token you provided");
      }
    }
    el.signedIn.hidden = !token;
    el.tokenForm.hidden = !!token || !!offered;
    el.access.classList.toggle("compact", !!token && !offered);
    showOffer();
    if (!token) showSignedOut();
  }

  // Without a token the page knows nothing about anyone's exports: say so, and ask for one.
  function showSignedOut() {
    historyGeneration++;
    el.historyList.textContent = "";
    el.historyList.hidden = true;
    el.historyEmpty.hidden = false;
    el.historyEmpty.textContent = offered ? NEEDS_ANSWER : NEEDS_TOKEN;
    if (!current || TERMINAL[current.status]) {
      current = null;
      el.current.hidden = true;
    }
  }

  /* ---------- messages (the polite live region) ---------- */

  function say(kind, parts) {
    el.message.textContent = "";
    if (!parts) {
      el.message.removeAttribute("data-kind");
      el.message.removeAttribute("data-code");
      return;
    }
    el.message.setAttribute("data-kind", kind);
    (Array.isArray(parts) ? parts : [parts]).forEach(function (part) {
      if (typeof part === "string") {
        var p = document.createElement("p");
        p.textContent = part;
        el.message.append(p);
      } else {
        el.message.append(part);
      }
    });
  }

  function paragraph() {
    var p = document.createElement("p");
    for (var i = 0; i < arguments.length; i++) p.append(arguments[i]);
    return p;
  }

  function unauthorized(body) {
    stopPolling();
    saveToken(null);
    showAccess();
    say("error", [
      "Your access token was not accepted" + (body && body.detail ? ": " + body.detail : ".") ,
      "Paste a fresh token (for example from grove-export token) to continue."
    ]);
    el.message.setAttribute("data-code", "401");
    el.tokenInput.focus();
  }

  function problemText(res, fallback) {
    var body = res.data || {};
    var text = body.detail || body.title || fallback;
    return body.code ? text + " (" + body.code + ")" : text;
  }

  /* ---------- the API ---------- */

  // `as`: a token to send instead of the one in use (a link's, checked before it is used: tryFresher).
  function api(method, path, body, extraHeaders, as) {
    var bearer = as || token;
    var headers = { Accept: "application/json, application/problem+json" };
    if (extraHeaders) Object.keys(extraHeaders).forEach(function (h) { headers[h] = extraHeaders[h]; });
    // A token holding what no token has (an "…" from one copied cut short, a line break) cannot go in
    // a header: fetch refused it before sending, and the page said the connection was lost.
    if (bearer && !/^[\x21-\x7e]+$/.test(bearer)) {
      return Promise.resolve({ ok: false, status: 401, headers: new Headers(), data: {
        detail: "it holds characters no access token has (a space, a line break, or an \u2026 from a token " +
                "copied cut short)." } });
    }
    if (bearer) headers.Authorization = "Bearer " + bearer;
    var init = { method: method, headers: headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    // A fetch has no deadline of its own: an answer whose body stopped coming held its caller for
    // good (the poll never ended, so the next was never asked). Given up after API_TIMEOUT_MS.
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = null;
    if (controller) {
      init.signal = controller.signal;
      timer = setTimeout(function () { controller.abort(); }, API_TIMEOUT_MS);
    }
    // Never rejects: an answer whose body broke off after its headers (a gateway restarting, a proxy
    // timing out) is a lost connection too. Let through, it ended every caller's chain: polling
    // stopped for good, and the start or cancel button stayed "Starting…" or "Cancelling…".
    return fetch(path, init).then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        return { ok: resp.ok, status: resp.status, data: data, headers: resp.headers };
      });
    }).catch(function () {
      return { ok: false, status: 0, data: null, headers: new Headers(), network: true };
    }).then(function (res) {
      if (timer) clearTimeout(timer);
      return res;
    });
  }

  /* ---------- starting ---------- */

  function syncImagesToggle() {
    var storage = el.modeStorage.checked;
    el.includeImages.disabled = storage;
    el.imagesHint.textContent = storage
      ? "Storage exports always include every file; this option applies to blog exports."
      : "Image files are added to the archive next to your posts.";
  }

  function syncStartButton() {
    var running = current && !TERMINAL[current.status];
    el.startButton.disabled = starting || !!running;
    el.startButton.textContent = starting ? "Starting…" : "Start export";
    el.startHint.hidden = !running;
  }

  function startExport(event) {
    event.preventDefault();
    if (starting) return;
    if (!token && offered) {
      say("warn", "Say first whether to use the account the link signs you in to.");
      el.offerTitle.focus();
      return;
    }
    if (!token) {
      say("warn", "Paste your access token first.");
      showAccess();
      el.tokenInput.focus();
      return;
    }
    var mode = el.modeStorage.checked ? "storage" : "blog";
    var body = {
      mode: mode,
      includeImages: mode === "blog" ? el.includeImages.checked : false,
      deliveryMethod: el.deliveryDownload.checked ? "download" : "email"
    };
    starting = true;
    syncStartButton();
    var sent = JSON.stringify(body);
    // Only a prompt retry repeats the lost start: the gateway honours a key for 24 h, so a start an
    // hour later with the same key would be answered with the old export instead of a new one.
    if (!pendingStart || pendingStart.body !== sent || pendingStart.token !== token ||
        Date.now() - pendingStart.at > RETRY_SAME_START_MS) {
      pendingStart = { key: newKey(), body: sent, token: token, at: Date.now() };
    }
    var attempt = pendingStart;
    api("POST", "/api/export", body, { "Idempotency-Key": attempt.key }).then(function (res) {
      starting = false;
      // only a lost answer is asked again with the same key; any answer the gateway gave is final
      if (!(res.network || res.status >= 500) && pendingStart === attempt) pendingStart = null;
      if (res.status === 201 && res.data && res.data.exportId) {
        say("info", res.data.message || "Export started.");
        track(res.data.exportId, { focus: true });
        loadHistory();
      } else {
        startFailed(res);
      }
      syncStartButton();
    });
  }

  function newKey() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes); // also on a page served over plain http, where randomUUID is missing
    return "page-" + Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  function startFailed(res) {
    var body = res.data || {};
    if (res.status === 401) return unauthorized(body);
    if (res.status === 409 && body.code === "GROVE-EXPORT-002") {
      loadHistory(); // the active export is in the history too
      return inProgress(body.activeExportId);
    }
    if (res.status === 429) return rateLimited(body, res.headers);
    if (res.network) {
      say("error", "Could not reach the export service. Check your connection and try again.");
    } else if (res.status >= 500) {
      say("error", ["The export service could not start the export right now. Please try again in a moment.",
                    problemText(res, "")]);
    } else {
      say("error", problemText(res, "The export could not be started."));
    }
    el.message.setAttribute("data-code", String(res.status));
  }

  function inProgress(activeId) {
    var parts = [paragraph("An export is already in progress for your blog. Only one export can run at a time, " +
                           "and how often a new one can start is limited.")];
    if (activeId) {
      var code = document.createElement("code");
      code.textContent = activeId;
      parts.push(paragraph("Active export: ", code));
      var actions = document.createElement("div");
      actions.className = "actions";
      var jump = document.createElement("button");
      jump.type = "button";
      jump.className = "button primary small";
      jump.id = "show-active";
      jump.textContent = "Show the active export";
      jump.addEventListener("click", function () {
        say(null);
        track(activeId, { focus: true });
      });
      actions.append(jump);
      parts.push(actions);
    }
    say("warn", parts);
    el.message.setAttribute("data-code", "409");
  }

  function rateLimited(body, headers) {
    var at = body.nextAllowedAt;
    if (!at) {
      var secs = Number(body.retryAfter || headers.get("Retry-After"));
      if (secs > 0) at = new Date(Date.now() + secs * 1000).toISOString();
    }
    // the API's detail states the limit as configured ("One new export per hour." by default)
    var parts = [paragraph((body.detail || "New exports are limited.") +
                           " You have already started one in that time.")];
    if (at) {
      var when = new Date(at);
      var sameDay = when.toDateString() === new Date().toDateString();
      var t = timeElement(at, sameDay ? timeOnly.format(when) : dateTime.format(when));
      t.id = "next-allowed";
      var mins = Math.max(1, Math.ceil((when.getTime() - Date.now()) / 60000));
      parts.push(paragraph("The next export can start at ", t,
                           " (in about " + mins + (mins === 1 ? " minute" : " minutes") + ")."));
    }
    say("warn", parts);
    el.message.setAttribute("data-code", "429");
  }

  /* ---------- following one export ---------- */

  function stopPolling() {
    pollGeneration++;
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
  }

  function track(exportId, options) {
    options = options || {};
    stopPolling();
    current = { id: exportId, status: "pending", data: null, cancelling: false, quiet: !!options.quiet };
    el.current.hidden = false;
    el.current.dataset.exportId = exportId;
    el.currentTitle.textContent = options.title || "Current export";
    el.result.hidden = true;
    el.running.hidden = false;
    el.runningFacts.hidden = false;
    el.eta.hidden = false;
    el.items.textContent = "Counting…";
    el.bytes.textContent = "Counting…";
    el.cancelButton.hidden = false;
    setCancelling(false);
    setProgress(0, "pending", null);
    setStatus("pending");
    el.currentMeta.textContent = "";
    syncStartButton();
    if (options.focus) el.currentTitle.focus();
    poll(pollGeneration);
  }

  function poll(generation) {
    if (!current || generation !== pollGeneration) return;
    var id = current.id;
    api("GET", "/api/export/status/" + encodeURIComponent(id)).then(function (res) {
      if (generation !== pollGeneration || !current || current.id !== id) return;
      if (res.ok && res.data) {
        render(res.data);
        if (TERMINAL[res.data.status]) {
          pollTimer = null;
          if (!current.quiet) loadHistory(); // it just ended: its history row changed
          return;
        }
        pollTimer = setTimeout(function () { poll(generation); }, POLL_MS);
        return;
      }
      if (res.status === 401) return unauthorized(res.data);
      if (res.status === 404) {
        stopPolling();
        say("error", "This export could not be found. It may belong to another account.");
        el.current.hidden = true;
        current = null;
        syncStartButton();
        return;
      }
      el.currentMeta.textContent = res.network
        ? "Connection lost — trying again…"
        : "The service did not answer — trying again…";
      pollTimer = setTimeout(function () { poll(generation); }, RETRY_MS);
    });
  }

  function setStatus(status) {
    if (el.currentStatus.dataset.status === status) return;
    el.currentStatus.textContent = BADGE[status] || status;
    el.currentStatus.dataset.status = status;
    el.current.dataset.status = status;
  }

  function setProgress(percent, status, data) {
    var p = Math.max(0, Math.min(100, Math.round(percent || 0)));
    el.progress.setAttribute("aria-valuenow", String(p));
    var text = p + " percent, " + (DOING[status] || status);
    var eta = data ? formatEta(data.etaSeconds) : "";
    if (eta && !TERMINAL[status]) text += ", " + eta.toLowerCase();
    el.progress.setAttribute("aria-valuetext", text);
    el.progressFill.style.width = p + "%";
    el.percent.textContent = p + " %";
    el.eta.textContent = TERMINAL[status] ? "" : (eta || (status === "uploading" ? "Almost done" : "Estimating time…"));
  }

  function render(s) {
    var previous = current.status;
    current.status = s.status;
    current.data = s;
    setStatus(s.status);
    setProgress(s.progress, s.status, s);

    // The status line is a live region: touch it only when something in it changes.
    var meta = modeName(s.mode) + " export · started " + formatDate(s.createdAt);
    if (el.currentMeta.textContent !== meta) {
      el.currentMeta.textContent = "";
      el.currentMeta.append(modeName(s.mode) + " export · started ", timeElement(s.createdAt));
    }

    var done = !!TERMINAL[s.status];
    el.items.textContent = s.itemsTotal !== null && s.itemsTotal !== undefined
      ? s.itemsDone + " of " + s.itemsTotal : "Counting…";
    el.bytes.textContent = s.totalBytes !== null && s.totalBytes !== undefined
      ? humanSize(s.bytesDone) + " of " + humanSize(s.totalBytes) : "Counting…";
    var focusWasOnCancel = document.activeElement === el.cancelButton;
    el.runningFacts.hidden = done;
    el.eta.hidden = done;
    el.cancelButton.hidden = done;
    if (!done) setCancelling(current.cancelling);
    if (done && focusWasOnCancel) el.currentTitle.focus(); // keep keyboard users in place
    el.result.hidden = !done;
    if (done) renderResult(s);
    if (done && previous !== s.status && !current.quiet) announceEnd(s);
    syncHistoryRow(s);
    syncStartButton();
  }

  function syncHistoryRow(s) {
    var rows = el.historyList.children;
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      if (row.dataset.exportId !== s.exportId || row.dataset.status === s.status) continue;
      row.dataset.status = s.status;
      var badge = row.querySelector(".badge");
      if (badge) {
        badge.dataset.status = s.status;
        badge.textContent = BADGE[s.status] || s.status;
      }
    }
  }

  function renderResult(s) {
    var texts = {
      complete: "Your archive is ready.",
      failed: "The export failed.",
      cancelled: "The export was cancelled. Nothing was kept. It still counts toward the limit on how often a new export can start.",
      expired: "This export has expired and its archive was deleted. Start a new export for a fresh copy."
    };
    el.resultText.textContent = texts[s.status] || "";
    var complete = s.status === "complete";
    el.downloadRow.hidden = !(complete && s.downloadUrl);
    if (complete && s.downloadUrl) {
      el.downloadLink.href = s.downloadUrl;
      el.downloadLink.textContent = "Download archive" + (s.fileSize ? " (" + s.fileSize + ")" : "");
    }
    var hasArchive = s.sizeBytes !== undefined && s.sizeBytes !== null && s.status !== "failed";
    el.sizeRow.hidden = !hasArchive;
    if (hasArchive) el.size.textContent = s.fileSize + " (" + s.sizeBytes.toLocaleString() + " bytes)";
    var counts = describeCounts(s.itemCounts);
    el.countsRow.hidden = !(complete && counts);
    el.counts.textContent = counts;
    el.shaRow.hidden = !(complete && s.sha256);
    el.sha256.textContent = s.sha256 || "";
    el.expiresRow.hidden = !(complete && s.expiresAt);
    el.expires.textContent = "";
    if (complete && s.expiresAt) el.expires.append(timeElement(s.expiresAt));
    var errs = s.errorCount || 0;
    el.errorsRow.hidden = !((complete || errs > 0) && s.status !== "cancelled");
    el.errors.textContent = errs === 0 ? "Nothing: every item was included (errors.json is empty)."
      : errs === 1
      ? "1 item could not be included; errors.json in the archive says which and why."
      : errs + " items could not be included; errors.json in the archive lists them and why.";
    el.failure.hidden = s.status !== "failed";
    var reason = s.error || "no reason was given";
    if (!/[.!?]$/.test(reason)) reason += ".";
    el.failure.textContent = s.status === "failed" ? "Why: " + reason + " You can start a new export." : "";
    el.notice.hidden = !s.notice;
    el.notice.textContent = s.notice || "";
  }

  function announceEnd(s) {
    // The result is on screen; the earlier "started" message is stale. Screen readers hear the end.
    var words = {
      complete: "Export complete: your archive is ready to download." +
        (s.notification === "sent" ? " We also emailed you a link." : ""),
      failed: "The export failed: " + (s.error || "no reason was given."),
      cancelled: "The export was cancelled.",
      expired: "This export has expired."
    };
    if (el.message.getAttribute("data-kind") === "info") say(null);
    el.announce.textContent = words[s.status] || "";
  }

  // aria-disabled, not disabled: a disabled button would drop the keyboard focus.
  function setCancelling(on) {
    if (current) current.cancelling = on;
    el.cancelButton.setAttribute("aria-disabled", on ? "true" : "false");
    el.cancelButton.textContent = on ? "Cancelling…" : "Cancel export";
  }

  function cancelExport() {
    if (!current || TERMINAL[current.status] || current.cancelling) return;
    setCancelling(true);
    var id = current.id;
    api("POST", "/api/export/cancel/" + encodeURIComponent(id)).then(function (res) {
      if (!current || current.id !== id) return;
      if (res.ok) {
        say("info", "Cancelling the export…");
        return; // polling shows "cancelled" once every step has stopped
      }
      setCancelling(false);
      if (res.status === 401) return unauthorized(res.data);
      if (res.status === 409) {
        say("info", problemText(res, "This export can no longer be cancelled."));
      } else if (res.network) {
        say("error", "Could not reach the export service to cancel. Please try again.");
      } else {
        say("error", problemText(res, "The export could not be cancelled."));
      }
    });
  }

  function copySha() {
    var text = el.sha256.textContent;
    if (!text) return;
    var done = function (ok) {
      el.copyStatus.textContent = ok ? "SHA-256 copied to the clipboard." : "Copy failed; select the text to copy it.";
      el.copySha.firstChild.nodeValue = ok ? "Copied" : "Copy";
      setTimeout(function () {
        el.copySha.firstChild.nodeValue = "Copy";
        el.copyStatus.textContent = "";
      }, 2500);
    };
    var fallback = function () {
      var range = document.createRange();
      range.selectNodeContents(el.sha256);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      done(ok);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, fallback);
    } else {
      fallback();
    }
  }

  /* ---------- history ---------- */

  function loadHistory(options) {
    options = options || {};
    if (!token) return Promise.resolve();
    var generation = ++historyGeneration;
    return api("GET", "/api/export/history").then(function (res) {
      if (generation !== historyGeneration) return;
      if (res.status === 401) return unauthorized(res.data);
      if (!res.ok || !res.data) {
        el.historyEmpty.hidden = false;
        el.historyEmpty.textContent = res.network
          ? "Could not load your recent exports (no connection)."
          : "Could not load your recent exports.";
        return;
      }
      var rows = res.data.exports || [];
      var completes = rows.filter(function (r) { return r.status === "complete"; });
      // History rows carry no link: the status of each complete export signs a fresh one.
      return Promise.all(completes.map(function (r) {
        return api("GET", "/api/export/status/" + encodeURIComponent(r.exportId)).then(function (s) {
          return s.ok && s.data ? s.data : null;
        });
      })).then(function (statuses) {
        if (generation !== historyGeneration) return;
        var links = {};
        statuses.forEach(function (s) { if (s) links[s.exportId] = s; });
        renderHistory(rows, links);
        if (options.resume && !current) {
          var active = rows.filter(function (r) { return !TERMINAL[r.status]; })[0];
          if (active) {
            say("info", "An export you started earlier is still running; its progress is shown below.");
            track(active.exportId);
          } else if (rows.length) {
            track(rows[0].exportId, { title: "Your latest export", quiet: true });
          }
        }
      });
    });
  }

  function renderHistory(rows, statuses) {
    el.historyList.textContent = "";
    el.historyEmpty.hidden = rows.length > 0;
    el.historyEmpty.textContent = "No exports yet.";
    el.historyList.hidden = rows.length === 0;
    rows.forEach(function (r) {
      var li = document.createElement("li");
      li.className = "history-item";
      li.dataset.exportId = r.exportId;
      li.dataset.status = r.status;

      var when = document.createElement("div");
      when.className = "history-when";
      var mode = document.createElement("span");
      mode.className = "history-mode";
      mode.textContent = modeName(r.mode);
      var date = document.createElement("span");
      date.className = "history-date";
      date.append(timeElement(r.createdAt));
      when.append(mode, date);

      var side = document.createElement("div");
      side.className = "history-side";
      var badge = document.createElement("span");
      badge.className = "badge";
      badge.dataset.status = r.status;
      badge.textContent = BADGE[r.status] || r.status;
      side.append(badge);
      if (r.fileSize) {
        var size = document.createElement("span");
        size.className = "history-size";
        size.textContent = r.fileSize;
        side.append(size);
      }
      var s = statuses[r.exportId];
      if (r.status === "complete" && s && s.downloadUrl) {
        var a = document.createElement("a");
        a.href = s.downloadUrl;
        a.className = "history-download";
        a.textContent = "Download";
        a.setAttribute("aria-label", "Download the " + modeName(r.mode).toLowerCase() + " export of " +
                       formatDate(r.createdAt) + (r.fileSize ? " (" + r.fileSize + ")" : ""));
        side.append(a);
      }
      // Details puts the whole status (SHA-256, expiry, error count, link) in the panel above.
      var show = document.createElement("button");
      show.type = "button";
      show.className = "link-button history-details";
      show.textContent = TERMINAL[r.status] ? "Details" : "Show progress";
      show.setAttribute("aria-label", show.textContent + " of the export of " + formatDate(r.createdAt));
      show.addEventListener("click", function () {
        track(r.exportId, TERMINAL[r.status]
          ? { focus: true, quiet: true, title: modeName(r.mode) + " export of " + formatDate(r.createdAt) }
          : { focus: true });
      });
      side.append(show);
      li.append(when, side);
      el.historyList.append(li);
    });
  }

  function refreshLinks() {
    if (!token) return;
    loadHistory();
    if (current && current.status === "complete") {
      var id = current.id;
      api("GET", "/api/export/status/" + encodeURIComponent(id)).then(function (res) {
        if (res.ok && res.data && current && current.id === id) render(res.data);
      });
    }
  }

  /* ---------- wiring ---------- */

  function init() {
    [
      ["message", "message"], ["announce", "announce"], ["who", "who"], ["tokenForm", "token-form"], ["tokenInput", "token"],
      ["signedIn", "signed-in"], ["access", "access"], ["forget", "forget"], ["exportForm", "export-form"],
      ["modeBlog", "mode-blog"], ["modeStorage", "mode-storage"], ["includeImages", "include-images"],
      ["imagesHint", "images-hint"], ["deliveryDownload", "delivery-download"],
      ["startButton", "start-button"], ["startHint", "start-hint"], ["current", "current"],
      ["currentTitle", "current-title"], ["currentStatus", "current-status"], ["currentMeta", "current-meta"],
      ["running", "running"], ["runningFacts", "running-facts"], ["progress", "progress"],
      ["progressFill", "progress-fill"], ["percent", "percent"], ["eta", "eta"], ["items", "items"],
      ["bytes", "bytes"], ["cancelButton", "cancel-button"], ["result", "result"],
      ["resultText", "result-text"], ["downloadRow", "download-row"], ["downloadLink", "download-link"],
      ["sizeRow", "size-row"], ["size", "size"], ["countsRow", "counts-row"], ["counts", "counts"],
      ["shaRow", "sha-row"], ["sha256", "sha256"], ["copySha", "copy-sha"], ["copyStatus", "copy-status"],
      ["expiresRow", "expires-row"], ["expires", "expires"], ["errorsRow", "errors-row"],
      ["errors", "errors"], ["failure", "failure"], ["notice", "notice"], ["historyList", "history-list"],
      ["historyEmpty", "history-empty"], ["refreshHistory", "refresh-history"], ["main", "main"],
      ["offer", "offer"], ["offerTitle", "offer-title"], ["offerUsername", "offer-username"],
      ["offerEmail", "offer-email"], ["offerTenant", "offer-tenant"], ["offerAccept", "offer-accept"],
      ["offerDecline", "offer-decline"]
    ].forEach(function (pair) { el[pair[0]] = $(pair[1]); });

    el.tokenForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var value = cleanToken(el.tokenInput.value);
      if (!value) {
        say("warn", "Paste a token into the Access token field first.");
        el.tokenInput.focus();
        return;
      }
      el.tokenInput.value = "";
      saveToken(value);
      showAccess();
      say(null);
      loadHistory({ resume: true });
    });
    el.forget.addEventListener("click", function () {
      stopPolling();
      saveToken(null);
      showAccess();
      el.tokenInput.focus();
    });
    el.modeBlog.addEventListener("change", syncImagesToggle);
    el.modeStorage.addEventListener("change", syncImagesToggle);
    el.exportForm.addEventListener("submit", startExport);
    el.cancelButton.addEventListener("click", cancelExport);
    el.copySha.addEventListener("click", copySha);
    el.refreshHistory.addEventListener("click", function () { loadHistory(); });
    el.offerAccept.addEventListener("click", acceptOffer);
    el.offerDecline.addEventListener("click", declineOffer);

    syncImagesToggle();
    token = readToken();
    showAccess();
    syncStartButton();
    tryFresher().then(function () { if (token) loadHistory({ resume: true }); });
    if (offered) el.offerTitle.focus();
    // A link with #token=... opened in this tab again changes only the fragment: no reload.
    window.addEventListener("hashchange", function () {
      if (!/(^#|&)token=/.test(location.hash)) return;
      offered = null; // a newer link replaces one not answered yet
      token = readToken();
      if (offered) { // nothing changes until the person says so
        showAccess();
        el.offerTitle.focus();
        return;
      }
      if (fresher) { // the same person: the link's token, once the gateway takes it
        tryFresher().then(function (used) { if (used) restart(); });
        return;
      }
      restart();
    });
    function restart() {
      stopPolling();
      current = null;
      el.current.hidden = true;
      showAccess();
      say(null);
      syncStartButton();
      if (token) loadHistory({ resume: true });
    }
    setInterval(refreshLinks, LINK_REFRESH_MS);
    document.documentElement.dataset.ready = "true";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
