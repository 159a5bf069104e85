// check.js: the connection check page (/check, docs/protocol.md
// "Connectivity check"). It tries, in turn, the websocket, a peer
// connection to the node over UDP only, over TCP only (ICE-TCP), relayed
// by the node's TURN server over TLS only, a few seconds of download and,
// for teachers (?role=teacher), the camera and microphone; then it says in
// plain words what a class will do on this network, and reports the
// results to the server. A class link's token in the fragment (#token=…)
// lets the TURN test get credentials; without one that test is skipped.

import { byTestId } from './ui.js';

const params = new URLSearchParams(location.search);
const teacher = params.get('role') === 'teacher';
const token = new URLSearchParams(location.hash.slice(1)).get('token') ?? '';

const UDP_WAIT_MS = 8000;
const TURN_WAIT_MS = 12000;
const GATHER_WAIT_MS = 5000;
const DOWNLOAD_MS = 4000;
const SLOW_KBPS = 1500;

function show(id, state, text) {
  const node = byTestId(`check-${id}`);
  node.dataset.state = state;
  node.textContent = text;
}

// checkWebsocket: /api/check/ws returns what it is sent.
function checkWebsocket() {
  return new Promise((resolve) => {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    // getRandomValues, unlike randomUUID, works on plain http:// too.
    const nonce = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');
    let ws;
    const timer = setTimeout(() => { ws?.close(); resolve(false); }, UDP_WAIT_MS);
    try {
      ws = new WebSocket(`${proto}//${location.host}/api/check/ws`);
    } catch {
      clearTimeout(timer);
      resolve(false);
      return;
    }
    ws.onopen = () => ws.send(nonce);
    ws.onmessage = (ev) => { clearTimeout(timer); ws.close(); resolve(ev.data === nonce); };
    ws.onerror = () => { clearTimeout(timer); resolve(false); };
  });
}

// keepCandidates keeps the answer's candidates of one transport only, so
// that the browser can reach the node by that transport or not at all.
function keepCandidates(sdp, transport) {
  if (!transport) return sdp;
  return sdp.split('\r\n').filter((line) => {
    if (!line.startsWith('a=candidate:')) return true;
    return line.split(' ')[2]?.toLowerCase() === transport;
  }).join('\r\n');
}

function waitFor(pc, event, done, ms) {
  return new Promise((resolve) => {
    if (done()) { resolve(true); return; }
    const timer = setTimeout(() => { pc.removeEventListener(event, on); resolve(done()); }, ms);
    function on() {
      if (!done()) return;
      clearTimeout(timer);
      pc.removeEventListener(event, on);
      resolve(true);
    }
    pc.addEventListener(event, on);
  });
}

// selectedPair reads the connected pair's local and remote candidates.
async function selectedPair(pc) {
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
  if (!pair) return null;
  return { local: stats.get(pair.localCandidateId), remote: stats.get(pair.remoteCandidateId) };
}

// probe opens a receive-only peer connection to the node
// (/api/check/probe) and returns its selected pair, or null when it does
// not connect in time.
async function probe({ transport = '', config = {}, waitMs = UDP_WAIT_MS }) {
  const pc = new RTCPeerConnection(config);
  try {
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    await waitFor(pc, 'icegatheringstatechange', () => pc.iceGatheringState === 'complete', GATHER_WAIT_MS);
    // The node learns only this transport's candidates too: it cannot
    // reach the browser by another, which the browser would then select.
    const offer = keepCandidates(pc.localDescription.sdp, transport);
    const res = await fetch('/api/check/probe', {
      method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer,
    });
    if (res.status !== 201) throw new Error(`probe refused: ${res.status}`);
    const sdp = keepCandidates(await res.text(), transport);
    await pc.setRemoteDescription({ type: 'answer', sdp });
    // A failed connection ends the wait early; only a connected one counts.
    await waitFor(pc, 'connectionstatechange', () => ['connected', 'failed'].includes(pc.connectionState), waitMs);
    return pc.connectionState === 'connected' ? await selectedPair(pc) : null;
  } finally {
    pc.close();
  }
}

async function checkConfig() {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const res = await fetch('/api/check', { headers });
  if (!res.ok) return { turn: false, ice_servers: [] };
  return res.json();
}

// turnsServers keeps the turns: URLs only: TURN over TLS, the last resort.
function turnsServers(servers) {
  return servers.map((s) => ({ ...s, urls: s.urls.filter((u) => u.startsWith('turns:')) }))
    .filter((s) => s.urls.length > 0);
}

function turnsPort(servers) {
  const url = servers[0]?.urls[0] ?? '';
  const m = /:(\d+)(\?|$)/.exec(url.slice('turns:'.length));
  return m ? m[1] : '5349';
}

// checkDownload times a few seconds of a random body.
async function checkDownload() {
  const ctrl = new AbortController();
  const start = performance.now();
  const timer = setTimeout(() => ctrl.abort(), DOWNLOAD_MS);
  let bytes = 0;
  try {
    const res = await fetch('/api/check/download?bytes=8388608', { signal: ctrl.signal, cache: 'no-store' });
    if (!res.ok) return 0;
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
    }
  } catch {
    // aborted after DOWNLOAD_MS: what arrived until then counts
  } finally {
    clearTimeout(timer);
  }
  const ms = Math.max(1, performance.now() - start);
  return Math.round((bytes * 8) / ms); // bits per millisecond = kbit/s
}

