// recording.js: the class page's recording indicator (everyone) and its
// record buttons (teachers and operators). Recordings start and stop
// through the HTTP API with the page's own token (docs/recording.md); the
// server tells everyone in the class with a `recording` message.

const FAILED = {
  disk_full: 'Recording stopped: the server disk is full. The class goes on.',
  write_error: 'Recording stopped: the server could not write it. The class goes on.',
};

export class RecordingControls {
  constructor({ token, role, room, toast }) {
    this.token = token;
    this.room = room;
    this.toast = toast;
    this.moderator = role === 'teacher' || role === 'operator';
    this.active = false;
    this.id = '';
    this.last = '';
    this.badge = document.getElementById('rec-indicator');
    this.start = document.getElementById('record-start');
    this.stop = document.getElementById('record-stop');
    this.share = document.getElementById('record-share');
    if (!this.moderator) return;
    this.start.addEventListener('click', () => this.request('POST'));
    this.stop.addEventListener('click', () => this.request('DELETE'));
    this.share.addEventListener('click', () => this.shareLink());
    this.render();
  }

  update(d) {
    this.active = Boolean(d?.active);
    this.id = d?.id ?? '';
    if (this.id) this.last = this.id;
    this.render();
  }

  failed(d) {
    this.toast(FAILED[d?.reason] ?? FAILED.write_error, 'error');
  }

  render() {
    this.badge.hidden = !this.active;
    if (!this.moderator) return;
    this.start.hidden = this.active;
    this.stop.hidden = !this.active;
    this.share.hidden = this.active || !this.last;
  }

  async request(method) {
    const button = method === 'POST' ? this.start : this.stop;
    button.disabled = true;
    try {
      const res = await fetch(`/api/rooms/${encodeURIComponent(this.room)}/recording`, {
        method, headers: { Authorization: `Bearer ${this.token}` },
      });
      if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error ?? res.statusText);
      const body = await res.json();
      this.update({ active: method === 'POST', id: body.id });
    } catch (err) {
      this.toast(`Recording: ${err.message}`, 'error');
    } finally {
      button.disabled = false;
    }
  }

  async shareLink() {
    try {
      const res = await fetch(`/api/recordings/${encodeURIComponent(this.last)}/link`, {
        method: 'POST', headers: { Authorization: `Bearer ${this.token}` },
      });
      if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error ?? res.statusText);
      const link = new URL((await res.json()).url, location.origin).href;
      await navigator.clipboard?.writeText(link).catch(() => {});
      this.toast(`Replay link for your students (copied): ${link}`, 'info');
    } catch (err) {
      this.toast(`Replay link: ${err.message}`, 'error');
    }
  }
}
