/*
 * Slipway live log viewer. Plain modern JavaScript: no build step, no dependencies.
 *
 * Markup: templates/_log_viewer.html (any element with [data-log-viewer] and data-log-url).
 * Styles: static/css/logviewer.css.
 *
 * Server contract, all JSON {lines: [{seq, text, error}], next_after, finished, state}:
 *   ?tail=N                      the last N lines (first load, "back to newest")
 *   ?after=SEQ&limit=N           lines after SEQ (live polling, scrolling down an old window)
 *   ?before=SEQ&limit=N          the N lines just before SEQ (scrolling up)
 *   ?search=TEXT&after=SEQ&limit=N  first lines after SEQ containing TEXT (optional)
 *   ?errors=1&after=SEQ&limit=N  first error lines after SEQ (optional; used by "jump to first error",
 *                                detected by checking that every line of the answer is an error)
 * Which lines are errors is the server's call (`error: true`, deployments.logs.is_error_line): the
 * viewer shows them in red and jumps to them, and never guesses from the text itself.
 *
 * Server text is only ever written as text nodes / textContent, never parsed as HTML.
 * Only a bounded window of lines (maxLines, 3,000 by default) lives in the DOM at any time.
 */
(() => {
  "use strict";
  if (window.SlipwayLogViewer) return; // the partial may be included (and this script loaded) more than once

  const DEFAULTS = {
    tail: 1000, // lines fetched on first load and when jumping back to the newest lines
    page: 500, // lines fetched per step when scrolling up or down an old window
    maxLines: 3000, // line elements kept in the DOM at most
    pollLimit: 1000, // lines asked for per live poll
    interval: 1000, // ms between polls while the tab is visible
    hiddenInterval: 5000, // ms between polls while the tab is hidden
    maxBackoff: 30000, // ms, ceiling of the exponential backoff after failed requests
    follow: true,
  };
  const FAILED_STATE_RE = /fail|error|cancel|abort|timed?.?out|crash|reject|kill/i;
  const COLOURS = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"];
  // CSI (incl. SGR), OSC, DCS/SOS/PM/APC strings, other two-byte escapes, 8-bit CSI.
  const ESCAPES =
    /\x1b\[([0-9;:<=>?]*)[ -\/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[PX^_][^\x1b]*(?:\x1b\\)?|\x1b[ -\/]*[0-~]?|\x9b[0-9;:<=>?]*[ -\/]*[@-~]/g;
  const CONTROLS = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g; // keeps TAB

  const registry = new WeakMap();
  const fmt = (n) => Number(n).toLocaleString("en-US");
  const capitalise = (s) => s.charAt(0).toUpperCase() + s.slice(1);
  const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

  // ---------------------------------------------------------------- ANSI

  function applySgr(params, fg, bold) {
    const codes = params.split(";");
    for (let i = 0; i < codes.length; i++) {
      const code = codes[i];
      if (code.includes(":")) continue; // colon sub-parameters (38:2:...) are ignored whole
      const n = code === "" ? 0 : Number(code);
      if (n === 0) { fg = 0; bold = false; }
      else if (n === 1) bold = true;
      else if (n === 22) bold = false;
      else if ((n >= 30 && n <= 37) || (n >= 90 && n <= 97)) fg = n;
      else if (n === 39) fg = 0;
      else if (n === 38 || n === 48 || n === 58) {
        // extended colours: skip their arguments so that "38;5;31" is not read as red
        const mode = codes[i + 1];
        i += mode === "5" ? 2 : mode === "2" ? 4 : 0;
      }
    }
    return [fg, bold];
  }

  function colourClass(fg) {
    if (!fg) return "";
    return fg < 90 ? "ansi-" + COLOURS[fg - 30] : "ansi-bright-" + COLOURS[fg - 90];
  }

  /** Split one raw log line into [{t: text, c: "ansi-... classes"}]; escapes and control chars removed. */
  function parseAnsi(raw) {
    let text = raw == null ? "" : String(raw);
    if (text.includes("\r")) {
      // A carriage return redraws the line (progress bars): show the last drawing that has text.
      const parts = text.split("\r");
      text = "";
      for (let i = parts.length - 1; i >= 0; i--) {
        if (parts[i].replace(ESCAPES, "").replace(CONTROLS, "")) { text = parts[i]; break; }
      }
    }
    const segs = [];
    let fg = 0;
    let bold = false;
    let last = 0;
    const push = (s) => {
      s = s.replace(CONTROLS, "");
      if (!s) return;
      const c = [colourClass(fg), bold ? "ansi-bold" : ""].filter(Boolean).join(" ");
      const prev = segs[segs.length - 1];
      if (prev && prev.c === c) prev.t += s;
      else segs.push({ t: s, c });
    };
    ESCAPES.lastIndex = 0;
    let m;
    while ((m = ESCAPES.exec(text))) {
      push(text.slice(last, m.index));
      last = ESCAPES.lastIndex;
      if (m[2] === "m" && !/[<=>?]/.test(m[1])) [fg, bold] = applySgr(m[1], fg, bold);
    }
    push(text.slice(last));
    return segs;
  }


  /** Write segments into `box`, wrapping the [start, end) ranges in <mark class="logv-hit">. */
  function fillText(box, segs, ranges) {
    box.textContent = "";
    let pos = 0;
    let r = 0;
    for (const seg of segs) {
      const end = pos + seg.t.length;
      let p = pos;
      while (p < end) {
        while (r < ranges.length && ranges[r][1] <= p) r++;
        const range = ranges[r];
        const inHit = !!range && range[0] <= p;
        const stop = inHit ? Math.min(end, range[1]) : range ? Math.min(end, range[0]) : end;
        const piece = seg.t.slice(p - pos, stop - pos);
        let node;
        if (inHit) {
          node = document.createElement("mark");
          node.className = seg.c ? "logv-hit " + seg.c : "logv-hit";
          node.dataset.k = String(r);
          node.textContent = piece;
        } else if (seg.c) {
          node = document.createElement("span");
          node.className = seg.c;
          node.textContent = piece;
        } else {
          node = document.createTextNode(piece);
        }
        box.appendChild(node);
        p = stop;
      }
      pos = end;
    }
  }

  /** Keep well-formed lines in strictly increasing seq order. */
  function cleanLines(lines) {
    const out = [];
    if (!Array.isArray(lines)) return out;
    let last = -Infinity;
    for (const line of lines) {
      const seq = line && Number(line.seq);
      if (!Number.isInteger(seq) || seq < 1 || seq <= last) continue;
      out.push({ seq, text: line.text == null ? "" : String(line.text), error: line.error === true });
      last = seq;
    }
    return out;
  }

  // ---------------------------------------------------------------- viewer

  class LogViewer {
    constructor(root, options = {}) {
      this.root = root;
      const d = root.dataset;
      const num = (v, dflt) => { const n = parseInt(v, 10); return n > 0 ? n : dflt; };
      this.opts = Object.assign({}, DEFAULTS, {
        tail: num(d.tail, DEFAULTS.tail),
        maxLines: num(d.maxLines, DEFAULTS.maxLines),
        interval: num(d.pollInterval, DEFAULTS.interval),
        follow: d.follow !== "false",
      }, options);
      this.opts.maxLines = Math.max(this.opts.maxLines, this.opts.tail + this.opts.page);
      this.url = options.url || d.logUrl;

      const q = (name) => root.querySelector("[data-lv-" + name + "]");
      this.pane = q("pane") || root;
      this.list = q("lines");
      if (!this.list) {
        this.list = document.createElement("div");
        this.list.className = "logv-lines";
        this.pane.appendChild(this.list);
      }
      this.ui = {
        status: q("status"), conn: q("conn"), note: q("note"), announce: q("announce"),
        follow: q("follow"), newest: q("newest"), unseen: q("unseen"), error: q("error"),
        earlier: q("earlier"), later: q("later"), placeholder: q("placeholder"),
        search: q("search"), searchForm: q("search-form"), count: q("count"), prev: q("prev"), next: q("next"),
      };

      this.items = []; // the window: [{seq, segs, plain, err, el, hits, q}], contiguous and in order
      this.gen = 0; // bumped whenever the window is replaced; stale answers are dropped
      this.loaded = false;
      this.finished = false;
      this.state = d.state || "";
      this.nextAfter = 0; // live polling cursor
      this.latest = 0; // highest seq known to exist
      this.windowEnd = 0; // the window holds every line up to this seq (from its first line)
      this.atStart = false; // the window begins with the log's first line
      this.following = !!this.opts.follow;
      this.wantTail = false;
      this.failures = 0;
      this.timer = null;
      this.inflight = false;
      this.again = false;
      this.expectTop = null;
      this.lastTop = 0;
      this.rate = [];
      this.unseen = 0; // lines written since following stopped
      this.query = "";
      this.queryRe = null;
      this.matches = [];
      this.cur = -1;
      this.curKey = null;
      this.curMarks = [];
      this.targetSeq = null;
      this.abort = new AbortController();
      this.dead = false;

      this.bind();
      this.setFollow(this.following, true);
      this.updateEdges();
      if (!this.url) {
        this.showNote("This log has no address (data-log-url is empty).");
        return;
      }
      this.poll();
    }

    // ------------------------------------------------------------ events

    bind() {
      const { pane, ui } = this;
      const on = (el, type, fn, opts) => el && el.addEventListener(type, fn, opts);
      on(pane, "scroll", () => this.onScroll(), { passive: true });
      on(pane, "wheel", (e) => { if (e.deltaY < 0 && this.following) this.setFollow(false); }, { passive: true });
      on(pane, "touchmove", () => { if (this.following && !this.nearBottom()) this.setFollow(false); }, { passive: true });
      on(pane, "keydown", (e) => {
        if (["ArrowUp", "PageUp", "Home"].includes(e.key) && this.following) this.setFollow(false);
      });
      on(ui.follow, "click", () => this.setFollow(!this.following));
      on(ui.newest, "click", () => this.setFollow(true));
      on(ui.error, "click", () => this.jumpToFirstError());
      on(ui.earlier, "click", () => this.loadEarlier());
      on(ui.later, "click", () => this.loadLater());
      on(ui.searchForm, "submit", (e) => e.preventDefault());
      on(ui.search, "input", () => {
        clearTimeout(this.searchTimer);
        this.searchTimer = setTimeout(() => this.search(ui.search.value), 120);
      });
      on(ui.search, "keydown", (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          clearTimeout(this.searchTimer);
          if (ui.search.value !== this.query) this.search(ui.search.value);
          else this.step(e.shiftKey ? -1 : 1);
        } else if (e.key === "Escape" && ui.search.value) {
          e.preventDefault();
          ui.search.value = "";
          this.search("");
        }
      });
      on(ui.prev, "click", () => this.step(-1));
      on(ui.next, "click", () => this.step(1));
      this.onVisibility = () => {
        if (!this.root.isConnected) this.destroy();
        else if (!document.hidden && !this.finished && this.loaded) this.pollNow();
      };
      document.addEventListener("visibilitychange", this.onVisibility);
      if (window.ResizeObserver) {
        // Keep the newest line in view while following, whatever changes size (fonts, window, wraps).
        this.resizer = new ResizeObserver(() => { if (this.following && this.atTail()) this.scrollToBottom(); });
        this.resizer.observe(this.pane);
        this.resizer.observe(this.list);
      }
    }

    onScroll() {
      const pane = this.pane;
      const top = pane.scrollTop;
      const programmatic = this.expectTop !== null && Math.abs(top - this.expectTop) <= 1;
      this.expectTop = null;
      if (!programmatic) {
        if (this.following && top < this.lastTop - 1 && !this.nearBottom()) this.setFollow(false);
        else if (!this.following && this.loaded && top > this.lastTop && this.nearBottom(4) && this.atTail()) {
          this.setFollow(true); // the user scrolled back down to the newest line: follow again
        }
      }
      this.lastTop = top;
      if (!this.following) {
        const margin = Math.max(240, pane.clientHeight);
        if (top < margin) this.loadEarlier();
        if (pane.scrollHeight - top - pane.clientHeight < margin && !this.atTail()) this.loadLater();
      }
      this.updateNewest();
    }

    // ------------------------------------------------------------ network

    async get(params) {
      const u = new URL(this.url, document.baseURI);
      for (const [k, v] of Object.entries(params)) u.searchParams.set(k, String(v));
      const res = await fetch(u, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
        signal: this.abort.signal,
      });
      if (!res.ok) throw new Error("HTTP " + res.status);
      const data = await res.json();
      if (!data || typeof data !== "object") throw new Error("unexpected answer");
      if (data.state) this.state = String(data.state);
      return data;
    }

    pollDelay() {
      if (this.failures) return Math.min(this.opts.maxBackoff, this.opts.interval * 2 ** (this.failures - 1));
      if (this.hurry) return 30;
      return document.hidden ? this.opts.hiddenInterval : this.opts.interval;
    }

    schedule(delay) {
      clearTimeout(this.timer);
      if (this.dead) return;
      this.timer = setTimeout(() => this.poll(), delay);
    }

    pollNow() {
      if (this.inflight) this.again = true;
      else this.schedule(0);
    }

    /** One step of the loop: first load, live poll, catch-up or "peek" at the end of the log. */
    async poll() {
      if (this.dead) return;
      if (!this.root.isConnected) { this.destroy(); return; }
      if (this.inflight) { this.again = true; return; }
      if (this.finished && !this.wantTail) return;
      this.inflight = true;
      this.hurry = false;
      const cursor = this.nextAfter;
      // tail: first load / back to newest; after: live lines for a window that ends at the end of the log;
      // peek: the window shows older lines, so only learn how far the log has got (and whether it finished).
      const kind = !this.loaded || (this.wantTail && this.following) ? "tail" : this.atTail() ? "after" : "peek";
      try {
        const params = kind === "tail" ? { tail: this.opts.tail }
          : kind === "peek" ? { tail: 1 } : { after: cursor, limit: this.opts.pollLimit };
        const data = await this.get(params);
        if (this.dead) return;
        this.connected();
        const lines = cleanLines(data.lines);
        if (kind === "tail") {
          this.wantTail = false;
          this.setWindow(data, lines, { atStart: lines.length < this.opts.tail });
          this.loaded = true;
          if (this.following) this.scrollToBottom();
          if (data.finished) this.finish();
        } else if (kind === "peek") {
          this.advance(data, lines, cursor);
          if (data.finished) this.finish();
        } else {
          this.absorb(data, lines, cursor);
          if (lines.length >= this.opts.pollLimit) {
            // far behind: catch up at once, jumping straight to the newest lines while following
            this.hurry = true;
            if (this.following) this.wantTail = true;
          } else if (data.finished) {
            this.finish();
          }
        }
        this.updateStatus();
      } catch (err) {
        if (this.dead || err.name === "AbortError") return;
        this.failures += 1;
        this.showConn(true);
      } finally {
        this.inflight = false;
      }
      if (this.dead) return;
      if (this.again) { this.again = false; this.schedule(0); return; }
      if (!this.finished || this.wantTail) this.schedule(this.pollDelay());
    }

    connected() {
      if (this.failures) this.showConn(false);
      this.failures = 0;
    }

    showConn(on) {
      const el = this.ui.conn;
      if (!el || el.hidden === !on) return;
      el.hidden = !on;
      this.announce(on ? "Connection lost, reconnecting" : "Reconnected");
    }

    // ------------------------------------------------------------ the window

    lastSeq() { return this.items.length ? this.items[this.items.length - 1].seq : 0; }
    atTail() { return this.windowEnd >= this.nextAfter; }
    total() { return Math.max(this.latest, this.nextAfter); }

    noteSeqs(data, lines) {
      const last = lines.length ? lines[lines.length - 1].seq : 0;
      const na = Number(data.next_after) || 0;
      const before = this.total();
      this.latest = Math.max(this.latest, last, Number.isFinite(na) ? na : 0);
      if (!this.following && this.loaded) this.unseen += this.total() - before;
      return Math.max(last, Number.isFinite(na) ? na : 0);
    }

    advance(data, lines, cursor) {
      this.nextAfter = Math.max(this.nextAfter, cursor, this.noteSeqs(data, lines));
    }

    makeItem(line) {
      const segs = parseAnsi(line.text);
      const plain = segs.map((s) => s.t).join("");
      const item = { seq: line.seq, segs, plain, err: line.error === true, el: null, hits: 0, q: "" };
      const el = document.createElement("div");
      el.className = "logv-line" + (item.err ? " logv-line--error" : "") + (item.seq === this.targetSeq ? " logv-line--target" : "");
      el.dataset.seq = String(item.seq);
      const ln = document.createElement("span"); // the number is drawn by CSS (::before) so it is never copied
      ln.className = "logv-ln";
      ln.dataset.ln = String(item.seq);
      ln.setAttribute("aria-hidden", "true");
      const tx = document.createElement("span");
      tx.className = "logv-tx";
      el.append(ln, tx);
      item.el = el;
      item.tx = tx;
      const ranges = this.rangesFor(item);
      fillText(tx, segs, ranges);
      item.hits = ranges.length;
      item.q = this.query;
      return item;
    }

    buildFragment(lines) {
      const frag = document.createDocumentFragment();
      const fresh = lines.map((line) => this.makeItem(line));
      for (const it of fresh) frag.appendChild(it.el);
      return [frag, fresh];
    }

    /** Replace the whole window (first load, back to newest, jump to a far line). */
    setWindow(data, lines, { atStart }) {
      this.gen += 1;
      this.quiet();
      const end = this.noteSeqs(data, lines);
      const [frag, fresh] = this.buildFragment(lines.slice(-this.opts.maxLines));
      this.list.textContent = "";
      this.list.appendChild(frag);
      this.items = fresh;
      this.curMarks = [];
      this.atStart = !!atStart || (fresh.length > 0 && fresh[0].seq <= 1);
      this.windowEnd = Math.max(this.lastSeq(), end);
      this.nextAfter = Math.max(this.nextAfter, end);
      this.updateGutter();
      this.updateEdges();
      this.refreshSearch();
    }

    /** Live lines from a poll of ?after=cursor. */
    absorb(data, lines, cursor) {
      const end = this.noteSeqs(data, lines);
      if (this.windowEnd >= cursor) {
        const last = this.lastSeq();
        let fresh = lines.filter((l) => l.seq > last);
        let complete = true;
        if (!this.following) {
          // Not following: never trim what the user may be reading; stop growing when full instead.
          const room = Math.max(0, this.opts.maxLines - this.items.length);
          if (fresh.length > room) { fresh = fresh.slice(0, room); complete = false; }
        }
        if (fresh.length) this.append(fresh);
        this.windowEnd = complete ? Math.max(this.windowEnd, end, cursor) : this.lastSeq();
      }
      this.nextAfter = Math.max(this.nextAfter, cursor, end);
      this.updateGutter();
      this.updateEdges();
    }

    append(lines) {
      this.liveness(lines.length);
      const anchor = this.following ? null : this.captureAnchor();
      const [frag, fresh] = this.buildFragment(lines);
      this.list.appendChild(frag);
      this.items = this.items.concat(fresh);
      if (this.following) {
        const excess = this.items.length - this.opts.maxLines;
        if (excess > 0) this.trimTop(excess);
        this.scrollToBottom();
      } else {
        this.restoreAnchor(anchor);
      }
      this.refreshSearch();
    }

    trimTop(n) {
      const gone = this.items.splice(0, n);
      for (const it of gone) it.el.remove();
      if (gone.length) this.atStart = false;
    }

    trimBottom(n) {
      const gone = this.items.splice(this.items.length - n, n);
      for (const it of gone) it.el.remove();
      this.windowEnd = this.lastSeq();
    }

    async loadEarlier() {
      if (this.busyEarlier || this.atStart || !this.items.length || this.dead) return;
      this.busyEarlier = true;
      this.updateEdges();
      const gen = this.gen;
      const first = this.items[0].seq;
      let got = 0;
      try {
        const data = await this.get({ before: first, limit: this.opts.page });
        this.connected();
        if (gen !== this.gen || !this.items.length || this.items[0].seq !== first) return;
        const lines = cleanLines(data.lines).filter((l) => l.seq < first);
        got = lines.length;
        if (this.following) this.setFollow(false);
        this.quiet();
        const anchor = this.captureAnchor();
        const [frag, fresh] = this.buildFragment(lines);
        this.list.insertBefore(frag, this.list.firstChild);
        this.items = fresh.concat(this.items);
        if (lines.length < this.opts.page || (fresh.length && fresh[0].seq <= 1)) this.atStart = true;
        const excess = this.items.length - this.opts.maxLines;
        if (excess > 0) this.trimBottom(excess);
        this.busyEarlier = false;
        this.updateEdges();
        this.restoreAnchor(anchor);
        this.refreshSearch();
      } catch (err) {
        if (err.name !== "AbortError") this.showNote("Could not load earlier lines.");
      } finally {
        this.busyEarlier = false;
        this.updateEdges();
      }
      if (got && !this.atStart && this.pane.scrollTop < 240) this.loadEarlier();
    }

    async loadLater() {
      if (this.busyLater || this.atTail() || !this.items.length || this.dead) return;
      this.busyLater = true;
      this.updateEdges();
      const gen = this.gen;
      const last = this.lastSeq();
      try {
        const data = await this.get({ after: this.windowEnd, limit: this.opts.page });
        this.connected();
        if (gen !== this.gen || this.lastSeq() !== last) return;
        const lines = cleanLines(data.lines);
        const end = this.noteSeqs(data, lines);
        const fresh = lines.filter((l) => l.seq > last);
        this.quiet();
        const anchor = this.captureAnchor();
        const [frag, built] = this.buildFragment(fresh);
        this.list.appendChild(frag);
        this.items = this.items.concat(built);
        this.windowEnd = lines.length < this.opts.page ? Math.max(this.windowEnd, end) : Math.max(this.windowEnd, this.lastSeq());
        const excess = this.items.length - this.opts.maxLines;
        if (excess > 0) this.trimTop(excess);
        this.busyLater = false;
        this.updateGutter();
        this.updateEdges();
        this.restoreAnchor(anchor);
        this.refreshSearch();
      } catch (err) {
        if (err.name !== "AbortError") this.showNote("Could not load later lines.");
      } finally {
        this.busyLater = false;
        this.updateEdges();
      }
    }

    /** Load a window around `seq` (a line outside the loaded window). */
    async showAround(seq) {
      const after = Math.max(0, seq - 1 - Math.floor(this.opts.tail / 4));
      const data = await this.get({ after, limit: this.opts.tail });
      this.connected();
      const lines = cleanLines(data.lines);
      this.setWindow(data, lines, { atStart: after === 0 });
      if (lines.length >= this.opts.tail) this.windowEnd = this.lastSeq();
      this.updateEdges();
    }

    findItem(seq) {
      let lo = 0;
      let hi = this.items.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        const s = this.items[mid].seq;
        if (s === seq) return this.items[mid];
        if (s < seq) lo = mid + 1;
        else hi = mid - 1;
      }
      return null;
    }

    // ------------------------------------------------------------ scrolling

    nearBottom(px = 24) {
      const p = this.pane;
      return p.scrollHeight - p.scrollTop - p.clientHeight <= px;
    }

    setScrollTop(value) {
      this.pane.scrollTop = value;
      this.expectTop = this.pane.scrollTop;
      this.lastTop = this.expectTop;
    }

    scrollToBottom() { this.setScrollTop(this.pane.scrollHeight); }

    scrollToItem(item) {
      const el = item.el;
      this.setScrollTop(el.offsetTop - Math.max(0, (this.pane.clientHeight - el.offsetHeight) / 2));
    }

    /** The first line at or below the top of the view, and where it is on screen. */
    captureAnchor() {
      const top = this.pane.scrollTop;
      let lo = 0;
      let hi = this.items.length - 1;
      let found = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        const el = this.items[mid].el;
        if (el.offsetTop + el.offsetHeight > top) { found = mid; hi = mid - 1; } else lo = mid + 1;
      }
      if (found < 0) return null;
      const el = this.items[found].el;
      return { el, offset: el.offsetTop - top };
    }

    restoreAnchor(anchor) {
      if (anchor && anchor.el.isConnected) this.setScrollTop(anchor.el.offsetTop - anchor.offset);
    }

    setFollow(on, initial = false) {
      on = !!on;
      const changed = on !== this.following;
      this.following = on;
      if (on) this.unseen = 0;
      this.root.classList.toggle("logv--following", on);
      if (this.ui.follow) this.ui.follow.setAttribute("aria-pressed", String(on));
      if (on && !initial) {
        if (this.atTail()) this.scrollToBottom();
        else { this.wantTail = true; this.pollNow(); }
      }
      if (changed && !initial) this.liveness(0);
      this.updateNewest();
    }

    // ------------------------------------------------------------ search and errors

    rangesFor(item) {
      const re = this.queryRe;
      if (!re) return [];
      const out = [];
      re.lastIndex = 0;
      let m;
      while ((m = re.exec(item.plain)) && out.length < 1000) out.push([m.index, m.index + m[0].length]);
      return out;
    }

    /** Highlight `query` (case-insensitive, literal) in the loaded lines and go to the first match in view. */
    search(query) {
      query = String(query || "");
      if (this.ui.search && this.ui.search.value !== query) this.ui.search.value = query;
      this.query = query;
      this.queryRe = query ? new RegExp(escapeRe(query), "gi") : null;
      this.cur = -1;
      this.curKey = null;
      this.refreshSearch();
      if (!this.matches.length) {
        this.updateCount();
        if (query) this.announce("No matches in the loaded lines");
        return 0;
      }
      const top = this.pane.scrollTop;
      let i = this.matches.findIndex((m) => m.it.el.offsetTop >= top);
      if (i < 0) i = 0;
      this.goToMatch(i);
      return this.matches.length;
    }

    step(delta) {
      if (!this.matches.length) return;
      const n = this.matches.length;
      this.goToMatch(this.cur < 0 ? (delta > 0 ? 0 : n - 1) : (this.cur + delta + n) % n);
    }

    goToMatch(i) {
      this.cur = i;
      const m = this.matches[i];
      this.curKey = m.it.seq + ":" + m.k;
      this.markCurrent();
      if (this.following) this.setFollow(false);
      this.scrollToItem(m.it);
      this.updateCount();
      this.announce(`Match ${i + 1} of ${this.matches.length}, line ${fmt(m.it.seq)}`);
    }

    /** Re-highlight lines whose highlighting is stale and recount the matches. */
    refreshSearch() {
      this.matches = [];
      for (const it of this.items) {
        const ranges = this.rangesFor(it);
        if (it.q !== this.query) {
          if (it.hits || ranges.length) fillText(it.tx, it.segs, ranges);
          it.hits = ranges.length;
          it.q = this.query;
        }
        for (let k = 0; k < ranges.length; k++) this.matches.push({ it, k });
      }
      this.cur = this.curKey ? this.matches.findIndex((m) => m.it.seq + ":" + m.k === this.curKey) : -1;
      this.markCurrent();
      this.updateCount();
    }

    markCurrent() {
      for (const el of this.curMarks) el.classList.remove("logv-hit--current");
      this.curMarks = [];
      const m = this.matches[this.cur];
      if (!m) return;
      this.curMarks = Array.from(m.it.el.querySelectorAll(`mark[data-k="${m.k}"]`));
      for (const el of this.curMarks) el.classList.add("logv-hit--current");
    }

    updateCount() {
      const el = this.ui.count;
      if (!el) return;
      const n = this.matches.length;
      el.textContent = this.query ? `${this.cur >= 0 ? fmt(this.cur + 1) : n ? "–" : "0"}/${fmt(n)}` : "";
      el.classList.toggle("logv-count--none", !!this.query && !n);
      el.title = this.query ? `${fmt(n)} match${n === 1 ? "" : "es"} in the ${fmt(this.items.length)} loaded lines` : "";
      if (this.ui.prev) this.ui.prev.disabled = !n;
      if (this.ui.next) this.ui.next.disabled = !n;
    }

    /** Ask the server for the first error line; null if there is none, undefined if it cannot say. */
    async serverFirstError() {
      try {
        const data = await this.get({ errors: 1, after: 0, limit: 1 });
        const lines = cleanLines(data.lines);
        // A server without ?errors= ignores it and answers as for ?after=0: its lines aren't all errors.
        if (!lines.every((l) => l.error)) return undefined;
        return lines.length ? lines[0].seq : null;
      } catch (err) {
        return undefined;
      }
    }

    async jumpToFirstError() {
      if (this.busyJump || this.dead) return null;
      this.busyJump = true;
      const btn = this.ui.error;
      if (btn) btn.setAttribute("aria-busy", "true");
      try {
        const local = this.items.find((it) => it.err);
        let seq = null;
        if (this.atStart && local) seq = local.seq; // the window starts at line 1: the first match is the first
        else {
          const remote = await this.serverFirstError();
          if (typeof remote === "number") seq = remote;
          else if (remote === undefined && local) seq = local.seq;
        }
        if (seq === null) {
          this.showNote(this.atStart && this.atTail() ? "No errors found." : "No errors in the loaded lines.");
          return null;
        }
        await this.jumpToLine(seq);
        return seq;
      } catch (err) {
        if (err.name !== "AbortError") this.showNote("Could not load that part of the log.");
        return null;
      } finally {
        this.busyJump = false;
        if (btn) btn.removeAttribute("aria-busy");
      }
    }

    /** Scroll to line `seq`, loading the part of the log around it if needed, and mark it. */
    async jumpToLine(seq) {
      if (this.following) this.setFollow(false);
      let item = this.findItem(seq);
      if (!item) {
        this.targetSeq = seq;
        await this.showAround(seq);
        item = this.findItem(seq);
      }
      if (!item) return;
      const old = this.targetSeq !== null && this.findItem(this.targetSeq);
      if (old) old.el.classList.remove("logv-line--target");
      this.targetSeq = seq;
      item.el.classList.add("logv-line--target");
      this.scrollToItem(item);
      this.updateNewest();
      this.announce(`Line ${fmt(seq)}: ${item.plain.slice(0, 200)}`);
    }

    // ------------------------------------------------------------ status and chrome

    finish() {
      if (this.finished) return;
      this.finished = true;
      clearTimeout(this.timer);
      this.updateStatus();
      this.updateEdges();
      this.announce(`Log finished, ${fmt(this.total())} lines`);
      this.root.dispatchEvent(new CustomEvent("log-viewer:finished", {
        bubbles: true,
        detail: { state: this.state, lines: this.total() },
      }));
    }

    updateStatus() {
      const n = this.total();
      const failed = !!this.state && FAILED_STATE_RE.test(this.state);
      const phase = !this.loaded ? "loading" : !this.finished ? "live" : failed ? "failed" : "finished";
      this.root.dataset.phase = phase;
      if (this.state) this.root.dataset.state = this.state;
      const el = this.ui.status;
      if (!el) return;
      const label = phase === "live" ? "Live" : phase === "failed" ? capitalise(this.state) : phase === "finished" ? "Finished" : "Loading";
      el.textContent = `${label} · ${fmt(n)} line${n === 1 ? "" : "s"}`;
      el.title = this.state ? `State: ${this.state}` : "";
    }

    updateGutter() {
      const digits = Math.max(3, String(Math.max(this.total(), this.lastSeq())).length);
      if (digits !== this.digits) {
        this.digits = digits;
        this.root.style.setProperty("--logv-digits", String(digits));
      }
    }

    updateEdges() {
      const { earlier, later, placeholder } = this.ui;
      const has = this.items.length > 0;
      if (earlier) {
        earlier.hidden = this.atStart || !has;
        const above = has ? this.items[0].seq - 1 : 0;
        earlier.textContent = this.busyEarlier ? "Loading earlier lines…" : `Load earlier lines (${fmt(above)} above)`;
      }
      if (later) {
        later.hidden = this.atTail() || !has;
        const below = Math.max(0, this.total() - this.lastSeq());
        later.textContent = this.busyLater ? "Loading later lines…" : `Load later lines (${fmt(below)} below)`;
      }
      if (placeholder) {
        placeholder.hidden = has;
        if (!has && this.loaded) placeholder.textContent = this.finished ? "This log is empty." : "Waiting for output…";
      }
      this.updateNewest();
    }

    updateNewest() {
      const btn = this.ui.newest;
      if (!btn) return;
      const show = this.loaded && !this.following && !(this.atTail() && this.nearBottom());
      if (btn.hidden === show) btn.hidden = !show;
      const unseen = this.ui.unseen;
      const text = show && this.unseen ? `${fmt(this.unseen)} new` : "";
      if (unseen && unseen.textContent !== text) {
        unseen.textContent = text;
        unseen.hidden = !text;
      }
    }

    /** role=log is polite, but a flood of lines is not read out: aria-live goes off while lines pour in. */
    liveness(n) {
      const now = performance.now();
      this.rate = this.rate.filter(([t]) => now - t < 5000);
      if (n) this.rate.push([now, n]);
      const recent = this.rate.reduce((sum, [, k]) => sum + k, 0);
      const quiet = now < (this.quietUntil || 0) || recent > 20;
      const mode = quiet ? "off" : "polite";
      if (this.pane.getAttribute("aria-live") !== mode) this.pane.setAttribute("aria-live", mode);
    }

    /** Silence the live region for a moment: prepending or replacing lines is not news. */
    quiet() {
      this.quietUntil = performance.now() + 800;
      this.liveness(0);
      clearTimeout(this.quietTimer);
      this.quietTimer = setTimeout(() => this.liveness(0), 850);
    }

    announce(msg) {
      const el = this.ui.announce;
      if (!el) return;
      el.textContent = "";
      clearTimeout(this.announceTimer);
      this.announceTimer = setTimeout(() => { el.textContent = msg; }, 60);
    }

    showNote(msg) {
      const el = this.ui.note;
      this.announce(msg);
      if (!el) return;
      el.textContent = msg;
      el.hidden = false;
      clearTimeout(this.noteTimer);
      this.noteTimer = setTimeout(() => { el.hidden = true; }, 5000);
    }

    // ------------------------------------------------------------ public API

    follow(on = true) { this.setFollow(on); }
    refresh() { this.pollNow(); }
    get lineCount() { return this.total(); }
    get loadedRange() { return this.items.length ? [this.items[0].seq, this.lastSeq()] : null; }

    destroy() {
      if (this.dead) return;
      this.dead = true;
      clearTimeout(this.timer);
      clearTimeout(this.searchTimer);
      this.abort.abort();
      document.removeEventListener("visibilitychange", this.onVisibility);
      if (this.resizer) this.resizer.disconnect();
      registry.delete(this.root);
    }
  }

  // ---------------------------------------------------------------- boot

  /** Start a viewer on every [data-log-viewer] in `scope` (default: the document); returns them all. */
  function init(scope, options) {
    const root = scope || document;
    const found = [];
    if (root.matches && root.matches("[data-log-viewer]")) found.push(root);
    if (root.querySelectorAll) found.push(...root.querySelectorAll("[data-log-viewer]"));
    return found.map((el) => {
      let viewer = registry.get(el);
      if (!viewer || viewer.dead) {
        viewer = new LogViewer(el, options);
        registry.set(el, viewer);
      }
      return viewer;
    });
  }

  window.SlipwayLogViewer = {
    init,
    get: (el) => registry.get(el) || null,
    parseAnsi,
    LogViewer,
    defaults: DEFAULTS,
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => init());
  else init();
  // htmx swaps in new content: start the viewers it brought (outerHTML swaps replace the target, so look everywhere).
  document.addEventListener("htmx:afterSettle", () => init());
})();