async function checkDevice(kind) {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ [kind]: true });
    stream.getTracks().forEach((t) => t.stop());
    return 'ok';
  } catch {
    return 'blocked';
  }
}

function word(ok) { return ok ? 'ok' : 'blocked'; }

// summary says in plain words what a class will do on this network.
function summary(r) {
  if (r.websocket !== 'ok') {
    return 'Your network blocks the connection to this server: classes will not work here. ' +
      'Ask your network administrator to allow this site.';
  }
  let text;
  if (r.udp === 'ok') {
    text = 'Your network lets video through directly. Classes should run smoothly.';
  } else if (r.tcp === 'ok') {
    text = `Your network blocks UDP; Lectern will use port ${r.tcpPort}. Video may lag a little.`;
  } else if (r.turn === 'ok') {
    text = `Your network blocks UDP; Lectern will use port ${r.turnPort}. Video may lag a little.`;
  } else {
    text = 'Your network blocks video from this server: you will see the class chat but no video. ' +
      'Ask your network administrator to allow UDP, or TCP to this server.';
  }
  if (r.download_kbps > 0 && r.download_kbps < SLOW_KBPS) text += ' Your connection is slow: video may stall.';
  if (teacher && (r.camera !== 'ok' || r.microphone !== 'ok')) {
    text += ' This browser cannot use your camera or microphone: allow them for this site.';
  }
  return text;
}

async function runNetwork(r) {
  r.websocket = word(await checkWebsocket());
  show('websocket', r.websocket, r.websocket === 'ok' ? 'Connected' : 'Blocked');

  const udp = await probe({ transport: 'udp' }).catch(() => null);
  r.udp = word(udp?.local?.protocol === 'udp' && udp.local.candidateType !== 'relay');
  show('udp', r.udp, r.udp === 'ok' ? 'UDP works' : 'UDP blocked');

  const tcp = await probe({ transport: 'tcp' }).catch(() => null);
  r.tcp = word(tcp?.local?.protocol === 'tcp');
  r.tcpPort = tcp?.remote?.port ?? '';
  show('tcp', r.tcp, r.tcp === 'ok' ? `TCP works (port ${r.tcpPort})` : 'TCP blocked');

  const cfg = await checkConfig().catch(() => ({ turn: false, ice_servers: [] }));
  const servers = turnsServers(cfg.ice_servers ?? []);
  if (!cfg.turn || servers.length === 0) {
    r.turn = 'skipped';
    show('turn', 'skipped', cfg.turn ? 'Not tested: open this page from your class link' : 'Not offered by this server');
    return;
  }
  r.turnPort = turnsPort(servers);
  const relay = await probe({ config: { iceServers: servers, iceTransportPolicy: 'relay' }, waitMs: TURN_WAIT_MS })
    .catch(() => null);
  r.turn = word(relay?.local?.candidateType === 'relay');
  show('turn', r.turn, r.turn === 'ok' ? `TURN over TLS works (port ${r.turnPort})` : 'TURN over TLS blocked');
}

async function report(r) {
  const body = {
    role: teacher ? 'teacher' : 'student', websocket: r.websocket, udp: r.udp, tcp: r.tcp, turn: r.turn,
    camera: r.camera, microphone: r.microphone, download_kbps: Math.min(r.download_kbps, 10000000),
  };
  const res = await fetch('/api/check/report', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  }).catch(() => null);
  const node = byTestId('check-reported');
  node.dataset.state = res?.status === 204 ? 'ok' : 'blocked';
  node.textContent = res?.status === 204 ? 'Results sent to the server.' : 'The results could not be sent.';
}

async function run() {
  const again = document.querySelector('#check-again');
  again.hidden = true;
  const summaryNode = byTestId('check-summary');
  summaryNode.dataset.state = 'running';
  summaryNode.textContent = 'Checking your connection…';
  const r = { camera: 'skipped', microphone: 'skipped', download_kbps: 0 };
  await runNetwork(r);
  r.download_kbps = await checkDownload();
  show('download', r.download_kbps > 0 ? 'ok' : 'blocked',
    r.download_kbps > 0 ? `${(r.download_kbps / 1000).toFixed(1)} Mbit/s` : 'Failed');
  if (!teacher) {
    show('camera', 'skipped', 'Not tested (teachers only)');
    show('microphone', 'skipped', 'Not tested (teachers only)');
  } else {
    document.querySelectorAll('.teacher-only').forEach((li) => { li.hidden = false; });
    r.camera = await checkDevice('video');
    show('camera', r.camera, r.camera === 'ok' ? 'Camera works' : 'Camera not available');
    r.microphone = await checkDevice('audio');
    show('microphone', r.microphone, r.microphone === 'ok' ? 'Microphone works' : 'Microphone not available');
  }
  summaryNode.textContent = summary(r);
  summaryNode.dataset.state = 'done';
  await report(r);
  again.hidden = false;
}

document.querySelector('#check-again').addEventListener('click', run);
run();
