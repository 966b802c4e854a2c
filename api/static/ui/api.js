// The public /v1 API, as any client calls it: Bearer key, JSON, the gateway's error shape.
import { apiKey } from "./session.js";

// Relative to the page (<root>/ui): works under any path prefix a proxy adds.
export const API_BASE = new URL("v1/", document.baseURI);

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function apiUrl(path, params = {}) {
  const url = new URL(path.replace(/^\//, ""), API_BASE);
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  return url;
}

export function authHeaders(key = apiKey(), extra = {}) {
  return { Authorization: `Bearer ${key}`, ...extra };
}

/** A JSON call; resolves to the body (null for 204), rejects with ApiError. `json` is sent as the
 *  request's JSON body, `body` as it is (a File or Blob, with `headers` saying its type). */
export async function call(path, { method = "GET", params, key, signal, json, body, headers = {} } = {}) {
  const init = { method, headers: authHeaders(key, headers), signal };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  const answer = await fetch(apiUrl(path, params), init);
  if (answer.status === 204) return null;
  const result = await answer.json().catch(() => null);
  if (!answer.ok) throw new ApiError(answer.status, result);
  return result;
}

export const me = (key) => call("me", { key });
export const listJobs = (params, signal) => call("jobs", { params, signal });
export const getJob = (id, signal) => call(`jobs/${encodeURIComponent(id)}`, { signal });
export const cancelJob = (id) => call(`jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
