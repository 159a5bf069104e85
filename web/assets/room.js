// room.js: the class page's entry point. It reads the link's token (and
// takes it out of the address bar, token.js takeLink), turns
// a student invite into a personal token (asking the student's name), then
// runs a Classroom. It also exposes window.lectern for tests and support.

import {
  takeLink, decodeClaims, isExpired, loadPersonalToken, savePersonalToken, forgetPersonalToken,
} from './token.js';
import { Classroom } from './classroom.js';
import { CLOSE_CLASS_ENDED } from './protocol.js';
import { RoomView } from './view.js';
import { errorMessage } from './ui.js';

const view = new RoomView();
let classroom = null;
let invite = null; // {token, claims} when the page was opened from an invite link

const reload = () => location.reload();

const NOTICES = {
  badLink: {
    kind: 'bad-link', title: 'This class link is incomplete',
    text: 'Open the full link you were given. If it still does not work, ask your teacher for a new one.',
  },
  expired: {
    kind: 'expired', title: 'This link has expired',
    text: 'Class links are valid for a limited time. Ask for a new link.',
  },
  inviteExpired: {
    kind: 'expired', title: 'This invite has expired',
    text: 'Ask your teacher for a new invite link to join the class.',
  },
  removed: {
    kind: 'removed', title: 'You were removed from this class',
    text: 'The teacher removed you from this class. If you think this is a mistake, talk to your teacher.',
  },
  forbidden: {
    kind: 'forbidden', title: 'You cannot join this class',
    text: 'This link is for another class, or you were removed from this one.',
  },
  replaced: {
    kind: 'replaced', title: 'This class is open somewhere else',
    text: 'You joined this class from another tab or device, so this one stopped.',
    action: { label: 'Use this tab instead', onClick: reload },
  },
  left: {
    kind: 'left', title: 'You left the class',
    text: 'You can come back while the class is running.',
    action: { label: 'Rejoin', onClick: reload },
  },
  classEnded: {
    kind: 'class-ended', title: 'The class has ended',
    text: 'The teacher or the school ended this class for everyone. You can close this page.',
  },
  ended: {
    kind: 'ended', title: 'Disconnected',
    text: 'The connection to the class ended.',
    action: { label: 'Reconnect', onClick: reload },
  },
};

window.lectern = {
  state: () => classroom?.state() ?? { connected: false, live: false, participants: [], streams: [] },
  stats: async () => classroom?.stats() ?? { videoWidth: 0, videoHeight: 0, framesDecoded: 0 },
};

function boot() {
  const link = takeLink();
  const token = link.token;
  const claims = decodeClaims(token);
  if (!claims || typeof claims.room !== 'string' || !claims.role) {
    view.notice(NOTICES.badLink);
    return;
  }
  if (claims.inv) {
    invite = { token, claims };
    startFromInvite();
    return;
  }
  if (movedFromInvite(token, claims, link.invite)) return;
  if (isExpired(claims)) {
    view.notice(NOTICES.expired);
    return;
  }
  enter(token, claims);
}

// movedFromInvite: a student who came with an invite and was moved to this
// node by another (protocol.js, movedLocation) carries the personal token
// as `token` and the invite as `invite`. The personal token is stored for
// this origin, so reloads keep the participant, and the invite stays at
// hand for when the session ends (4001).
function movedFromInvite(token, claims, inviteToken) {
  const inviteClaims = decodeClaims(inviteToken);
  if (!inviteClaims?.inv || inviteClaims.room !== claims.room || claims.role !== 'student') return false;
  invite = { token: inviteToken, claims: inviteClaims };
  savePersonalToken(claims.room, token);
  startFromInvite();
  return true;
}

// startFromInvite reuses this tab's personal token (a reload keeps the same
// participant) or asks for a name. ?name= fills the form and submits it.
function startFromInvite(message) {
  const room = invite.claims.room;
  const stored = loadPersonalToken(room);
  if (stored) {
    enter(stored, decodeClaims(stored));
    return;
  }
  if (isExpired(invite.claims)) {
    view.notice(NOTICES.inviteExpired);
    return;
  }
  const preset = new URLSearchParams(location.search).get('name')?.trim() ?? '';
  // The check page gets the invite, which lets it test TURN (check.js).
  document.querySelector('#check-link').href = `/check#token=${encodeURIComponent(invite.token)}`;
  view.askName({ preset, message, onSubmit: exchangeInvite });
  if (preset && !message) view.submitName();
}

// exchangeInvite: POST /api/join trades the invite for a personal token.
async function exchangeInvite(name) {
  view.nameBusy(true);
  try {
    const res = await fetch('/api/join', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token: invite.token, name }),
    });
    if (res.status === 401) {
      view.notice(NOTICES.inviteExpired);
      return;
    }
    if (res.status === 400) {
      view.nameError('Enter your name (1 to 64 characters).');
      return;
    }
    if (res.status === 429) {
      retryJoin(name, res);
      return;
    }
    if (!res.ok) {
      view.nameError(await errorMessage(res, 'Could not join the class'));
      return;
    }
    const { token } = await res.json();
    const claims = decodeClaims(token);
    if (!claims) throw new Error('the server sent an unreadable token');
    savePersonalToken(invite.claims.room, token);
    enter(token, claims);
  } catch (err) {
    view.nameError(err instanceof TypeError ? 'Cannot reach the class server. Check the connection and try again.'
      : `Could not join the class: ${err.message}`);
  } finally {
    view.nameBusy(false);
  }
}

// retryJoin: many students are joining from the same invite or network
// at once (the server's join limits, 429); the page tries again by
// itself after the Retry-After the server gave, at most a minute.
function retryJoin(name, res) {
  const wait = Math.min(60, Math.max(1, Number(res.headers.get('Retry-After')) || 5));
  view.nameError(`Many students are joining right now. Trying again in ${wait} s…`);
  setTimeout(() => exchangeInvite(name), wait * 1000);
}

function enter(token, claims) {
  classroom = new Classroom({ token, claims, view, onFinal: finished });
  classroom.start();
}

function finished(code, { removed, joinedBefore }) {
  switch (code) {
    case 1000:
      view.notice(NOTICES.left);
      break;
    case 4003:
      view.notice(removed || joinedBefore ? NOTICES.removed : NOTICES.forbidden);
      break;
    case 4009:
      view.notice(NOTICES.replaced);
      break;
    case CLOSE_CLASS_ENDED:
      view.notice(NOTICES.classEnded);
      break;
    case 4001:
      tokenRejected();
      break;
    default:
      view.notice(NOTICES.ended);
  }
}

// tokenRejected (4001): a stored personal token may have expired while the
// invite is still good; then the student simply joins again.
function tokenRejected() {
  if (invite) {
    forgetPersonalToken(invite.claims.room);
    if (!isExpired(invite.claims)) {
      startFromInvite('Your session ended. Enter your name to join again.');
      return;
    }
    view.notice(NOTICES.inviteExpired);
    return;
  }
  view.notice(NOTICES.expired);
}

// A different link pasted into the same tab changes only the fragment.
window.addEventListener('hashchange', reload);
boot();
