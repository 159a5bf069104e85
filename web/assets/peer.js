// peer.js: one-way peer connections (docs/protocol.md, "Peer connections").
// A Publisher sends one local stream and makes the offer; a Subscriber
// receives one server stream and answers. Neither is ever renegotiated: a
// new stream is a new peer connection.

// No STUN: the server's SDP already carries its reachable candidates (one
// UDP port and one ICE-TCP port), and the page may run on a network
// without internet access. TURN servers, when the node runs one, come
// with each welcome (docs/protocol.md) and serve every later connection.
const RTC_CONFIG = { iceServers: [], bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' };

// The path policy falls back on its own: every connection first tries all
// its candidates at once (UDP, then ICE-TCP, and TURN when the node has
// it: ICE checks them in that order of priority, RFC 8445 5.1.2). A
// connection that fails or is not up after STALL_MS counts as a failure;
// after one, with TURN servers known, later connections use the relay
// only ('relay'), which a network that mangles direct paths cannot
// spoil. What worked is kept for the rest of the browser tab's session.
const STALL_MS = 12000;
const POLICY_KEY = 'lectern.icePolicy';

function storedPolicy() {
  try {
    return sessionStorage.getItem(POLICY_KEY) === 'relay' ? 'relay' : 'all';
  } catch {
    return 'all';
  }
}

let icePolicy = storedPolicy();

// noteFailure escalates to relay-only when there is a relay to use.
function noteFailure() {
  if (icePolicy === 'relay' || !RTC_CONFIG.iceServers.some((s) => s.urls.some((u) => /^turns?:/.test(u)))) return;
  icePolicy = 'relay';
  try {
    sessionStorage.setItem(POLICY_KEY, icePolicy);
  } catch {
    // storage unavailable: remembered for this page only
  }
}

// currentIcePolicy is the policy new connections use ('all' or 'relay').
export function currentIcePolicy() { return icePolicy; }

// setIceServers takes the welcome's `ice_servers` (RTCIceServer shapes).
export function setIceServers(servers) {
  RTC_CONFIG.iceServers = Array.isArray(servers)
    ? servers.filter((s) => s && Array.isArray(s.urls)).map((s) => ({
      urls: s.urls, username: s.username, credential: s.credential,
    }))
    : [];
}

// StreamPeer is what both directions share: the connection, and trickle ICE
// (RFC 8838) in both directions with the queues that ordering needs.
class StreamPeer {
  constructor(id, send) {
    this.id = id;
    this.send = send;
    this.closed = false;
    this.announced = false; // our SDP has been sent: candidates may follow it
    this.localIce = [];
    this.remoteReady = false; // remote SDP applied: candidates can be added
    this.remoteIce = [];
    this.policy = icePolicy;
    this.pc = new RTCPeerConnection({ ...RTC_CONFIG, iceTransportPolicy: icePolicy });
    this.pc.onicecandidate = (ev) => this.onLocalCandidate(ev.candidate);
    this.stallTimer = null;
  }

  // watch calls onFailed once when the connection fails, or is still not
  // up STALL_MS after its SDP exchange began; each failure counts toward
  // the fallback to relay-only.
  watch(onFailed) {
    let reported = false;
    const fail = () => {
      if (reported || this.closed) return;
      reported = true;
      noteFailure();
      onFailed?.(this);
    };
    this.pc.onconnectionstatechange = () => {
      const s = this.pc.connectionState;
      if (s === 'connected') clearTimeout(this.stallTimer);
      if (s === 'failed') fail();
    };
    this.stallTimer = setTimeout(() => {
      if (this.pc.connectionState !== 'connected') fail();
    }, STALL_MS);
  }

  onLocalCandidate(candidate) {
    // A candidate with an empty string is a per-generation end marker some
    // browsers emit; the null event that follows is the one we forward.
    if (candidate && !candidate.candidate) return;
    const c = candidate ? candidate.toJSON() : null; // null: end of candidates
    if (!this.announced) {
      this.localIce.push(c);
      return;
    }
    this.send('ice', { stream: this.id, candidate: c });
  }

  // announce marks our SDP as sent, then sends the candidates gathered
  // before it, so the server never sees a candidate for an unknown stream.
  announce() {
    this.announced = true;
    for (const c of this.localIce.splice(0)) this.send('ice', { stream: this.id, candidate: c });
  }

  async addRemoteCandidate(candidate) {
    if (this.closed) return;
    if (!this.remoteReady) {
      this.remoteIce.push(candidate);
      return;
    }
    try {
      // No argument means end of candidates.
      await (candidate?.candidate ? this.pc.addIceCandidate(candidate) : this.pc.addIceCandidate());
    } catch (err) {
      if (!this.closed) console.warn(`lectern: ice candidate for ${this.id} rejected`, err);
    }
  }

  async remoteApplied() {
    this.remoteReady = true;
    for (const c of this.remoteIce.splice(0)) await this.addRemoteCandidate(c);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.stallTimer);
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.onconnectionstatechange = null;
    this.pc.close();
  }
}

