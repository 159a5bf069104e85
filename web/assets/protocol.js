// protocol.js: the classroom websocket client (docs/protocol.md).
//
// One socket at a time. The first message is always `join` (the token never
// travels in the URL); the socket counts as joined once `welcome` arrives.
// An unexpected close schedules a new socket with exponential backoff and
// jitter. Closes that a retry cannot fix are final: 1000 (left), 4001 (bad
// or expired token), 4003 (forbidden or removed), 4009 (replaced by another
// connection of the same participant), 4010 (the class was ended for
// everyone).
//
// Several nodes (docs/cluster.md): a `redirect` {url, reason}, followed by
// close 4307, sends the page to the same class on the node at url. When
// the page's node stays unreachable (FAILOVER_AFTER failed attempts in a
// row), each further attempt first probes the next node of the last
// welcome's `nodes`, round-robin, and moves there once one answers.
// Moving loads the class page from the other node, unless the page holds
// local media (keepPage): leaving the document would stop the camera,
// microphone and screen tracks, and the other origin would ask for the
// camera again. Such a page stays and opens its websocket to the other
// node, which accepts the pages of every node of its cluster.

import { decodeClaims, currentLink } from './token.js';

export const CLOSE_CLASS_ENDED = 4010;
export const FINAL_CLOSE_CODES = new Set([1000, 4001, 4003, 4009, CLOSE_CLASS_ENDED]);
export const CLOSE_REDIRECT = 4307;

// Failed attempts on the page's node before other nodes are tried.
export const FAILOVER_AFTER = 3;
// A chain of redirects longer than this stops being followed (two nodes
// that disagree about a class's origin must not bounce a tab forever); the
// count travels in the fragment as `moved` and is dropped once welcomed.
export const MAX_MOVES = 4;
const PROBE_TIMEOUT_MS = 3000;

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 15000;
// The server closes a client sending more than 50 messages in one second
// (4008). A fixed one-second window of 25 keeps any one-second span of the
// server's under 50, however the two windows are aligned.
const SEND_BUDGET = 25;
const SEND_WINDOW_MS = 1000;
// How long to wait for the server to close after `leave`.
const LEAVE_GRACE_MS = 3000;

// backoffDelay doubles from 1 s up to 15 s and adds +/-20 % jitter so a whole
// class does not reconnect in lockstep after a server restart.
export function backoffDelay(attempt) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(attempt, 10));
  const jittered = base * (0.8 + Math.random() * 0.4);
  return Math.round(Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, jittered)));
}

export function socketURL(loc = location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws`;
}

// nodeSocketURL is the websocket URL of the node at an http(s) base URL.
export function nodeSocketURL(base) {
  return socketURL(new URL(base));
}

// nodeBase returns an http(s) node URL's origin, or '' for anything else
// (a server must not be able to send the page to a javascript: URL).
export function nodeBase(url) {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.origin : '';
  } catch {
    return '';
  }
}

// movedLocation is this page (path, query, fragment) on the node at base.
// The fragment's token becomes the one the socket joins with: for a student
// who came with a class invite that is the personal token, which the other
// origin's sessionStorage does not hold, so identity survives the move; the
// invite itself stays as `invite` so an expired session can join again.
// The page keeps its link out of the address bar (token.js, takeLink).
export function movedLocation(base, token, loc = location, link = currentLink(loc)) {
  const params = new URLSearchParams(loc.hash.replace(/^#/, ''));
  const linkToken = link.token;
  const invite = link.invite || (linkToken && linkToken !== token && decodeClaims(linkToken)?.inv ? linkToken : '');
  if (invite) params.set('invite', invite);
  params.set('token', token);
  params.set('moved', String(movedCount(loc) + 1));
  return `${base}${loc.pathname}${loc.search}#${params.toString()}`;
}

