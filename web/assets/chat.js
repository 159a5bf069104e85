// chat.js: the class chat. Messages are rendered with textContent only.

import { el, formatTime, hue } from './ui.js';

const MAX_CHARS = 1000; // docs/protocol.md: chat text is 1 to 1000 characters
const KEEP_MESSAGES = 500;
const STICKY_PX = 48;

export class ChatView {
  // onSend(text) returns true when the message went out.
  constructor({ log, form, input, onSend }) {
    this.log = log;
    this.input = input;
    this.onSend = onSend;
    this.roles = new Map();
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submit();
    });
  }

  submit() {
    const text = this.input.value.trim();
    if (!text) return;
    if ([...text].length > MAX_CHARS) return;
    if (this.onSend(text)) this.input.value = '';
  }

  // setRoles lets messages from the teacher stand out.
  setRoles(participants) {
    this.roles = new Map([...participants.values()].map((p) => [p.id, p.role]));
  }

  reset(messages, selfId) {
    this.log.replaceChildren();
    for (const m of messages) this.log.append(this.render(m, selfId));
    this.log.scrollTop = this.log.scrollHeight;
  }

  add(message, selfId) {
    const atBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < STICKY_PX;
    this.log.append(this.render(message, selfId));
    while (this.log.children.length > KEEP_MESSAGES) this.log.firstElementChild.remove();
    if (atBottom || message.id === selfId) this.log.scrollTop = this.log.scrollHeight;
  }

  render(m, selfId) {
    const mine = m.id === selfId;
    const item = el('li', { className: 'msg', attrs: { 'data-testid': 'chat-message', 'data-participant-id': m.id } },
      el('div', { className: 'msg-meta' },
        el('span', { className: 'msg-name', text: mine ? `${m.name} (you)` : m.name, attrs: { 'data-testid': 'chat-name' } }),
        el('time', { className: 'msg-time', text: formatTime(m.ts), attrs: { datetime: new Date(m.ts || Date.now()).toISOString() } })),
      el('p', { className: 'msg-text', text: m.text, attrs: { 'data-testid': 'chat-text' } }));
    item.classList.toggle('msg-mine', mine);
    item.classList.toggle('msg-teacher', this.roles.get(m.id) === 'teacher');
    item.style.setProperty('--hue', hue(m.id));
    return item;
  }
}
