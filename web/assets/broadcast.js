// broadcast.js: what this page sends. The camera stream (the teacher, or a
// student invited to speak) and the teacher's screen share. Local media
// outlives the websocket: after a reconnect, to the same node or another
// one, whatever was on air is published again, the same tracks on fresh
// peer connections with fresh stream ids, without asking for the camera
// or the screen again.

import { Publisher } from './peer.js';
import { openCamera, openScreen, stopMedia } from './media.js';

export const LABELS = ['camera', 'screen'];
// How long after the server ended our stream a reconnect still republishes it.
const RESUME_AFTER_END_MS = 15000;

// streamId makes a protocol stream id ([A-Za-z0-9_-], 1 to 64 characters).
// crypto.getRandomValues works on plain http too, unlike randomUUID.
function streamId(label) {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return `${label}-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

export class Broadcaster {
  constructor({ send, codec, onChange, onError }) {
    this.send = send;
    this.codec = codec ?? 'video/VP8';
    this.onChange = onChange;
    this.onError = onError;
    this.media = { camera: null, screen: null };
    this.want = { camera: false, screen: false }; // on air, to republish after a reconnect
    this.pubs = new Map(); // label -> Publisher
    this.endedAt = { camera: 0, screen: 0 }; // when the server last ended a stream of ours
  }

  // status is 'off', 'starting' (offer sent) or 'live' (answer applied).
  status(label) {
    const pub = this.pubs.get(label);
    if (!pub) return 'off';
    return pub.answered ? 'live' : 'starting';
  }

  get camera() {
    return this.media.camera;
  }

  get hasAudio() {
    return Boolean(this.media.camera?.getAudioTracks().length);
  }

  // holdsMedia: a camera, microphone or screen is open on this page.
  get holdsMedia() {
    return Boolean(this.media.camera || this.media.screen);
  }

  // wantsAir: label is on air, or will be again after a reconnect.
  wantsAir(label) {
    return this.want[label];
  }

  get muted() {
    const track = this.media.camera?.getAudioTracks()[0];
    return track ? !track.enabled : false;
  }

  async ensureCamera() {
    if (!this.media.camera || this.media.camera.getTracks().every((t) => t.readyState === 'ended')) {
      this.media.camera = await openCamera();
      this.onChange();
    }
    return this.media.camera;
  }

  async start(label) {
    this.want[label] = true;
    this.endedAt[label] = 0;
    await this.publish(label);
  }

  async publish(label) {
    const media = this.media[label];
    if (!media || this.pubs.has(label)) return;
    const pub = new Publisher({
      id: streamId(label), label, media, send: this.send, codec: this.codec,
      onFailed: () => this.failed(pub),
    });
    this.pubs.set(label, pub);
    this.onChange();
    try {
      if (!(await pub.start())) throw new Error('not connected to the class');
    } catch (err) {
      if (pub.closed) return;
      this.end(label);
      this.onError(`Could not start the ${label === 'screen' ? 'screen share' : 'camera'}: ${err.message}`);
    }
  }

  // shareScreen asks the browser for a screen. Stopping the share from the
  // browser's own "Stop sharing" bar ends the track, which unpublishes.
  async shareScreen() {
    if (this.media.screen) return;
    const media = await openScreen();
    this.media.screen = media;
    media.getVideoTracks()[0]?.addEventListener('ended', () => {
      if (this.media.screen === media) this.stop('screen');
    });
    await this.start('screen');
  }

  // stop takes one stream off the air. The camera preview stays open.
  stop(label) {
    const pub = this.pubs.get(label);
    if (pub) this.send('unpublish', { stream: pub.id });
    this.end(label);
  }

  stopAll() {
    for (const label of LABELS) this.stop(label);
  }

  // release stops everything and turns the camera and microphone off.
  release() {
    this.stopAll();
    stopMedia(this.media.camera);
    this.media.camera = null;
    this.onChange();
  }

  toggleMute() {
    const track = this.media.camera?.getAudioTracks()[0];
    if (track) track.enabled = !track.enabled;
    this.onChange();
  }

  // end forgets a stream locally: no message is sent.
  end(label) {
    this.want[label] = false;
    this.endedAt[label] = 0;
    this.pubs.get(label)?.close();
    this.pubs.delete(label);
    if (label === 'screen') {
      stopMedia(this.media.screen);
      this.media.screen = null;
    }
    this.onChange();
  }

  failed(pub) {
    if (this.pubs.get(pub.label) !== pub) return;
    this.stop(pub.label);
    this.onError(`The ${pub.label === 'screen' ? 'screen share' : 'camera'} connection failed. Start it again.`);
  }

  findById(id) {
    for (const pub of this.pubs.values()) if (pub.id === id) return pub;
    return null;
  }

  findByRid(rid) {
    for (const pub of this.pubs.values()) if (rid && pub.rid === rid) return pub;
    return null;
  }

  async onAnswer(id, sdp) {
    const pub = this.findById(id);
    if (!pub) return;
    try {
      await pub.accept(sdp);
      this.onChange();
    } catch (err) {
      if (!pub.closed) this.failed(pub);
    }
  }

  // onRequestFailed handles an `error` for a `publish`; true if it was ours.
  onRequestFailed(rid) {
    const pub = this.findByRid(rid);
    if (!pub) return false;
    this.end(pub.label);
    return true;
  }

  // onStreamClosed: the server ended one of our streams. A server that is
  // shutting down (stopping: it said `shutdown`) ends every stream just
  // before the socket closes: the wish to be on air stays, and the next
  // connection, here or on another node, republishes. Otherwise the wish
  // is kept for a short while only: a reconnect soon after republishes, a
  // later one does not. (A revoked student is released by the participant
  // update that comes with the revoke.)
  onStreamClosed(id, { stopping = false } = {}) {
    const pub = this.findById(id);
    if (!pub) return false;
    pub.close();
    this.pubs.delete(pub.label);
    this.endedAt[pub.label] = stopping ? 0 : Date.now();
    this.onChange();
    return true;
  }

  // suspend: the websocket is gone and the server has dropped our streams.
  // Connections close; `want` and local media stay for resume().
  suspend() {
    for (const pub of this.pubs.values()) pub.close();
    this.pubs.clear();
    this.onChange();
  }

  async resume() {
    for (const label of LABELS) {
      const ended = this.endedAt[label];
      if (ended && Date.now() - ended > RESUME_AFTER_END_MS) this.want[label] = false;
      this.endedAt[label] = 0;
      if (this.want[label]) await this.publish(label);
    }
  }

  // summary, for window.lectern.state(): each label's status, stream id
  // and the ids of the tracks its peer connection sends.
  summary() {
    return Object.fromEntries(LABELS.map((l) => {
      const pub = this.pubs.get(l);
      const tracks = pub && !pub.closed ? pub.pc.getSenders().map((s) => s.track?.id).filter(Boolean) : [];
      return [l, { status: this.status(l), stream: pub?.id ?? null, tracks }];
    }));
  }
}
