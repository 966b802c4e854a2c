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
