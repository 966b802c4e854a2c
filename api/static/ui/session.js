// The signed-in API key. Kept in this tab's sessionStorage: it dies with the tab, is never sent by
// the browser on its own (no cookie, so no cross-site request can use it), and every API call sends
// it as the same Bearer header any client sends: the dashboard needs nothing the public API lacks.
const KEY = "gengate.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function signIn(key) {
  sessionStorage.setItem(KEY, key);
}

export function signOut() {
  sessionStorage.clear();
}

// The operator's admin key (GENGATE_ADMIN_KEY), entered on the settings page for the Operators page:
// kept like the API key, in this tab only, and sent only to /v1/admin/.
const ADMIN = "gengate.adminKey";

export function adminKey() {
  return sessionStorage.getItem(ADMIN);
}

export function setAdminKey(key) {
  if (key) sessionStorage.setItem(ADMIN, key); else sessionStorage.removeItem(ADMIN);
}
