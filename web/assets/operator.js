// operator.js: the operator console, /operator#token=… (an operator
// token). It subscribes to GET /api/operator/stream, a view every two
// seconds, and redraws: the alerts, the nodes, the classes, and each
// participant's connection on this node: its candidate type and
// transport (UDP, TCP or TURN), the server's figures from its receiver
// reports, and the page's own (frames decoded, freezes, jitter buffer)
// from its last stats report. Bitrates come from two reads of the bytes
// sent. A class row selects that class's connections; selecting it
// again shows them all. Buttons start and stop a class's recording, end
// a class (after a confirmation) and drain this node, through the same
// API as everyone (recording, class and drain endpoints).

import { tokenFromHash } from './token.js';

const PERIOD_MS = 2000;
const $ = (sel) => document.querySelector(sel);

let token = '';
let selected = '';
let confirming = ''; // the class whose "End class" waits for a confirmation
let previous = null; // the last view, for bitrates

function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  tr.append(td);
  return td;
}

function bits(bps) {
  if (!(bps > 0)) return '0';
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mbit/s`;
  return `${Math.round(bps / 1e3)} kbit/s`;
}

// pathText names a connection's ICE path (the client's candidate type
// and transport, "relay/tls") by what an operator looks for: UDP, TCP,
// or TURN with how the client reaches the relay.
function pathText(path) {
  if (!path) return '';
  const [type, transport] = path.split('/');
  if (type === 'relay') return `TURN ${transport} (${path})`;
  return `${(transport || '').toUpperCase()} (${path})`;
}

function drawAlerts(alerts) {
  const body = $('#alerts');
  body.replaceChildren();
  for (const a of alerts) {
    const tr = document.createElement('tr');
    tr.dataset.testid = 'alert-row';
    tr.dataset.kind = a.kind;
    cell(tr, a.kind.replaceAll('_', ' '), 'verdict-bad');
    cell(tr, a.node || '');
    cell(tr, a.room || '');
    cell(tr, a.text);
    body.append(tr);
  }
  if (alerts.length === 0) {
    const tr = document.createElement('tr');
    tr.dataset.testid = 'no-alerts';
    cell(tr, 'No alerts').colSpan = 4;
    body.append(tr);
  }
}

// act runs an action through the API and redraws; a refusal shows in
// the status line.
async function act(method, path) {
  const res = await fetch(path, { method, headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    $('#console-status').textContent = `${method} ${path}: ${body.error ?? res.status}`;
    return;
  }
  refresh();
}

function actionButton(text, testid, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'btn btn-small btn-secondary';
  b.textContent = text;
  b.dataset.testid = testid;
  b.addEventListener('click', (e) => {
    e.stopPropagation(); // not a click on the row
    onClick();
  });
  return b;
}

function drawNodes(nodes) {
  const body = $('#nodes');
  body.replaceChildren();
  $('#nodes-section').hidden = nodes.length === 0;
  for (const n of nodes) {
    const tr = document.createElement('tr');
    tr.dataset.testid = 'node-row';
    tr.dataset.node = n.id;
    cell(tr, (n.id || 'this node') + (n.self ? ' (this node)' : ''));
    cell(tr, n.draining ? `${n.liveness}, draining` : n.liveness);
    cell(tr, n.nats || '');
    cell(tr, n.version || '');
    cell(tr, String(n.students)).dataset.testid = 'node-students';
    cell(tr, String(n.classes));
    cell(tr, bits(n.bitrate_out));
    const actions = cell(tr, '');
    // Only this node can be drained from here: /api/drain is per node.
    if (n.self) {
      actions.append(n.draining
        ? actionButton('Take classes again', 'undrain', () => act('DELETE', '/api/drain'))
        : actionButton('Drain', 'drain', () => act('POST', '/api/drain')));
    }
    body.append(tr);
  }
}

// endButtons: "End class", then, once clicked, a confirmation. Ending
// works from any node (DELETE /api/rooms/{room} reaches the class's other
// nodes), so every class has it.
function endButtons(room, classes) {
  if (confirming !== room) {
    return [actionButton('End class', 'end-class', () => { confirming = room; drawClasses(classes); })];
  }
  const question = document.createElement('span');
  question.textContent = 'End it for everyone? ';
  const yes = actionButton('End the class', 'end-class-confirm', () => {
    confirming = '';
    act('DELETE', `/api/rooms/${encodeURIComponent(room)}`);
  });
  yes.className = 'btn btn-small btn-danger';
  const no = actionButton('Cancel', 'end-class-cancel', () => { confirming = ''; drawClasses(classes); });
  return [question, yes, no];
}

function drawClasses(classes) {
  const body = $('#classes');
  body.replaceChildren();
  for (const c of classes) {
    const tr = document.createElement('tr');
    tr.className = 'selectable' + (c.room === selected ? ' selected' : '');
    tr.dataset.testid = 'class-row';
    tr.dataset.room = c.room;
    cell(tr, c.room);
    cell(tr, c.title || '');
    cell(tr, c.live ? 'live' : 'not live').dataset.testid = 'class-live';
    cell(tr, `${c.local} / ${c.participants}`);
    cell(tr, String(c.bad_students), c.bad_students > 0 ? 'verdict-bad' : '');
    cell(tr, c.origin || '');
    cell(tr, c.recording ? 'recording' : '').dataset.testid = 'class-recording';
    const actions = cell(tr, '');
    if (c.local > 0) {
      const path = `/api/rooms/${encodeURIComponent(c.room)}/recording`;
      actions.append(c.recording
        ? actionButton('Stop recording', 'stop-recording', () => act('DELETE', path))
        : actionButton('Record', 'record', () => act('POST', path)));
    }
    actions.append(...endButtons(c.room, classes));
    tr.addEventListener('click', () => {
      selected = selected === c.room ? '' : c.room;
      refresh();
    });
    body.append(tr);
  }
}

function drawConnections(view) {
  const body = $('#connections');
  body.replaceChildren();
  $('#connections-title').textContent = selected ? `Connections of ${selected} on this node` : 'Connections on this node';
  const before = new Map((previous?.connections ?? []).map((c) => [`${c.room}/${c.participant}`, c]));
  const secs = previous ? (new Date(view.at) - new Date(previous.at)) / 1000 : 0;
  for (const c of view.connections) {
    if (selected && c.room !== selected) continue;
    const tr = document.createElement('tr');
    tr.dataset.testid = 'conn-row';
    tr.dataset.participant = c.participant;
    const old = before.get(`${c.room}/${c.participant}`);
    const bps = old && secs > 0 && c.bytes_sent >= old.bytes_sent ? ((c.bytes_sent - old.bytes_sent) * 8) / secs : 0;
    cell(tr, c.room);
    cell(tr, c.name || c.participant);
    cell(tr, c.role);
    cell(tr, c.transport);
    const path = cell(tr, pathText(c.path));
    path.dataset.testid = 'conn-path';
    path.dataset.path = c.path || '';
    cell(tr, c.tracks ? bits(bps) : '').dataset.testid = 'conn-bitrate';
    const has = Boolean(c.verdict);
    cell(tr, has ? `${(c.loss * 100).toFixed(1)} %` : '').dataset.testid = 'conn-loss';
    cell(tr, has ? `${Math.round(c.rtt_ms)} ms` : '').dataset.testid = 'conn-rtt';
    cell(tr, has ? `${Math.round(c.jitter_ms)} ms` : '').dataset.testid = 'conn-jitter';
    const v = cell(tr, c.verdict || '', c.verdict ? `verdict-${c.verdict}` : '');
    v.dataset.testid = 'conn-verdict';
    // The browser's own figures, from the page's last stats report.
    const br = c.browser;
    cell(tr, br ? String(br.frames_decoded) : '').dataset.testid = 'conn-frames';
    cell(tr, br ? String(br.freezes) : '');
    cell(tr, br ? `${Math.round(br.jitter_buffer_ms)} ms` : '');
    body.append(tr);
  }
}

function draw(view) {
  drawAlerts(view.alerts);
  drawNodes(view.nodes);
  drawClasses(view.classes);
  drawConnections(view);
  previous = view;
  $('#console-status').textContent = `${view.node || 'this node'}, updated ${new Date(view.at).toLocaleTimeString()}`;
}

// Fatal answers stop the subscription: another try would get the same.
class Refused extends Error {}

function check(res) {
  if (res.status === 401) throw new Refused('The token is missing, expired or not valid.');
  if (res.status === 403) throw new Refused('This console needs an operator token.');
  if (!res.ok) throw new Error(`The server answered ${res.status}.`);
}

// refresh draws one view at once, after an action.
async function refresh() {
  try {
    const res = await fetch('/api/operator', { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' });
    check(res);
    draw(await res.json());
  } catch (err) {
    $('#console-status').textContent = err.message;
  }
}

// subscribe reads /api/operator/stream, one view per line, for as long
// as the page is open, and opens it again when it ends (a node that
// restarted, an expired token after a reload).
async function subscribe() {
  for (;;) {
    try {
      const res = await fetch('/api/operator/stream', { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' });
      check(res);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line) draw(JSON.parse(line));
        }
      }
      $('#console-status').textContent = 'Reconnecting…';
    } catch (err) {
      $('#console-status').textContent = err.message;
      if (err instanceof Refused) return;
    }
    await new Promise((resolve) => { setTimeout(resolve, PERIOD_MS); });
  }
}

function main() {
  token = tokenFromHash();
  // The token leaves the address bar (and history) at once.
  history.replaceState(null, '', location.pathname + location.search);
  if (!token) {
    $('#console-status').textContent = 'Open this page with an operator token: /operator#token=…';
    return;
  }
  subscribe();
}

main();
