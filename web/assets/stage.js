// stage.js: the video area. Slots: "teacher" (the teacher's camera, large),
// "screen" (a screen share: takes the stage, the camera shrinks to a
// corner), and "tile" (other speakers, in a strip under the stage).

import { byTestId, el, initials, hue } from './ui.js';

export class Stage {
  constructor(root) {
    this.root = root;
    this.teacherVideo = byTestId('teacher-video', root);
    this.screenVideo = byTestId('screen-video', root);
    this.localVideo = byTestId('local-video', root);
    this.waiting = byTestId('waiting', root);
    this.unmuteButton = byTestId('unmute-audio', root);
    this.tiles = document.getElementById('tiles');
    this.placed = new Map(); // stream id -> {slot, video, tile}
    this.selfTile = null;
    this.soundBlocked = false;
    this.unmuteButton.addEventListener('click', () => this.unmuteAll());
  }

  // show puts a received stream in a slot; a stream already shown in
  // another slot moves.
  show(id, media, { slot, name }) {
    const current = this.placed.get(id);
    if (current?.slot === slot) {
      if (current.video.srcObject !== media) this.play(current.video, media, slot === 'screen');
      return;
    }
    if (current) this.clear(id);
    const tile = slot === 'tile' ? this.addTile(id, name) : null;
    const video = tile ? tile.querySelector('video') : this.slotVideo(slot);
    for (const [other, p] of this.placed) if (p.video === video) this.placed.delete(other);
    this.placed.set(id, { slot, video, tile });
    this.play(video, media, slot === 'screen');
    this.refresh();
  }

  slotVideo(slot) {
    return slot === 'screen' ? this.screenVideo : this.teacherVideo;
  }

  addTile(id, name) {
    const tile = el('figure', { className: 'tile', attrs: { 'data-testid': 'video-tile', 'data-stream': id } },
      el('span', { className: 'tile-avatar', text: initials(name), attrs: { 'aria-hidden': 'true' } }),
      el('video', { attrs: { autoplay: true, playsinline: true, 'data-testid': 'tile-video' } }),
      el('figcaption', { text: name || 'Participant' }));
    tile.style.setProperty('--hue', hue(id));
    this.tiles.append(tile);
    return tile;
  }

  clear(id) {
    const p = this.placed.get(id);
    if (!p) return;
    this.placed.delete(id);
    p.video.srcObject = null;
    p.tile?.remove();
    this.refresh();
  }

  clearAll() {
    for (const id of [...this.placed.keys()]) this.clear(id);
  }

  has(slot) {
    for (const p of this.placed.values()) if (p.slot === slot) return true;
    return false;
  }

  streamIn(slot) {
    for (const [id, p] of this.placed) if (p.slot === slot) return id;
    return null;
  }

  // play starts a video with sound if the browser allows it. Autoplay
  // policies refuse unmuted playback without a user gesture: then the video
  // plays muted and one click on the overlay turns the sound on everywhere.
  async play(video, media, silent) {
    video.srcObject = media;
    video.muted = silent || this.soundBlocked;
    try {
      await video.play();
    } catch (err) {
      if (err.name === 'AbortError' || video.srcObject !== media) return; // replaced meanwhile
      if (err.name !== 'NotAllowedError' || video.muted) {
        console.warn('lectern: video playback failed', err);
        return;
      }
      this.soundBlocked = true;
      this.unmuteButton.hidden = false;
      video.muted = true;
      await video.play().catch(() => {});
    }
  }

  unmuteAll() {
    this.soundBlocked = false;
    this.unmuteButton.hidden = true;
    for (const p of this.placed.values()) {
      if (p.slot === 'screen') continue;
      p.video.muted = false;
      p.video.play().catch(() => {});
    }
  }

  // setLocal shows the teacher's own camera, always muted (no echo).
  setLocal(media) {
    if (this.localVideo.srcObject !== media) {
      this.localVideo.srcObject = media;
      if (media) this.localVideo.play().catch(() => {});
    }
    this.localVideo.hidden = !media;
    this.root.classList.toggle('has-local', Boolean(media));
  }

  // setSelf shows a speaking student's own camera as a tile, muted.
  setSelf(media, name) {
    if (!media) {
      this.selfTile?.remove();
      this.selfTile = null;
      this.refresh();
      return;
    }
    if (!this.selfTile) {
      this.selfTile = this.addTile('self', `${name || 'You'} (you)`);
      this.selfTile.classList.add('tile-self');
      this.selfTile.dataset.testid = 'self-tile';
      this.tiles.prepend(this.selfTile);
    }
    const video = this.selfTile.querySelector('video');
    video.muted = true;
    if (video.srcObject !== media) {
      video.srcObject = media;
      video.play().catch(() => {});
    }
    this.refresh();
  }

  setWaiting(waiting) {
    this.waiting.hidden = !waiting;
  }

  refresh() {
    const screen = this.has('screen');
    const teacher = this.has('teacher');
    this.screenVideo.hidden = !screen;
    this.teacherVideo.classList.toggle('is-empty', !teacher);
    this.root.classList.toggle('has-screen', screen);
    this.root.classList.toggle('has-teacher', teacher);
    this.tiles.hidden = this.tiles.children.length === 0;
  }
}