export function movedCount(loc = location) {
  const n = Number(new URLSearchParams(loc.hash.replace(/^#/, '')).get('moved'));
  return Number.isInteger(n) && n > 0 ? n : 0;
}

// probeNode resolves true when the node answers HTTP at all. An opaque
// (no-cors) answer is enough: the question is reachability, and the page
// then loads from that node, which checks everything again.
export async function probeNode(base) {
  try {
    await fetch(`${base}/readyz`, { mode: 'no-cors', cache: 'no-store', signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    return true;
  } catch {
    return false;
  }
}

// Signal owns the websocket. onMessage gets every server envelope;
// onStatus gets {state: 'connecting'|'reconnecting'|'closed', code, reason, delay}.
// keepPage() says whether a move must keep this document (see above).
// navigate and probe are the page's location.assign and probeNode (tests
// replace them).
export class Signal {
  constructor({
    url, token, onMessage, onStatus, keepPage = () => false,
    navigate = (u) => location.assign(u), probe = probeNode, loc = location,
  }) {
    this.url = url;
    this.token = token;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.keepPage = keepPage;
    this.navigate = navigate;
    this.probe = probe;
    this.loc = loc;
    this.nodes = []; // other nodes' base URLs, from the last welcome
    this.nextNode = 0;
    this.server = ''; // the node the socket goes to when not the page's own
    this.moves = 0; // moves in place since the last welcome
    this.redirect = '';
    this.moving = false;
    this.ws = null;
    this.joined = false;
    this.stopped = false;
    this.attempt = 0;
    this.retryTimer = 0;
    this.nextRid = 1;
    this.queue = [];
    this.windowStart = 0;
    this.windowCount = 0;
    this.flushTimer = 0;
  }

  get connected() {
    return this.joined;
  }

  // serverBase is the base URL of the node the socket goes to.
  get serverBase() {
    return this.server || this.loc.origin;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    const ws = new WebSocket(this.server ? nodeSocketURL(this.server) : this.url);
    this.ws = ws;
    this.joined = false;
    this.onStatus({ state: 'connecting', attempt: this.attempt });
    ws.onopen = () => {
      this.queue.unshift({ type: 'join', data: { token: this.token } });
      this.flush();
    };
    ws.onmessage = (ev) => this.receive(ws, ev.data);
    ws.onclose = (ev) => this.closed(ws, ev);
  }

  receive(ws, raw) {
    if (ws !== this.ws || typeof raw !== 'string') return;
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      return;
    }
    if (!msg || typeof msg.type !== 'string') return;
    if (msg.type === 'welcome') {
      this.joined = true;
      this.attempt = 0;
      this.learnNodes(msg.data?.nodes);
      this.moves = 0;
      this.forgetMoves();
    }
    if (msg.type === 'redirect') {
      this.redirect = nodeBase(msg.data?.url);
      return; // close 4307 follows; closed() moves the page
    }
    this.onMessage(msg);
  }

  // learnNodes keeps the other nodes' bases, the one that sent them left out.
  learnNodes(nodes) {
    if (!Array.isArray(nodes)) return;
    const own = this.serverBase;
    this.nodes = [...new Set(nodes.map(nodeBase))].filter((b) => b && b !== own);
    this.nextNode = 0;
  }

  // forgetMoves drops the redirect count from the address once a node has
  // welcomed the page, so later, unrelated moves start again from zero.
  forgetMoves() {
    if (!movedCount(this.loc) || typeof history === 'undefined') return;
    const params = new URLSearchParams(this.loc.hash.replace(/^#/, ''));
    params.delete('moved');
    history.replaceState(history.state, '', `${this.loc.pathname}${this.loc.search}#${params.toString()}`);
  }

  // moveTo takes the page to the same class on the node at base.
  moveTo(base, code, reason) {
    if (this.keepPage()) {
      this.switchTo(base, code, reason);
      return;
    }
    this.moving = true;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.onStatus({ state: 'reconnecting', code, reason, delay: 0 });
    this.navigate(movedLocation(base, this.token, this.loc));
  }

  // switchTo moves in place: the next socket goes to the node at base,
  // which starts with a fresh backoff, as a freshly loaded page would.
  switchTo(base, code, reason) {
    this.moves++;
    this.server = base === this.loc.origin ? '' : base;
    this.attempt = 0;
    this.onStatus({ state: 'reconnecting', code, reason, delay: 0 });
    this.connect();
  }

  closed(ws, ev) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.joined = false;
    this.queue = [];
    clearTimeout(this.flushTimer);
    this.flushTimer = 0;
    if (this.moving) return;
    if (this.stopped || FINAL_CLOSE_CODES.has(ev.code)) {
      this.onStatus({ state: 'closed', code: this.stopped && ev.code !== 4009 ? 1000 : ev.code, reason: ev.reason });
      return;
    }
    const target = this.redirect;
    this.redirect = '';
    if (target && movedCount(this.loc) + this.moves < MAX_MOVES) {
      this.moveTo(target, ev.code, 'redirect');
      return;
    }
    const delay = backoffDelay(this.attempt++);
    this.retryTimer = setTimeout(() => this.retry(), delay);
    this.onStatus({ state: 'reconnecting', code: ev.code, reason: ev.reason, delay });
  }

  // retry reconnects to the page's node, or, once it has failed
  // FAILOVER_AFTER times in a row, first probes the next other node and
  // moves there when it answers. Probes go round-robin, one per attempt,
  // so they follow the same backoff as the reconnects.
  async retry() {
    this.retryTimer = 0;
    const others = this.nodes.filter((b) => b !== this.serverBase);
    if (this.attempt >= FAILOVER_AFTER && others.length) {
      const base = others[this.nextNode++ % others.length];
      if (await this.probe(base)) {
        if (!this.stopped) this.moveTo(base, 0, 'failover');
        return;
      }
    }
    if (!this.stopped) this.connect();
  }

  // retryNow skips the rest of a backoff wait (the "Retry now" button, or
  // the browser coming back online).
  retryNow() {
    if (this.retryTimer && !this.stopped) {
      clearTimeout(this.retryTimer);
      this.retry();
    }
  }

  // send queues one request and returns its rid, or null when not joined:
  // requests made between sockets are meaningless to the next server
  // session, which starts again from `welcome`.
  send(type, data) {
    if (!this.joined) return null;
    const rid = String(this.nextRid++);
    this.queue.push(data === undefined ? { type, rid } : { type, rid, data });
    this.flush();
    return rid;
  }

  flush() {
    clearTimeout(this.flushTimer);
    this.flushTimer = 0;
    const ws = this.ws;
    while (this.queue.length && ws?.readyState === WebSocket.OPEN) {
      const now = performance.now();
      if (now - this.windowStart >= SEND_WINDOW_MS) {
        this.windowStart = now;
        this.windowCount = 0;
      }
      if (this.windowCount >= SEND_BUDGET) {
        this.flushTimer = setTimeout(() => this.flush(), SEND_WINDOW_MS - (now - this.windowStart) + 5);
        return;
      }
      this.windowCount++;
      ws.send(JSON.stringify(this.queue.shift()));
    }
  }

  // leave says goodbye; the server answers with close 1000.
  leave() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    if (!ws) {
      this.onStatus({ state: 'closed', code: 1000, reason: 'left' });
      return;
    }
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'leave' }));
    setTimeout(() => ws.readyState < WebSocket.CLOSING && ws.close(1000, 'left'), LEAVE_GRACE_MS);
  }
}
