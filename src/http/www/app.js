/* app.js — the disposable-inbox page.  Talks to /api/v1/ with the
 * inbox's token as a bearer token; the token lives only in this browser
 * (localStorage) and in the "keep this inbox" link (#t=...).  Mail is
 * shown from the server's sanitised HTML in a sandboxed frame without
 * scripts.  No innerHTML anywhere: text goes in with textContent. */
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: null, inbox: null, messages: new Map(), open: null, stream: null };

function setStatus(text) { $("status").textContent = text; }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const res = await fetch(path, Object.assign({}, options, { headers }));
  if (res.status === 401) { gone(); throw new Error("unauthorized"); }
  if (!res.ok && res.status !== 204) {
    let message = res.statusText;
    try { message = (await res.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return res;
}

function saveToken(token) {
  state.token = token;
  localStorage.setItem("sealmail-token", token);
  $("keep").href = location.origin + "/#t=" + token;
}

async function createInbox() {
  const res = await fetch("/api/v1/inboxes", { method: "POST" });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error.message);
  saveToken(body.token);
  return body;
}

function showInbox(inbox) {
  state.inbox = inbox;
  $("address").textContent = inbox.address;
  $("inbox").hidden = false;
  $("expired").hidden = true;
  tick();
}

function gone() {
  localStorage.removeItem("sealmail-token");
  state.token = null;
  state.inbox = null;
  state.open = null;
  $("address").textContent = "…";
  $("countdown").textContent = "…";
  if (state.stream) state.stream.abort();
  $("inbox").hidden = true;
  $("expired").hidden = false;
  $("reader").hidden = true;
  $("messages").replaceChildren();
  state.messages.clear();
}

function tick() {
  if (!state.inbox) return;
  const left = Math.max(0, state.inbox.expires_unix - Math.floor(Date.now() / 1000));
  const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
  $("countdown").textContent = (h ? h + " h " : "") + m + " min " + String(s).padStart(2, "0") + " s";
  if (left === 0) gone();
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function listEntry(m) {
  const li = document.createElement("li");
  const b = document.createElement("button");
  b.type = "button";
  b.dataset.id = m.id;
  if (!m.seen) b.className = "unseen";
  const subject = document.createElement("span");
  subject.textContent = m.subject || "(no subject)";
  b.append(subject);
  if (m.junk) {
    const j = document.createElement("span");
    j.className = "junk";
    j.textContent = "failed sender checks";
    b.append(j);
  }
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = m.from || "(unknown sender)";
  const at = document.createElement("span");
  at.className = "when";
  at.textContent = when(m.received);
  b.append(from, at);
  b.addEventListener("click", () => openMessage(m.id, false));
  li.dataset.id = m.id;
  li.append(b);
  return li;
}

/* Newest first: a message's id is its UID in the inbox, which only grows. */
function addMessage(m) {
  if (state.messages.has(m.id)) return;
  state.messages.set(m.id, m);
  const older = [...$("messages").children].find((li) => Number(li.dataset.id) < m.id);
  $("messages").insertBefore(listEntry(m), older || null);
  $("empty").hidden = true;
}

/* Takes a message off the list (and out of the reader); returns the entry
 * that took its place, for the keyboard focus. */
function removeMessage(id) {
  const li = [...$("messages").children].find((el) => Number(el.dataset.id) === id);
  const next = li ? li.nextElementSibling || li.previousElementSibling : null;
  if (li) li.remove();
  state.messages.delete(id);
  if (state.open && state.open.id === id) {
    state.open = null;
    $("reader").hidden = true;
  }
  $("empty").hidden = state.messages.size > 0;
  return next;
}

/* The whole list, merged into what the page shows: the live stream may have
 * added newer messages meanwhile, and those deleted elsewhere go. */
async function loadMessages() {
  const res = await api("/api/v1/inbox/messages");
  const body = await res.json();
  const ids = new Set(body.messages.map((m) => m.id));
  const newest = Math.max(0, ...ids);
  [...state.messages.keys()].filter((id) => id <= newest && !ids.has(id)).forEach(removeMessage);
  body.messages.forEach(addMessage);
  $("empty").hidden = state.messages.size > 0;
}

/* The sanitised document, narrowed once more by its own policy: no
 * script at all, and images only inline unless the reader asked. */
function frameDocument(html, remote) {
  const img = remote ? "data: https: http:" : "data:";
  const meta = '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src ' +
    img + "; style-src 'unsafe-inline'\">";
  /* the sanitiser always writes <head>; should it ever not, the policy
   * still comes first (a <meta> before <html> lands in the head) */
  return html.includes("<head>") ? html.replace("<head>", "<head>" + meta) : meta + html;
}

function header(dl, name, value) {
  if (!value) return;
  const dt = document.createElement("dt"), dd = document.createElement("dd");
  dt.textContent = name;
  dd.textContent = value;
  dl.append(dt, dd);
}

async function download(path, fallbackName) {
  const res = await api(path);
  const blob = await res.blob();
  const cd = res.headers.get("Content-Disposition") || "";
  const star = /filename\*=UTF-8''([^;]+)/.exec(cd), plain = /filename="([^"]+)"/.exec(cd);
  const name = star ? decodeURIComponent(star[1]) : plain ? plain[1] : fallbackName;
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

async function openMessage(id, remote) {
  const res = await api("/api/v1/inbox/messages/" + id + (remote ? "?remote_images=1" : ""));
  const m = await res.json();
  state.open = m;
  $("reader").hidden = false;
  $("reader-subject").textContent = m.subject || "(no subject)";
  const dl = $("reader-headers");
  dl.replaceChildren();
  header(dl, "From", m.from);
  header(dl, "To", m.to);
  header(dl, "Cc", m.cc);
  header(dl, "Date", when(m.date || m.received));
  const rb = $("remote");
  rb.hidden = m.remote_images === 0 || m.remote_images_allowed;
  rb.textContent = "Load remote images (" + m.remote_images + ")";
  const list = $("attachments");
  list.replaceChildren();
  m.attachments.forEach((a) => {
    const li = document.createElement("li"), b = document.createElement("button");
    b.type = "button";
    b.textContent = (a.filename || a.content_type) + " (" + Math.ceil(a.size / 1024) + " KiB)";
    b.addEventListener("click", () => download(a.url, "attachment.bin").catch((e) => setStatus(e.message)));
    li.append(b);
    list.append(li);
  });
  $("body").srcdoc = m.html ? frameDocument(m.html, remote) : "";
  const entry = document.querySelector('#messages button[data-id="' + m.id + '"]');
  if (entry) entry.classList.remove("unseen");
}

/* Server-sent events over fetch (EventSource cannot send the token).  The
 * stream tells only what arrives after it opened: every "ready" (the first
 * and each after a reconnect) reloads the list to cover the time without
 * one.  While the stream cannot be had, the list is reloaded on each retry,
 * with the wait doubling up to RETRY_MAX_MS. */
const RETRY_MS = 2000, RETRY_MAX_MS = 30000;

async function follow() {
  let wait = RETRY_MS;
  while (state.token) {
    const ctl = new AbortController();
    state.stream = ctl;
    try {
      const res = await api("/api/v1/inbox/events", { signal: ctl.signal });
      wait = RETRY_MS;
      const reader = res.body.getReader(), dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          handleEvent(buf.slice(0, end));
          buf = buf.slice(end + 2);
        }
      }
    } catch (e) {
      if (!state.token || ctl !== state.stream) return;
      loadMessages().catch(() => { /* the next try again */ });
      wait = Math.min(wait * 2, RETRY_MAX_MS);
    }
    if (ctl !== state.stream) return; /* a newer follow() runs */
    await new Promise((r) => setTimeout(r, wait));
    if (ctl !== state.stream) return;
  }
}

