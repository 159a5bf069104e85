// classroom.js: one participant's session in a class. It follows the
// protocol (docs/protocol.md), keeps the class state the server sends, and
// drives the peer connections and the view.

import { Signal, socketURL } from './protocol.js';
import { Subscriber, setIceServers, videoStats } from './peer.js';
import { Broadcaster } from './broadcast.js';
import { describeMediaError } from './media.js';
import { RecordingControls } from './recording.js';

// How often the page reports its own view of the teacher's video
// (docs/protocol.md, "stats"), for the operator console.
const STATS_PERIOD_MS = 5000;

const ERROR_TEXT = {
  forbidden: 'That is not allowed right now.',
  conflict: 'That stream is already running.',
  bad_sdp: 'The browser and the server could not agree on media formats.',
  not_found: 'That participant or stream is gone.',
  internal: 'The server hit a problem. Try again.',
};

export class Classroom {
  // onFinal(code, {removed, joinedBefore}) runs once when the session ends
  // for good (left, removed, replaced, bad token, class ended).
  constructor({ token, claims, view, onFinal }) {
    this.claims = claims;
    this.role = claims.role;
    this.view = view;
    this.onFinal = onFinal;
    this.you = null;
    this.node = ''; // id of the node that welcomed us, in a cluster
    this.live = false;
    this.connected = false;
    this.joinedBefore = false;
    this.removed = false;
    this.shuttingDown = false;
    this.participants = new Map();
    this.quality = new Map(); // participant id -> verdict, for moderators
    this.streams = new Map(); // stream id -> Stream
    this.subs = new Map(); // stream id -> Subscriber
    this.send = (type, data) => this.signal.send(type, data);
    this.signal = new Signal({
      url: socketURL(), token,
      onMessage: (msg) => this.handle(msg),
      onStatus: (status) => this.status(status),
      // A page on air, or with its camera preview open, moves between
      // nodes without reloading, so its tracks go on (protocol.js).
      keepPage: () => this.broadcaster.holdsMedia,
    });
    this.recording = new RecordingControls({
      token, role: this.role, room: decodeURIComponent(location.pathname.split('/')[2] ?? claims.room),
      toast: (text, kind) => view.toast(text, kind),
    });
    this.broadcaster = new Broadcaster({
      send: this.send,
      codec: videoCodec(location.search),
      onChange: () => this.renderLocal(),
      onError: (text) => view.toast(text, 'error'),
    });
  }

  get moderator() {
    return this.role === 'teacher' || this.role === 'operator';
  }

  start() {
    this.view.setRole(this.role);
    this.view.setHeading(this.claims.room, this.role === 'teacher' ? this.claims.name : '', this.role, this.claims.title);
    this.view.setActions(this.actions());
    this.view.show('screen-class');
    this.view.setConnection('connecting');
    this.renderAll();
    if (this.role === 'teacher') this.openPreview();
    window.addEventListener('online', () => this.signal.retryNow());
    this.signal.start();
  }

  handle(msg) {
    const handler = HANDLERS[msg.type];
    if (!handler) return; // newer server: ignore what this page does not know
    handler.call(this, msg.data && typeof msg.data === 'object' ? msg.data : {}, msg);
  }

  status({ state, code, reason, delay }) {
    if (state === 'connecting') {
      this.view.setConnection(this.joinedBefore ? 'reconnecting' : 'connecting');
      return;
    }
    this.connected = false;
    this.teardown();
    if (state === 'reconnecting') {
      const restarting = this.shuttingDown || code === 1001;
      const moving = !delay && (reason === 'failover' || reason === 'redirect');
      let text = `Connection lost. Reconnecting in ${Math.max(1, Math.round(delay / 1000))} s…`;
      if (restarting) text = 'Server restarting, reconnecting…';
      if (moving) text = 'Moving to another server…';
      this.view.setConnection('reconnecting');
      this.view.setBanner(text, { label: 'Retry now', onClick: () => this.signal.retryNow() });
      return;
    }
    this.broadcaster.release();
    clearInterval(this.statsTimer);
    this.view.setConnection('offline');
    this.view.setBanner(null);
    this.onFinal(code, { removed: this.removed, joinedBefore: this.joinedBefore });
  }

  // teardown drops everything tied to the old socket: the server ends a
  // participant's peer connections with its websocket. Local media stays.
  teardown() {
    for (const sub of this.subs.values()) sub.close();
    this.subs.clear();
    this.streams.clear();
    this.view.stage.clearAll();
    this.broadcaster.suspend();
    this.live = false;
    this.renderAll();
  }