// orderCodecs puts mimeType first and keeps every other codec (RTX, RED,
// FEC) so the list stays acceptable to setCodecPreferences.
function orderCodecs(codecs, mimeType) {
  const want = mimeType.toLowerCase();
  const first = codecs.filter((c) => c.mimeType.toLowerCase() === want);
  if (!first.length) return null;
  return [...first, ...codecs.filter((c) => c.mimeType.toLowerCase() !== want)];
}

// preferCodec asks for mimeType (VP8 unless the page was asked for another:
// every browser can decode it, so the SFU can forward one encoding to all). Browsers check the list against sender
// or, in older versions, receiver capabilities, so both are tried.
export function preferCodec(transceiver, mimeType) {
  if (typeof transceiver.setCodecPreferences !== 'function') return;
  const kind = mimeType.split('/')[0];
  for (const source of [globalThis.RTCRtpSender, globalThis.RTCRtpReceiver]) {
    const ordered = orderCodecs(source?.getCapabilities?.(kind)?.codecs ?? [], mimeType);
    if (!ordered) continue;
    try {
      transceiver.setCodecPreferences(ordered);
      return;
    } catch {
      // try the other capability list
    }
  }
}

// Publisher sends one local MediaStream with sendonly transceivers.
export class Publisher extends StreamPeer {
  constructor({ id, label, media, send, codec, onFailed }) {
    super(id, send);
    this.label = label;
    this.codec = codec ?? 'video/VP8';
    this.media = media;
    this.rid = null;
    this.answered = false;
    this.watch(onFailed);
  }

  // start makes the offer and sends `publish`. It returns the request id,
  // or null when the socket was not joined.
  async start() {
    for (const track of this.media.getTracks()) {
      const tr = this.pc.addTransceiver(track, { direction: 'sendonly', streams: [this.media] });
      if (track.kind === 'video') preferCodec(tr, this.codec);
    }
    await this.pc.setLocalDescription(await this.pc.createOffer());
    if (this.closed) return null;
    this.rid = this.send('publish', { stream: this.id, label: this.label, sdp: this.pc.localDescription.sdp });
    if (this.rid) this.announce();
    return this.rid;
  }

  async accept(sdp) {
    if (this.closed) return;
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    this.answered = true;
    await this.remoteApplied();
  }
}

// Subscriber receives one server stream; its tracks gather in `media`.
export class Subscriber extends StreamPeer {
  constructor({ id, owner, label, send, onTrack, onFailed }) {
    super(id, send);
    this.owner = owner;
    this.label = label;
    this.media = new MediaStream();
    this.pc.ontrack = (ev) => {
      this.media.addTrack(ev.track);
      onTrack(this);
    };
    this.watch(onFailed);
  }

  // accept applies the server's offer and sends our answer. The offer's
  // sendonly sections make every answered section recvonly.
  async accept(sdp) {
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    await this.remoteApplied();
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    if (this.closed) return;
    this.send('answer', { stream: this.id, sdp: this.pc.localDescription.sdp });
    this.announce();
  }
}

// videoStats returns the first video inbound-rtp or outbound-rtp entry of
// a connection's stats (W3C webrtc-stats), or null.
export async function videoStats(peer, type) {
  if (!peer || peer.closed) return null;
  try {
    const report = await peer.pc.getStats();
    for (const s of report.values()) {
      if (s.type === type && (s.kind ?? s.mediaType) === 'video') return s;
    }
  } catch {
    // closed while reading
  }
  return null;
}
