// view.js: the class page's DOM. It renders what the Classroom decides and
// forwards clicks to it; it holds no class state of its own.

import { $, byTestId, toast } from './ui.js';
import { Stage } from './stage.js';
import { ParticipantList } from './participants.js';
import { ChatView } from './chat.js';
import { canShareScreen } from './media.js';

const SCREENS = ['screen-loading', 'screen-name', 'screen-notice', 'screen-class'];
const ROLE_LABEL = { teacher: 'Teacher', student: 'Student', operator: 'Operator' };
const CONNECTION_TEXT = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};

export class RoomView {
  constructor() {
    this.actions = {};
    this.stage = new Stage($('#stage'));
    const act = (name) => (...args) => this.actions[name]?.(...args);
    this.people = new ParticipantList(byTestId('participants'), $('#people-count'), {
      lowerHand: act('lowerHand'), invite: act('invite'), revoke: act('revoke'), remove: act('remove'),
    });
    this.chat = new ChatView({
      log: byTestId('chat-log'), form: $('#chat-form'), input: byTestId('chat-input'),
      onSend: (text) => this.actions.sendChat?.(text) ?? false,
    });
    const buttons = {
      'go-live': 'goLive', stop: 'stop', mute: 'toggleMute', 'share-screen': 'toggleScreen',
      'raise-hand': 'toggleHand', speak: 'toggleSpeak', leave: 'leave', 'camera-retry': 'retryCamera',
    };
    for (const [testid, action] of Object.entries(buttons)) byTestId(testid).addEventListener('click', act(action));
    $('#banner-action').addEventListener('click', () => this.bannerAction?.());
    $('#notice-action').addEventListener('click', () => this.noticeAction?.());
  }

  setActions(actions) {
    this.actions = actions;
  }

  show(screen) {
    for (const id of SCREENS) document.getElementById(id).hidden = id !== screen;
  }

  toast(text, kind) {
    toast(text, kind);
  }

  setRole(role) {
    document.body.dataset.role = role;
    for (const node of document.querySelectorAll('.only-teacher')) node.hidden = role !== 'teacher';
    for (const node of document.querySelectorAll('.only-student')) node.hidden = role !== 'student';
    if (role === 'teacher' && !canShareScreen()) byTestId('share-screen').hidden = true;
    byTestId('mute').hidden = role !== 'teacher';
  }

  setHeading(room, teacherName, role, title) {
    const heading = title || (teacherName ? `${teacherName}'s class` : 'Live class');
    $('#class-heading').textContent = heading;
    $('#class-sub').textContent = [ROLE_LABEL[role], room ? `Room ${room}` : ''].filter(Boolean).join(' · ');
    document.title = `${heading} · Lectern`;
  }

  setConnection(state) {
    const node = byTestId('connection');
    node.hidden = false;
    node.dataset.state = state;
    node.textContent = CONNECTION_TEXT[state] ?? state;
    byTestId('leave').hidden = state === 'offline';
  }

  // setBanner shows a connection notice; text null hides it.
  setBanner(text, action = null) {
    const banner = byTestId('banner');
    banner.hidden = !text;
    $('#banner-text').textContent = text ?? '';
    const button = $('#banner-action');
    button.hidden = !action;
    button.textContent = action?.label ?? '';
    this.bannerAction = action?.onClick ?? null;
  }

  setLive(live) {
    byTestId('live-badge').hidden = !live;
  }

  // notice replaces the page with a final state (removed, expired, left…).
  notice({ kind, title, text, action }) {
    this.show('screen-notice');
    byTestId('connection').hidden = true;
    byTestId('leave').hidden = true;
    byTestId('notice').dataset.kind = kind;
    $('#notice-title').textContent = title;
    $('#notice-text').textContent = text;
    const button = byTestId('notice-action');
    button.hidden = !action;
    button.textContent = action?.label ?? '';
    this.noticeAction = action?.onClick ?? null;
    $('#notice-title').focus();
  }

  // askName shows the student name form; onSubmit(name) runs on submit.
  askName({ preset, message, onSubmit }) {
    this.show('screen-name');
    const form = $('#name-form');
    const input = byTestId('student-name');
    if (preset && !input.value) input.value = preset;
    this.nameError(message ?? '');
    form.onsubmit = (ev) => {
      ev.preventDefault();
      const name = input.value.trim();
      if (!name || [...name].length > 64) {
        this.nameError('Enter your name (1 to 64 characters).');
        input.focus();
        return;
      }
      onSubmit(name);
    };
    input.focus();
  }

  submitName() {
    $('#name-form').requestSubmit();
  }

  nameBusy(busy) {
    const button = byTestId('join-class');
    button.disabled = busy;
    button.textContent = busy ? 'Joining…' : 'Join class';
  }

  nameError(text) {
    const box = byTestId('join-error');
    box.textContent = text;
    box.hidden = !text;
  }

  // previewMessage covers the teacher's stage while the camera is not ready.
  previewMessage(title, text = '', retry = false) {
    const box = byTestId('preview-message');
    box.hidden = !title;
    $('#preview-title').textContent = title ?? '';
    $('#preview-text').textContent = text;
    byTestId('camera-retry').hidden = !retry;
  }

  renderPeople(participants, selfId, moderator) {
    this.people.render(participants, { selfId, moderator });
    this.chat.setRoles(participants);
  }

  // renderControls: m = {role, connected, cameraReady, camera, screen,
  // muted, hasAudio, hand, canPublish}; camera/screen are 'off'|'starting'|'live'.
  renderControls(m) {
    if (m.role === 'teacher') this.teacherControls(m);
    if (m.role === 'student') this.studentControls(m);
    const speaking = m.camera !== 'off';
    const mute = byTestId('mute');
    if (m.role === 'student') mute.hidden = !speaking;
    mute.disabled = !m.hasAudio;
    mute.setAttribute('aria-pressed', String(m.muted));
    mute.querySelector('.label').textContent = m.muted ? 'Unmute' : 'Mute';
    $('#muted-chip').hidden = !(m.muted && m.hasAudio);
    $('#on-air').hidden = !(m.role === 'teacher' && m.camera === 'live');
    $('#preview-chip').hidden = !(m.role === 'teacher' && m.cameraReady && m.camera === 'off');
  }

  teacherControls(m) {
    const goLive = byTestId('go-live');
    goLive.hidden = m.camera !== 'off';
    goLive.disabled = !m.connected || !m.cameraReady;
    byTestId('stop').hidden = m.camera === 'off' && m.screen === 'off';
    const share = byTestId('share-screen');
    share.disabled = !m.connected && m.screen === 'off';
    share.setAttribute('aria-pressed', String(m.screen !== 'off'));
    share.querySelector('.label').textContent = m.screen === 'off' ? 'Share screen' : 'Stop sharing';
    $('#sharing-chip').hidden = m.screen === 'off';
  }

  studentControls(m) {
    const hand = byTestId('raise-hand');
    hand.disabled = !m.connected;
    hand.setAttribute('aria-pressed', String(Boolean(m.hand)));
    hand.querySelector('.label').textContent = m.hand ? 'Lower hand' : 'Raise hand';
    hand.classList.toggle('is-active', Boolean(m.hand));
    byTestId('invited').hidden = !m.canPublish;
    const speak = byTestId('speak');
    speak.disabled = !m.connected;
    speak.querySelector('.label').textContent = m.camera === 'off' ? 'Turn on mic and camera' : 'Turn off mic and camera';
    speak.classList.toggle('btn-primary', m.camera === 'off');
    speak.classList.toggle('btn-secondary', m.camera !== 'off');
  }
}
