// inbox.mjs — drives the disposable-inbox page in headless Chromium for
// tests/e2e/test_browser.py.
//
// Why a driver and not a test runner: the test (pytest) owns the server and
// sends mail with swaks; this process owns the browser.  They talk over
// stdin/stdout, one JSON object a line:
//   in:  {"id": 1, "cmd": "goto", "ctx": "a", "url": "https://127.0.0.1:N/"}
//   out: {"id": 1, "ok": true, "result": ...}   or  {"id": 1, "ok": false, "error": "..."}
// The first line out is {"ready": true, "browser": VERSION} once Chromium runs.
// Everything else (diagnostics) goes to stderr.
//
// The browser is Debian's Chromium (SEALMAIL_CHROMIUM, default
// /usr/bin/chromium) driven by playwright-core; nothing is downloaded.  It
// must never reach beyond 127.0.0.1: the host resolver maps every name to
// NOTFOUND, no proxy is used, background services are off, and every
// request to another host is aborted by a route handler that COUNTS it
// (command "stats"), so a test can assert that nothing tried to leave and
// can prove that "Load remote images" does try.
//
// Limits: every command is bounded by Playwright's timeouts (TIMEOUT_MS);
// the lists this keeps (requests, console lines) are capped at LIST_MAX.
import { createInterface } from "node:readline";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const HERE = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.SEALMAIL_CHROMIUM || "/usr/bin/chromium";
const TIMEOUT_MS = 20000;
const LIST_MAX = 2000;
const ALLOWED_HOST = "127.0.0.1";

function die(message) {
  process.stdout.write(JSON.stringify({ ready: false, error: message }) + "\n");
  process.exit(2);
}

if (!existsSync(join(HERE, "node_modules", "playwright-core", "package.json")))
  die(`playwright-core is not installed in ${HERE}/node_modules: run \`make browser-deps\` ` +
      "(npm ci --prefix tests/e2e/browser)");