  welcome(d) {
    this.statsTimer ??= setInterval(() => this.reportStats(), STATS_PERIOD_MS);
    this.connected = true;
    this.joinedBefore = true;
    this.shuttingDown = false;
    this.you = d.you ?? null;
    this.node = typeof d.node === 'string' ? d.node : '';
    setIceServers(d.ice_servers);
    // How each participant's media connects: told to teachers and operators only.
    this.connections = new Map(Object.entries(d.connections ?? {}));
    this.live = Boolean(d.live);
    this.participants = new Map((d.participants ?? []).map((p) => [p.id, p]));
    if (this.you && this.role !== 'operator' && !this.participants.has(this.you.id)) {
      this.participants.set(this.you.id, this.you);
    }
    this.streams = new Map((d.streams ?? []).map((s) => [s.stream, s]));
    this.view.setConnection('connected');
    this.view.setBanner(null);
    this.view.chat.reset(d.chat ?? [], this.you?.id);
    this.recording.update(d.recording);
    if (this.role === 'student' && !this.you?.can_publish) this.floorLost();
    this.renderAll();
    this.broadcaster.resume();
  }

  // floorLost: a student who was speaking came back to a class that no
  // longer lets them publish (a new server session forgets invitations):
  // the camera and microphone go off, and the student is told why.
  floorLost() {
    const wasOn = this.broadcaster.wantsAir('camera');
    this.broadcaster.release();
    if (wasOn) this.view.toast('You were reconnected: your camera and microphone are off. Raise your hand to speak again.');
  }

  async subscribe(d) {
    this.subs.get(d.stream)?.close();
    this.view.stage.clear(d.stream);
    const sub = new Subscriber({
      id: d.stream, owner: d.owner, label: d.label, send: this.send,
      onTrack: (s) => this.place(s),
      onFailed: (s) => this.resubscribe(s),
    });
    this.subs.set(d.stream, sub);
    if (!this.streams.has(d.stream)) {
      this.streams.set(d.stream, { stream: d.stream, owner: d.owner, label: d.label, kinds: [] });
    }
    try {
      await sub.accept(d.sdp);
    } catch (err) {
      if (sub.closed) return;
      console.warn(`lectern: could not receive stream ${d.stream}`, err);
      this.view.toast('Could not receive a video stream.', 'error');
    }
  }

  // resubscribe asks the server for a fresh peer connection to a stream
  // whose receiving one failed (a phone changing networks): 1 s, then
  // doubling to 15 s between tries, while the stream lasts. The server's
  // new `offer` replaces the failed peer in subscribe().
  resubscribe(sub) {
    const tries = (this.retries ??= new Map());
    const n = tries.get(sub.id) ?? 0;
    tries.set(sub.id, n + 1);
    const delay = Math.min(1000 * 2 ** n, 15000);
    setTimeout(() => {
      if (this.subs.get(sub.id) !== sub || !this.streams.has(sub.id)) return;
      this.send('subscribe', { stream: sub.id });
    }, delay);
  }

  place(sub) {
    if (this.subs.get(sub.id) !== sub || sub.owner === this.you?.id) return;
    this.retries?.delete(sub.id);
    this.view.stage.show(sub.id, sub.media, { slot: this.slotFor(sub), name: this.participants.get(sub.owner)?.name });
    this.renderWaiting();
  }

  // slotFor: a student or operator watches the teacher's camera large and a
  // screen share on the stage; everything else is a tile. The teacher's
  // stage holds their own preview, so what they receive goes to tiles.
  slotFor(sub) {
    if (this.role === 'teacher') return 'tile';
    if (sub.label === 'screen') return 'screen';
    return this.participants.get(sub.owner)?.role === 'teacher' ? 'teacher' : 'tile';
  }

  closeStream(id) {
    this.streams.delete(id);
    const sub = this.subs.get(id);
    if (sub) {
      sub.close();
      this.subs.delete(id);
      this.view.stage.clear(id);
    }
    // Before a restart the server ends every stream: ours go on air again
    // on the next connection (broadcast.js).
    this.broadcaster.onStreamClosed(id, { stopping: this.shuttingDown });
    this.renderWaiting();
  }

  upsert(p) {
    if (!p?.id) return;
    const prev = this.participants.get(p.id);
    this.participants.set(p.id, p);
    if (p.id === this.you?.id) this.selfUpdated(this.you, p);
    // An offer can come before its owner is known; place it again now.
    for (const sub of this.subs.values()) if (sub.owner === p.id && sub.media.getTracks().length) this.place(sub);
    if (!prev || prev.name !== p.name || prev.role !== p.role) this.renderWaiting();
    this.renderPeople();
    this.renderLocal();
  }

