// protocol.js: the classroom websocket client (docs/protocol.md).
//
// One socket at a time. The first message is always `join` (the token never
// travels in the URL); the socket counts as joined once `welcome` arrives.
// An unexpected close schedules a new socket with exponential backoff and
// jitter. Closes that a retry cannot fix are final: 1000 (left), 4001 (bad
// or expired token), 4003 (forbidden or removed), 4009 (replaced by another
// connection of the same participant).

export const FINAL_CLOSE_CODES = new Set([1000, 4001, 4003, 4009]);

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

// Signal owns the websocket. onMessage gets every server envelope;
// onStatus gets {state: 'connecting'|'reconnecting'|'closed', code, reason, delay}.
export class Signal {
  constructor({ url, token, onMessage, onStatus }) {
    this.url = url;
    this.token = token;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
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

  start() {
    this.stopped = false;
    this.connect();
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    const ws = new WebSocket(this.url);
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
    }
    this.onMessage(msg);
  }

  closed(ws, ev) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.joined = false;
    this.queue = [];
    clearTimeout(this.flushTimer);
    this.flushTimer = 0;
    if (this.stopped || FINAL_CLOSE_CODES.has(ev.code)) {
      this.onStatus({ state: 'closed', code: this.stopped && ev.code !== 4009 ? 1000 : ev.code, reason: ev.reason });
      return;
    }
    const delay = backoffDelay(this.attempt++);
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.onStatus({ state: 'reconnecting', code: ev.code, reason: ev.reason, delay });
  }

  // retryNow skips the rest of a backoff wait (the "Retry now" button, or
  // the browser coming back online).
  retryNow() {
    if (this.retryTimer && !this.stopped) this.connect();
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