if (!existsSync(CHROMIUM))
  die(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set SEALMAIL_CHROMIUM)`);

const { chromium } = await import("playwright-core");

const ARGS = [
  // names resolve to nothing but the loopback address the server is on
  `--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE ${ALLOWED_HOST}`,
  "--no-proxy-server",
  "--disable-domain-reliability",
  "--disable-sync",
  "--no-pings",
  "--disable-crash-reporter",
  "--disable-gpu",
  "--hide-scrollbars",
];

let browser;
try {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS,
                                    timeout: 60000 });
} catch (e) {
  die(`Chromium at ${CHROMIUM} did not start: ${e.message}`);
}

const contexts = new Map(); // name -> Ctx

function push(list, item) {
  if (list.length < LIST_MAX) list.push(item);
}

class Ctx {
  constructor(name) {
    this.name = name;
    this.blocked = [];        // requests to any host but ALLOWED_HOST (aborted)
    this.requests = [];       // "METHOD path" of every request to ALLOWED_HOST
    this.dialogs = [];        // {type, message, accepted}
    this.console = [];        // {type, text, where: the script's URL, about:srcdoc in the frame}
    this.pageErrors = [];     // uncaught exceptions of the page
    this.acceptDialogs = 0;   // how many coming dialogs to accept (others are dismissed)
    this.watches = new Map(); // subject -> promise of the time its list entry appeared
    this.held = [];           // live-stream requests held back (hold_stream)
  }

  async open() {
    this.context = await browser.newContext({
      ignoreHTTPSErrors: true, // the server's certificate is self-signed
      viewport: { width: 1200, height: 800 },
      deviceScaleFactor: 1,
      locale: "en-US",
      timezoneId: "UTC",
    });
    this.context.setDefaultTimeout(TIMEOUT_MS);
    await this.context.route("**/*", (route) => this.route(route));
    this.page = await this.context.newPage();
    this.page.on("dialog", (d) => this.dialog(d));
    this.page.on("console", (m) => push(this.console, {
      type: m.type(), text: m.text(),
      where: (m.location() && m.location().url) || "",
    }));
    this.page.on("pageerror", (e) => push(this.pageErrors, String(e && e.message || e)));
    return this;
  }

  route(route) {
    const url = route.request().url();
    let host = "";
    try { host = new URL(url).hostname; } catch (e) { /* not a URL: count it */ }
    if (host === ALLOWED_HOST) {
      const u = new URL(url);
      push(this.requests, route.request().method() + " " + u.pathname + u.search);
      return route.continue().catch((e) => console.error(`continue ${url}: ${e.message}`));
    }
    push(this.blocked, url);
    return route.abort("blockedbyclient").catch((e) => console.error(`abort ${url}: ${e.message}`));
  }

  async dialog(d) {
    const accept = this.acceptDialogs > 0;
    if (accept) this.acceptDialogs--;
    push(this.dialogs, { type: d.type(), message: d.message(), accepted: accept });
    try {
      if (accept) await d.accept(); else await d.dismiss();
    } catch (e) { /* the page went away */ }
  }
}

function ctx(name) {
  const c = contexts.get(name);
  if (!c) throw new Error(`no browser context named ${name}`);
  return c;
}

// The message list entry whose subject line is exactly `subject`.
function entry(page, subject) {
  return page.locator("#messages li button").filter({
    has: page.locator("span:first-child", { hasText: new RegExp("^" + escapeRe(subject) + "$") }),
  });
}

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

async function inboxState(page) {
  return page.evaluate(() => {
    const $ = (id) => document.getElementById(id);
    const visible = (el) => !!el && !el.hidden && el.getClientRects().length > 0;
    return {
      address: $("address").textContent,
      countdown: $("countdown").textContent,
      keep: $("keep").href,
      status: $("status").textContent,
      inboxVisible: visible($("inbox")),
      expiredVisible: visible($("expired")),
      readerVisible: visible($("reader")),
      emptyVisible: visible($("empty")),
      entries: [...document.querySelectorAll("#messages li button")].map((b) => ({
        subject: b.querySelector("span").textContent, unseen: b.classList.contains("unseen"),
      })),
      token: localStorage.getItem("sealmail-token"),
      url: location.href,
    };
  });
}

// What the reader's frame shows, read through Playwright's frame API (the
// frame is sandboxed without scripts: the page itself could not read it).
async function frameState(page) {
  const handle = await page.$("#body");
  const frame = handle && await handle.contentFrame();
  if (!frame) throw new Error("the reader has no frame");
  const inside = await frame.evaluate(() => {
    const attr = (el, name) => el.getAttribute(name);
    return {
      url: document.URL,
      text: document.body ? document.body.innerText : "",
      html: document.documentElement ? document.documentElement.outerHTML : "",
      links: [...document.querySelectorAll("a, area, [href], [xlink\\:href]")].map((a) => ({
        tag: a.tagName.toLowerCase(), text: a.textContent.trim(),
        href: attr(a, "href"), xlink: a.getAttributeNS("http://www.w3.org/1999/xlink", "href"),
        target: attr(a, "target"), rel: attr(a, "rel"),
      })),
      images: [...document.images].map((i) => ({
        src: attr(i, "src"), dataSrc: attr(i, "data-sm-src"), srcset: attr(i, "srcset"),
        complete: i.complete, naturalWidth: i.naturalWidth,
      })),
      counts: Object.fromEntries(["script", "form", "input", "iframe", "frame", "object", "embed",
        "svg", "math", "base", "meta", "style", "link", "[onload]", "[onerror]",
        "[onclick]", "[onmouseover]", "[onfocus]", "[ontoggle]"]
        .map((s) => [s, document.querySelectorAll(s).length])),
      csp: [...document.querySelectorAll('meta[http-equiv="Content-Security-Policy"]')]
        .map((m) => m.content),
    };
  });
  return Object.assign(inside, {
    frameUrl: frame.url(),
    sandbox: await handle.getAttribute("sandbox"),
    frames: page.frames().length,
  });
}

// Waits until the reader shows `subject` and its frame holds `text`.
async function waitReader(page, subject, text) {
  await page.locator("#reader").waitFor({ state: "visible" });
  await page.locator("#reader-subject", { hasText: subject }).waitFor();
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const state = await frameState(page).catch((e) => ({ error: e.message }));
    if (!state.error && state.text.includes(text)) return state;
    if (Date.now() > deadline)
      throw new Error(`the frame never showed ${JSON.stringify(text)}: ${JSON.stringify(state)}`);
    await page.waitForTimeout(50);
  }
}

// The element that has the focus, described for a human.
async function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const style = getComputedStyle(el);
    return {
      tag: el.tagName.toLowerCase(), id: el.id || null,
      text: (el.textContent || "").trim().replace(/\s+/g, " ").slice(0, 80),
      subject: el.closest("#messages") ? el.querySelector("span").textContent : null,
      outline: style.outlineStyle + " " + style.outlineWidth,
    };
  });
}

const commands = {
  async context({ ctx: name }) {
    if (contexts.has(name)) throw new Error(`context ${name} exists`);
    contexts.set(name, await new Ctx(name).open());
    return name;
  },

  async close({ ctx: name }) {
    await ctx(name).context.close();
    contexts.delete(name);
    return name;
  },

  async goto({ ctx: name, url }) {
    const res = await ctx(name).page.goto(url, { waitUntil: "load" });
    return { status: res ? res.status() : null };
  },

  async reload({ ctx: name }) {
    const res = await ctx(name).page.reload({ waitUntil: "load" });
    return { status: res ? res.status() : null };
  },

  // The inbox once the page has shown an address and a running countdown.
  async inbox({ ctx: name }) {
    const { page } = ctx(name);
    await page.waitForFunction(() => /@/.test(document.getElementById("address").textContent) &&
      /\d+ min \d\d s$/.test(document.getElementById("countdown").textContent));
    return inboxState(page);
  },

  async state({ ctx: name }) {
    return inboxState(ctx(name).page);
  },

  // Starts waiting for a list entry; "appeared" returns when it came.
  async watch({ ctx: name, subject }) {
    const c = ctx(name);
    const since = Date.now();
    const p = entry(c.page, subject).waitFor({ state: "visible", timeout: 30000 })
      .then(() => ({ at: Date.now(), since }), (e) => ({ error: e.message }));
    c.watches.set(subject, p);
    return since;
  },

  async appeared({ ctx: name, subject }) {
    const p = ctx(name).watches.get(subject);
    if (!p) throw new Error(`no watch for ${subject}`);
    const r = await p;
    if (r.error) throw new Error(`no list entry "${subject}": ${r.error}`);
    return r;
  },

  // Clicks a list entry and returns what the reader's frame shows.
  async open({ ctx: name, subject, expect }) {
    const { page } = ctx(name);
    await entry(page, subject).click();
    return waitReader(page, subject, expect);
  },

  async reader({ ctx: name, subject, expect }) {
    return waitReader(ctx(name).page, subject, expect);
  },

  async frame({ ctx: name }) {
    return frameState(ctx(name).page);
  },

  async button({ ctx: name }) {
    const b = ctx(name).page.locator("#remote");
    return { visible: await b.isVisible(), text: await b.textContent() };
  },

  async click({ ctx: name, selector }) {
    await ctx(name).page.locator(selector).click();
    return true;
  },

  // Clicks an element inside the reader's frame (e.g. a link); returns
  // whether the page or the frame navigated away.
  async click_in_frame({ ctx: name, selector }) {
    const { page } = ctx(name);
    const before = page.url();
    const popups = [];
    const onPopup = (p) => popups.push(p.url());
    page.context().on("page", onPopup);
    await page.frameLocator("#body").locator(selector).click({ timeout: 5000 });
    await page.waitForTimeout(500);
    page.context().off("page", onPopup);
    const frame = await (await page.$("#body")).contentFrame();
    const frameUrl = frame ? await frame.evaluate(() => document.URL) : null;
    return { pageUrl: page.url(), pageChanged: page.url() !== before, frameUrl, popups };
  },

  // Holds back the page's requests for the live stream until release_stream.
  async hold_stream({ ctx: name }) {
    const c = ctx(name);
    await c.page.route("**/api/v1/inbox/events", (route) => { c.held.push(route); });
    return true;
  },

  async wait_held({ ctx: name, n }) {
    const c = ctx(name);
    const deadline = Date.now() + TIMEOUT_MS;
    while (c.held.length < n) {
      if (Date.now() > deadline) throw new Error(`fewer than ${n} stream requests held`);
      await c.page.waitForTimeout(50);
    }
    return c.held.length;
  },

  // Lets the held requests (and all later ones) through the usual route.
  async release_stream({ ctx: name }) {
    const c = ctx(name);
    const held = c.held.splice(0);
    for (const route of held) await route.fallback();
    await c.page.unroute("**/api/v1/inbox/events");
    return held.length;
  },

  async accept_dialogs({ ctx: name, n }) {
    ctx(name).acceptDialogs = n;
    return n;
  },

  async wait_visible({ ctx: name, selector }) {
    await ctx(name).page.locator(selector).waitFor({ state: "visible" });
    return true;
  },

  async wait_hidden({ ctx: name, selector }) {
    await ctx(name).page.locator(selector).waitFor({ state: "hidden" });
    return true;
  },

  // Waits until at least n requests were blocked (bounded), then stats.
  async wait_blocked({ ctx: name, n }) {
    const c = ctx(name);
    const deadline = Date.now() + 10000;
    while (c.blocked.length < n && Date.now() < deadline) await c.page.waitForTimeout(50);
    return commands.stats({ ctx: name });
  },

  async stats({ ctx: name }) {
    const c = ctx(name);
    return { blocked: c.blocked, requests: c.requests, dialogs: c.dialogs, console: c.console,
             pageErrors: c.pageErrors };
  },

  // Lets things settle (timers, a meta refresh, an image's onerror).
  async settle({ ctx: name, ms }) {
    await ctx(name).page.waitForTimeout(Math.min(ms, 5000));
    return true;
  },

  // Tab from the top of the page: the focus stops, in order.
  async tab_trail({ ctx: name, n }) {
    const { page } = ctx(name);
    await page.evaluate(() => { document.activeElement && document.activeElement.blur(); });
    await page.mouse.click(1, 1);  // nothing there: the focus starts at the document
    const trail = [];
    for (let i = 0; i < Math.min(n, 100); i++) {
      await page.keyboard.press("Tab");
      trail.push(await focused(page));
    }
    return trail;
  },

  // Presses Tab until the focus is on `selector` (or a list entry with
  // `subject`); returns the number of presses.  Fails after `max`.
  async tab_to({ ctx: name, selector, subject, max }) {
    const { page } = ctx(name);
    for (let i = 1; i <= Math.min(max || 50, 100); i++) {
      await page.keyboard.press("Tab");
      const f = await focused(page);
      if (f && ((subject && f.subject === subject) ||
                (selector && await page.evaluate((s) => document.activeElement.matches(s),
                                                 selector))))
        return { presses: i, focused: f };
    }
    throw new Error(`Tab never reached ${selector || subject}`);
  },

  async press({ ctx: name, key }) {
    const { page } = ctx(name);
    await page.keyboard.press(key);
    return focused(page);
  },

  async focused({ ctx: name }) {
    return focused(ctx(name).page);
  },

  // Control for the console detector: an unsanitised script put into the
  // frame must produce Chromium's "Blocked script execution" error.
  async control_script({ ctx: name }) {
    const { page } = ctx(name);
    await page.evaluate(() => {
      document.getElementById("body").srcdoc =
        "<p>control</p><script>alert('control')</script><img src=x onerror=alert('control')>";
    });
    const frame = await (await page.$("#body")).contentFrame();
    await frame.waitForFunction(() => document.body && document.body.innerText.includes("control"),
                                null, { polling: 50 }).catch(() => { /* reported by the caller */ });
    await page.waitForTimeout(300);
    return true;
  },

  async screenshot({ ctx: name, path }) {
    await ctx(name).page.screenshot({ path, type: "png" });
    return path;
  },
};

async function handle(line) {
  let msg;
  try { msg = JSON.parse(line); } catch (e) { return { ok: false, error: "bad JSON line" }; }
  const fn = Object.prototype.hasOwnProperty.call(commands, msg.cmd) ? commands[msg.cmd] : null;
  if (!fn) return { id: msg.id, ok: false, error: `unknown command ${msg.cmd}` };
  try {
    return { id: msg.id, ok: true, result: await fn(msg) };
  } catch (e) {
    return { id: msg.id, ok: false, error: String(e && e.message || e) };
  }
}

// Commands run one after another, in the order they came.
let chain = Promise.resolve();
const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  chain = chain.then(async () => {
    const reply = await handle(line);
    process.stdout.write(JSON.stringify(reply) + "\n");
  });
});
rl.on("close", () => {
  chain.then(() => browser.close()).then(() => process.exit(0), () => process.exit(1));
});

process.stdout.write(JSON.stringify({ ready: true, browser: browser.version() }) + "\n");