  selfUpdated(prev, p) {
    this.you = p;
    if (p.can_publish && !prev?.can_publish) this.view.toast("You're invited to speak.", 'success');
    if (!p.can_publish && prev?.can_publish) {
      this.broadcaster.release();
      this.view.toast('The teacher took the floor back.');
    }
  }

  requestFailed(rid, d) {
    if (this.broadcaster.onRequestFailed(rid) && d.code === 'forbidden') {
      this.view.toast('You are not allowed to share video right now.', 'error');
      return;
    }
    this.view.toast(d.message || ERROR_TEXT[d.code] || 'Something went wrong.', 'error');
  }

  // ---- actions (buttons) ----

  actions() {
    return {
      goLive: () => this.goLive(),
      stop: () => this.broadcaster.stopAll(),
      toggleMute: () => this.broadcaster.toggleMute(),
      toggleScreen: () => this.toggleScreen(),
      toggleHand: () => this.toggleHand(),
      toggleSpeak: () => this.toggleSpeak(),
      retryCamera: () => this.openPreview(),
      sendChat: (text) => this.sendChat(text),
      lowerHand: (id) => this.send('lower_hand', { id }),
      invite: (id) => this.send('invite', { id }),
      revoke: (id) => this.send('revoke', { id }),
      remove: (id) => this.send('remove', { id }),
      leave: () => this.signal.leave(),
    };
  }

  async openPreview() {
    this.view.previewMessage('Starting your camera…');
    try {
      await this.broadcaster.ensureCamera();
      this.view.previewMessage(null);
    } catch (err) {
      this.view.previewMessage('Camera not available', describeMediaError(err), true);
    }
    this.renderLocal();
  }

  async goLive() {
    if (!this.broadcaster.camera) await this.openPreview();
    if (this.broadcaster.camera) await this.broadcaster.start('camera');
  }

  async toggleScreen() {
    if (this.broadcaster.status('screen') !== 'off') {
      this.broadcaster.stop('screen');
      return;
    }
    try {
      await this.broadcaster.shareScreen();
    } catch (err) {
      if (err.name !== 'NotAllowedError') this.view.toast(`Could not share the screen: ${err.message}`, 'error');
    }
  }

  toggleHand() {
    if (!this.you) return;
    const raised = !this.you.hand;
    if (!this.send('hand', { raised })) return;
    this.upsert({ ...this.you, hand: raised }); // the server's participant_updated confirms
  }

  async toggleSpeak() {
    if (this.broadcaster.status('camera') !== 'off') {
      this.broadcaster.release();
      return;
    }
    try {
      await this.broadcaster.ensureCamera();
    } catch (err) {
      this.view.toast(describeMediaError(err), 'error');
      return;
    }
    await this.broadcaster.start('camera');
  }

  sendChat(text) {
    if (this.send('chat', { text })) return true;
    this.view.toast('Not connected: the message was not sent.', 'error');
    return false;
  }

  // ---- rendering ----

  renderAll() {
    this.view.setLive(this.live);
    this.renderPeople();
    this.renderLocal();
    this.renderWaiting();
  }

  renderPeople() {
    const withPaths = new Map([...this.participants].map(([id, p]) => [id, {
      ...p, connection: this.connections?.get(id), quality: this.quality.get(id) ?? '',
    }]));
    this.view.renderPeople(withPaths, this.you?.id, this.moderator);
    const teacher = [...this.participants.values()].find((p) => p.role === 'teacher');
    if (teacher && this.role !== 'teacher') this.view.setHeading(this.claims.room, teacher.name, this.role, this.claims.title);
  }

  renderLocal() {
    const b = this.broadcaster;
    if (this.role === 'teacher') this.view.stage.setLocal(b.camera);
    if (this.role === 'student') {
      this.view.stage.setSelf(b.status('camera') !== 'off' ? b.camera : null, this.you?.name);
    }
    this.view.renderControls({
      role: this.role, connected: this.connected, cameraReady: Boolean(b.camera),
      camera: b.status('camera'), screen: b.status('screen'), muted: b.muted, hasAudio: b.hasAudio,
      hand: this.you?.hand, canPublish: this.you?.can_publish,
    });
  }

  // renderWaiting: students and operators wait until the teacher is on air.
  renderWaiting() {
    const stage = this.view.stage;
    const waiting = this.role !== 'teacher' && !this.live && !stage.has('teacher') && !stage.has('screen');
    stage.setWaiting(waiting);
    this.view.setLive(this.live);
  }

