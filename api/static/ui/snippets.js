// A request as code: the curl command and the Python (gengate.client) call that send exactly the
// request the Playground sends. Both are plain text put into <pre> elements (textContent): a prompt
// holding markup or quotes is shown, never run, and stays one correct string in the code.
import { apiUrl } from "./api.js";

// The Python client's method per endpoint (gengate/client/sync.py GatewayClient).
const PY_METHODS = { image: "create_image", video: "create_video", speech: "create_speech", music: "create_music",
                     transcription: "create_transcription" };

/** A string as one single-quoted shell word: inside single quotes nothing is special to the shell
 *  but the single quote itself, written as '\'' (close, an escaped quote, reopen). */
export function shellQuote(text) {
  return `'${String(text).replace(/'/g, "'\\''")}'`;
}

/** The curl command of `{method, path, json}`. The key is never written: the command reads it from
 *  $GENGATE_API_KEY (double quotes, so the shell expands it), and the body is the very string
 *  JSON.stringify gives, which is what api.js call() sends. */
export function curlCommand({ method, path, json }) {
  const lines = [`curl -s -X ${method} ${shellQuote(apiUrl(path).href)}`,
                 `  -H "Authorization: Bearer $GENGATE_API_KEY"`];
  if (json !== undefined) {
    lines.push(`  -H ${shellQuote("Content-Type: application/json")}`, `  -d ${shellQuote(JSON.stringify(json))}`);
  }
  return lines.join(" \\\n");
}

/** The same request through gengate's Python client: one keyword per field of the body, in the
 *  body's order (the client sends its keywords as the JSON body, files as {"url": ...}). */
export function pythonCode({ path, json }) {
  const method = PY_METHODS[path];
  const args = Object.entries(json).map(([name, value]) => `        ${name}=${pyValue(name === "files"
    ? value.map((file) => file.url) : value)},`);
  return [
    "from gengate.client import GatewayClient",
    "",
    "# The key comes from $GENGATE_API_KEY.",
    `with GatewayClient(base_url=${pyValue(apiUrl("").href.replace(/\/$/, ""))}) as gg:`,
    `    job = gg.${method}(`,
    ...args,
    "    )",
    "    done = gg.wait_for_job(job)",
    "    done.raise_for_status()  # JobFailed if it failed or was cancelled",
    "    print(gg.download(done))  # saved as <job_id>.<ext>",
  ].join("\n");
}

/** A JSON value as a Python literal. A JSON string literal is a valid Python one (the same escapes:
 *  \" \\ \n \uXXXX); only true, false and null are spelled differently. */
export function pyValue(value) {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (Array.isArray(value)) return `[${value.map(pyValue).join(", ")}]`;
  if (typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${pyValue(v)}`).join(", ")}}`;
  }
  return JSON.stringify(value);
}