function handleEvent(block) {
  let type = "message", data = "";
  block.split("\n").forEach((line) => {
    if (line.startsWith("event: ")) type = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  });
  if (type === "message") addMessage(JSON.parse(data));
  else if (type === "ready") {
    showInbox(JSON.parse(data));
    loadMessages().catch((e) => setStatus(e.message));
  }
  else if (type === "expired") gone();
}

async function start() {
  const m = /^#t=([0-9a-fA-F]{64})$/.exec(location.hash);
  if (m) {
    saveToken(m[1].toLowerCase());
    history.replaceState(null, "", "/");
  } else if (localStorage.getItem("sealmail-token")) {
    saveToken(localStorage.getItem("sealmail-token"));
  }
  try {
    if (state.token) {
      showInbox(await (await api("/api/v1/inbox")).json());
    } else {
      showInbox(await createInbox());
    }
    await loadMessages();
    follow();
  } catch (e) {
    if (state.token || $("expired").hidden) setStatus(e.message);
  }
}

function wire() {
  $("copy").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(state.inbox.address); setStatus("Address copied."); }
    catch (e) { setStatus("Select the address and copy it."); }
  });
  $("extend").addEventListener("click", async () => {
    try { showInbox(await (await api("/api/v1/inbox/extend", { method: "POST" })).json()); setStatus("Extended."); }
    catch (e) { setStatus(e.message); }
  });
  $("delete").addEventListener("click", async () => {
    if (!confirm("Delete this inbox and all its mail now?")) return;
    try {
      await api("/api/v1/inbox", { method: "DELETE" });
      gone();
      $("renew").focus();
    } catch (e) { setStatus(e.message); }
  });
  $("renew").addEventListener("click", () => { location.hash = ""; start(); });
  $("remote").addEventListener("click", () => state.open && openMessage(state.open.id, true));
  $("raw").addEventListener("click", () => state.open &&
    download("/api/v1/inbox/messages/" + state.open.id + "/raw", "message.eml").catch((e) => setStatus(e.message)));
  $("remove").addEventListener("click", async () => {
    if (!state.open) return;
    try {
      await api("/api/v1/inbox/messages/" + state.open.id, { method: "DELETE" });
      const next = removeMessage(state.open.id);
      /* the focus was on the button that just went: keep it in the list */
      (next ? next.querySelector("button") : $("messages-label")).focus();
    } catch (e) { setStatus(e.message); }
  });
  setInterval(tick, 1000);
}

wire();
start();