  // reportStats sends what the browser's statistics say of the teacher's
  // video (W3C webrtc-stats, inbound-rtp): frames decoded, freezes and
  // the jitter buffer's mean delay.
  async reportStats() {
    const stream = this.view.stage.streamIn('teacher');
    const s = this.connected && stream ? await videoStats(this.subs.get(stream), 'inbound-rtp') : null;
    if (!s || !this.connected) return;
    const emitted = s.jitterBufferEmittedCount ?? 0;
    const jitterMs = emitted > 0 ? (s.jitterBufferDelay / emitted) * 1000 : 0;
    this.send('stats', {
      stream,
      frames_decoded: Math.max(0, Math.floor(s.framesDecoded ?? 0)),
      freezes: Math.max(0, Math.floor(s.freezeCount ?? 0)),
      jitter_buffer_ms: Math.min(60000, Math.max(0, jitterMs)),
    });
  }

  // ---- test and diagnostics hooks (window.lectern) ----

  state() {
    return {
      connected: this.connected,
      node: this.node,
      server: this.signal.serverBase,
      live: this.live,
      recording: { active: this.recording.active, id: this.recording.id },
      role: this.role,
      you: this.you ? { ...this.you } : null,
      participants: [...this.participants.values()].map((p) => ({ ...p })),
      streams: [...this.streams.values()].map((s) => ({ ...s, subscribed: this.subs.has(s.stream) })),
      publishing: this.broadcaster.summary(),
    };
  }

  async stats() {
    const stage = this.view.stage;
    const teacher = await this.videoStats(stage.teacherVideo, stage.streamIn('teacher'));
    const screen = await this.videoStats(stage.screenVideo, stage.streamIn('screen'));
    const publishing = {};
    for (const [label, pub] of this.broadcaster.pubs) {
      const s = await videoStats(pub, 'outbound-rtp');
      publishing[label] = { stream: pub.id, framesEncoded: s?.framesEncoded ?? 0, bytesSent: s?.bytesSent ?? 0 };
    }
    return { ...teacher, screen, publishing };
  }

  async videoStats(video, streamId) {
    const inbound = await videoStats(this.subs.get(streamId), 'inbound-rtp');
    const played = video.getVideoPlaybackQuality?.().totalVideoFrames ?? 0;
    return {
      stream: streamId,
      videoWidth: video.videoWidth,
      videoHeight: video.videoHeight,
      framesDecoded: inbound?.framesDecoded ?? played,
      bytesReceived: inbound?.bytesReceived ?? 0,
    };
  }
}

// HANDLERS: one per server message type (docs/protocol.md, "Server to client").
const HANDLERS = {
  welcome(d) { this.welcome(d); },
  answer(d) { this.broadcaster.onAnswer(d.stream, d.sdp); },
  offer(d) { this.subscribe(d); },
  ice(d) { (this.subs.get(d.stream) ?? this.broadcaster.findById(d.stream))?.addRemoteCandidate(d.candidate); },
  stream_added(d) { if (d.stream) this.streams.set(d.stream, d); },
  stream_closed(d) { this.closeStream(d.stream); },
  live(d) {
    this.live = Boolean(d.live);
    this.renderWaiting();
  },
  participant_connection(d) {
    if (!d?.id) return;
    this.connections?.set(d.id, String(d.connection ?? ''));
    this.renderPeople();
  },
  participant_joined(d) { this.upsert(d); },
  participant_updated(d) { this.upsert(d); },
  participant_left(d) {
    this.participants.delete(d.id);
    this.renderPeople();
  },
  chat(d) { this.view.chat.add(d, this.you?.id); },
  removed() { this.removed = true; },
  shutdown() {
    this.shuttingDown = true;
    this.view.setBanner('Server restarting, reconnecting…');
  },
  error(d, msg) { this.requestFailed(msg.rid, d); },
  recording(d) { this.recording.update(d); },
  recording_failed(d) { this.recording.failed(d); },
  quality(d) {
    this.quality = new Map(Object.entries(d.participants ?? {}));
    this.renderPeople();
  },
};

// videoCodec is the camera's codec a ?codec= query asks for (vp8, vp9,
// h264 or av1: a school whose players or archive want H.264 opens the
// teacher's page with ?codec=h264); VP8 otherwise, which every browser
// decodes.
export function videoCodec(search) {
  const codecs = { vp8: 'video/VP8', vp9: 'video/VP9', h264: 'video/H264', av1: 'video/AV1' };
  return codecs[new URLSearchParams(search).get('codec')?.toLowerCase()] ?? codecs.vp8;
}
