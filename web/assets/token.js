// token.js: reading class links. The page only reads a token's claims to
// decide what to show (name form, role); the server checks the signature
// on every join (RFC 7519 tokens, HS256).

const STORE_PREFIX = 'lectern:token:';
// A stored personal token is reused only while it stays valid a little
// longer, so a join never races the token's own expiry.
const REUSE_MARGIN_S = 30;

// tokenFromHash reads "#token=…". The token lives in the fragment so it is
// never sent to the server in a request line or logged by a proxy.
export function tokenFromHash(hash = location.hash) {
  return new URLSearchParams(hash.replace(/^#/, '')).get('token') ?? '';
}

const LINK_PREFIX = 'lectern:link:';

// takeLink moves the link's secrets (`token`, and `invite` after a move
// between nodes) out of the address bar into this tab's sessionStorage,
// so a shared screen or the history shows no token, while a reload of the
// page still finds them. It returns {token, invite}: the fragment's, or,
// when the fragment has none (a reload), the ones kept for this page.
export function takeLink(loc = location) {
  const params = new URLSearchParams(loc.hash.replace(/^#/, ''));
  const key = LINK_PREFIX + loc.pathname;
  if (!params.has('token') && !params.has('invite')) return storedLink(key);
  const link = { token: params.get('token') ?? '', invite: params.get('invite') ?? '' };
  try { sessionStorage.setItem(key, JSON.stringify(link)); } catch { /* private mode: no reload */ }
  params.delete('token');
  params.delete('invite');
  const rest = params.toString();
  history.replaceState(history.state, '', `${loc.pathname}${loc.search}${rest ? `#${rest}` : ''}`);
  return link;
}

// currentLink is the page's link secrets without changing anything.
export function currentLink(loc = location) {
  const params = new URLSearchParams(loc.hash.replace(/^#/, ''));
  if (params.has('token')) return { token: params.get('token') ?? '', invite: params.get('invite') ?? '' };
  return storedLink(LINK_PREFIX + loc.pathname);
}

function storedLink(key) {
  try {
    const v = JSON.parse(sessionStorage.getItem(key) ?? 'null');
    return { token: typeof v?.token === 'string' ? v.token : '', invite: typeof v?.invite === 'string' ? v.invite : '' };
  } catch {
    return { token: '', invite: '' };
  }
}

// decodeClaims returns the JWT payload (base64url JSON, RFC 7515 section 2)
// or null when the token is not shaped like a JWT.
export function decodeClaims(token) {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3 || !parts[1]) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' && !Array.isArray(claims) ? claims : null;
  } catch {
    return null;
  }
}

// isExpired reports whether exp (seconds, RFC 7519 section 4.1.4) has passed,
// or will within marginS seconds.
export function isExpired(claims, marginS = 0) {
  return typeof claims?.exp !== 'number' || claims.exp <= Date.now() / 1000 + marginS;
}

// loadPersonalToken returns this tab's personal student token for the room,
// if it is still usable, so a reload keeps the same participant.
export function loadPersonalToken(room) {
  let token = null;
  try {
    token = sessionStorage.getItem(STORE_PREFIX + room);
  } catch {
    return null;
  }
  const claims = decodeClaims(token);
  if (!claims || claims.room !== room || claims.inv || isExpired(claims, REUSE_MARGIN_S)) {
    forgetPersonalToken(room);
    return null;
  }
  return token;
}

export function savePersonalToken(room, token) {
  try { sessionStorage.setItem(STORE_PREFIX + room, token); } catch { /* private mode: no reuse */ }
}

export function forgetPersonalToken(room) {
  try { sessionStorage.removeItem(STORE_PREFIX + room); } catch { /* nothing stored */ }
}
