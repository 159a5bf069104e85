// ui.js: small DOM helpers shared by the lobby and the class page.
// User-supplied text (names, chat) is only ever set with textContent.

export const $ = (selector, root = document) => root.querySelector(selector);

export const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

// el builds an element. props: className, text, attrs (attributes), on (listeners).
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  if (props.className) node.className = props.className;
  if (props.text !== undefined) node.textContent = props.text;
  for (const [name, value] of Object.entries(props.attrs ?? {})) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value));
  }
  for (const [type, fn] of Object.entries(props.on ?? {})) node.addEventListener(type, fn);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const TOAST_MS = { info: 4000, success: 3000, error: 6000 };

// toast shows a short, unobtrusive message in the corner.
export function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const item = el('div', {
    className: `toast toast-${kind}`,
    text,
    attrs: { 'data-testid': 'toast', role: kind === 'error' ? 'alert' : 'status' },
  });
  box.append(item);
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(() => {
    item.classList.add('toast-leaving');
    setTimeout(() => item.remove(), 300);
  }, TOAST_MS[kind] ?? TOAST_MS.info);
}

// copyText copies to the clipboard. navigator.clipboard needs a secure
// context; a school LAN served over plain http falls back to a selection.
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = el('textarea', { attrs: { readonly: true, 'aria-hidden': 'true' } });
    area.value = text;
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.append(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    area.remove();
    return ok;
  }
}

// errorMessage reads an HTTP error answer: JSON {message} or {error}, or text.
export async function errorMessage(res, fallback) {
  let detail = '';
  try {
    const text = (await res.text()).trim();
    try {
      const body = JSON.parse(text);
      detail = body.message || body.error || '';
    } catch {
      detail = text.length < 200 ? text : '';
    }
  } catch { /* the body is optional */ }
  return detail ? `${fallback}: ${detail}` : `${fallback} (HTTP ${res.status}).`;
}

// initials gives up to two letters for an avatar.
export function initials(name) {
  const words = String(name ?? '').trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return letters.map((w) => [...w][0]).join('').toUpperCase() || '?';
}

// hue picks a stable avatar colour from a participant id.
export function hue(id) {
  let h = 0;
  for (const ch of String(id)) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

export function formatTime(ts) {
  const d = new Date(typeof ts === 'number' ? ts : Date.now());
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}
