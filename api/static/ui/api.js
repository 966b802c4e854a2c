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

// The job record has no price: /v1/usage has what each completed job cost, one record per job, in the
// days around its run. Looked up through at most USAGE_PAGES pages of the period (a busy account's
// older job may not be found: null), which is work a `cost_cents` field on the job would spare.
const USAGE_PAGES = 3;

export async function usageRecord(job) {
  if (job.status !== "completed" || !job.completed_at) return null;
  const params = { from: job.created_at.slice(0, 10), to: job.completed_at.slice(0, 10), limit: 1000 };
  for (let page = 0; page < USAGE_PAGES; page += 1) {
    const body = await call("usage", { params });
    const found = body.usage.find((record) => record.job_id === job.job_id);
    if (found) return found;
    if (!body.next_cursor) return null;
    params.cursor = body.next_cursor;
  }
  return null;
}
