// participants.js: the people list. Rows are keyed by participant id and
// updated in place, so a teacher's keyboard focus survives updates.

import { el, initials, hue } from './ui.js';

const ROLE_ORDER = { teacher: 0, student: 1, operator: 2 };
const ROLE_NAME = { teacher: 'Teacher', student: 'Student', operator: 'Operator' };
// PATH_NAME says in words how a participant's media connects
// (participant_connection, docs/protocol.md); others show as sent.
const PATH_NAME = {
  'host/udp': 'UDP', 'srflx/udp': 'UDP', 'prflx/udp': 'UDP',
  'host/tcp': 'TCP', 'srflx/tcp': 'TCP', 'prflx/tcp': 'TCP',
  'relay/udp': 'Relay (UDP)', 'relay/tcp': 'Relay (TCP)', 'relay/tls': 'Relay (TLS)',
};

// compare: teacher first, then raised hands, then by name.
function compare(a, b) {
  return (ROLE_ORDER[a.role] ?? 3) - (ROLE_ORDER[b.role] ?? 3)
    || Number(Boolean(b.hand)) - Number(Boolean(a.hand))
    || String(a.name).localeCompare(String(b.name), undefined, { sensitivity: 'base' })
    || String(a.id).localeCompare(String(b.id));
}

export class ParticipantList {
  // actions: {lowerHand(id), invite(id), revoke(id), remove(id)}
  constructor(list, count, actions) {
    this.list = list;
    this.count = count;
    this.actions = actions;
    this.rows = new Map();
  }

  render(participants, { selfId, moderator }) {
    const sorted = [...participants.values()].sort(compare);
    for (const p of sorted) {
      const row = this.rows.get(p.id) ?? this.create(p.id);
      this.update(row, p, p.id === selfId, moderator);
    }
    for (const [id, row] of this.rows) {
      if (!participants.has(id)) {
        row.li.remove();
        this.rows.delete(id);
      }
    }
    this.reorder(sorted);
    const hands = sorted.filter((p) => p.hand).length;
    this.count.textContent = hands ? `${sorted.length} · ${hands} raised` : String(sorted.length);
    this.count.setAttribute('aria-label', `${sorted.length} people, ${hands} hands raised`);
  }

  create(id) {
    const button = (testid, action, className) => el('button', {
      className: `btn btn-small ${className}`,
      attrs: { type: 'button', 'data-testid': testid },
      on: { click: () => this.actions[action(id)](id) },
    });
    const row = {
      avatar: el('span', { className: 'avatar', attrs: { 'aria-hidden': 'true' } }),
      name: el('span', { className: 'person-name' }),
      tags: el('span', { className: 'person-tags' }),
      lower: button('lower-hand', () => 'lowerHand', 'btn-secondary'),
      floor: button('invite-to-speak', () => (this.rows.get(id).invited ? 'revoke' : 'invite'), 'btn-secondary'),
      remove: button('remove', () => 'remove', 'btn-danger-ghost'),
      invited: false,
    };
    row.actionsBox = el('div', { className: 'person-actions' }, row.lower, row.floor, row.remove);
    row.li = el('li', { className: 'person', attrs: { 'data-testid': 'participant', 'data-participant-id': id } },
      row.avatar, el('div', { className: 'person-main' }, row.name, row.tags));
    this.rows.set(id, row);
    return row;
  }

  update(row, p, self, moderator) {
    row.avatar.textContent = initials(p.name);
    row.avatar.style.setProperty('--hue', hue(p.id));
    row.name.textContent = self ? `${p.name} (you)` : p.name;
    row.li.dataset.role = p.role;
    row.li.classList.toggle('hand-up', Boolean(p.hand));
    row.li.classList.toggle('is-self', self);
    row.tags.replaceChildren(...this.tags(p));
    row.invited = Boolean(p.can_publish);
    const canModerate = moderator && p.role === 'student' && !self;
    // Buttons exist only where they apply, so a query for a row's button
    // never finds a hidden one.
    if (canModerate !== (row.actionsBox.parentNode === row.li)) {
      if (canModerate) row.li.append(row.actionsBox);
      else row.actionsBox.remove();
    }
    if (Boolean(p.hand) !== (row.lower.parentNode === row.actionsBox)) {
      if (p.hand) row.actionsBox.prepend(row.lower);
      else row.lower.remove();
    }
    row.lower.textContent = 'Lower hand';
    row.lower.setAttribute('aria-label', `Lower ${p.name}'s hand`);
    row.floor.textContent = row.invited ? 'Take floor back' : 'Invite to speak';
    row.floor.setAttribute('aria-label', row.invited ? `Take the floor back from ${p.name}` : `Invite ${p.name} to speak`);
    row.remove.textContent = 'Remove';
    row.remove.setAttribute('aria-label', `Remove ${p.name} from the class`);
  }

  tags(p) {
    const out = [];
    if (p.role !== 'student') out.push(el('span', { className: `tag tag-${p.role}`, text: ROLE_NAME[p.role] ?? p.role }));
    if (p.hand) out.push(el('span', { className: 'tag tag-hand', text: 'Hand raised', attrs: { 'data-testid': 'hand-raised' } }));
    if (p.can_publish && p.role === 'student') out.push(el('span', { className: 'tag tag-speaker', text: 'Can speak' }));
    if (p.connection) {
      out.push(el('span', {
        className: `tag tag-path tag-path-${p.connection.split('/')[0]}`,
        text: PATH_NAME[p.connection] ?? p.connection,
        attrs: { 'data-testid': 'media-path', 'data-connection': p.connection, title: `Media path: ${p.connection}` },
      }));
    }
    // The server's verdict on the student's connection, sent to moderators only.
    if (p.quality && p.role === 'student') {
      out.push(el('span', {
        className: `tag tag-quality-${p.quality}`, text: `Connection ${p.quality}`,
        attrs: { 'data-testid': 'quality', 'data-verdict': p.quality },
      }));
    }
    return out;
  }

  // reorder moves rows only when the order changed: moving a focused
  // element would drop its focus.
  reorder(sorted) {
    const current = [...this.list.children];
    const same = current.length === sorted.length && sorted.every((p, i) => current[i] === this.rows.get(p.id).li);
    if (!same) this.list.append(...sorted.map((p) => this.rows.get(p.id).li));
  }
}
