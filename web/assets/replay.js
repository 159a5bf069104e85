// replay.js: the replay page, /replay/{id}#token=… . The token (a replay
// link's, or an operator's) leaves the address bar at once, is sent as a
// bearer token to read the recording, then traded for an HttpOnly cookie
// scoped to the recording's media paths: a <video> cannot send headers,
// and a token in its src would end up in logs and history.

import { tokenFromHash } from './token.js';

const $ = (sel) => document.querySelector(sel);

function fail(text) {
  $('#replay-error-text').textContent = text;
  $('#replay-error').hidden = false;
  $('#replay-main').hidden = true;
}

function describe(e) {
  const start = new Date(e.start);
  const mins = Math.floor(e.duration / 60);
  const secs = Math.round(e.duration % 60).toString().padStart(2, '0');
  const who = e.teacher ? ` with ${e.teacher}` : '';
  return `${e.room}${who}, ${start.toLocaleString()} (${mins}:${secs})`;
}

async function api(method, path, token) {
  const res = await fetch(path, { method, headers: { Authorization: `Bearer ${token}` }, credentials: 'same-origin' });
  if (res.status === 401) throw new Error('The link has expired or is not valid. Ask your teacher for a new one.');
  if (res.status === 403) throw new Error('This link does not open this recording.');
  if (res.status === 404) throw new Error('This recording does not exist any more.');
  if (!res.ok) throw new Error(`The server answered ${res.status}.`);
  return res.status === 204 ? null : res.json();
}

function show(video, part) {
  video.src = part.media;
  video.dataset.recording = part.id;
}

async function main() {
  const id = decodeURIComponent(location.pathname.split('/')[2] ?? '');
  const token = tokenFromHash(location.hash);
  history.replaceState(null, '', location.pathname); // the token leaves the address bar
  if (!token) {
    fail('The link is incomplete: open the full link you were given.');
    return;
  }
  try {
    const rec = await api('GET', `/api/recordings/${encodeURIComponent(id)}`, token);
    await api('POST', `/api/recordings/${encodeURIComponent(id)}/session`, token);
    $('#replay-sub').textContent = describe(rec);
    $('#replay-main').hidden = false;
    const video = $('#replay-video');
    show(video, rec);
    const parts = (rec.parts ?? []).filter((p) => p.size > 0);
    if (parts.length > 1) {
      const box = $('#replay-parts');
      for (const p of parts) {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'btn btn-secondary';
        b.dataset.testid = `replay-part-${p.label}`;
        b.textContent = p.label === 'screen' ? 'Shared screen' : 'Camera';
        b.addEventListener('click', () => show(video, p));
        box.append(b);
      }
    }
    window.lectern = { recording: rec };
  } catch (err) {
    fail(err.message);
  }
}

main();
