// REST conformance test: usage `node conformance.mjs DEVSTREAM_BINARY [OPENAPI.json]`.
// Starts `devstream serve --port 0` on a temporary database, exercises every
// operation of the OpenAPI document with real requests (successes and the
// documented errors), and checks each reply against the document: the status
// code is one the operation lists, the body validates against the schema
// declared for that status and content type (Ajv, JSON Schema 2020-12), and
// the declared response headers are present and well-formed. Request bodies
// and query values sent as valid are validated against the document too, and
// bodies sent to provoke a 422 must be rejected by the documented schema.
// It also checks that GET /openapi.json serves the file byte-for-byte (as
// JSON) and that the routes registered in src/api/rest_api.cpp,
// src/api/memory_routes.cpp, src/api/engine_routes.cpp and
// src/mcp/http_transport.cpp (POST/DELETE /mcp) are exactly the documented
// operations. The server is stopped with SIGTERM in all cases.
import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants as fsConstants, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { fileURLToPath } from "node:url";
import { deref, fail, loadDocument, makeSchemaCompiler, operations } from "./openapi_tools.mjs";

if (typeof fetch !== "function") fail(`Node ${process.version} has no global fetch; Node 18 or later is required`);
const REQUEST_TIMEOUT_MS = 15_000;
const STARTUP_TIMEOUT_MS = 30_000;
const TOTAL_TIMEOUT_MS = 240_000;
const SHUTDOWN_TIMEOUT_MS = 15_000;

const binary = process.argv[2];
const docFile = process.argv[3] ?? fileURLToPath(new URL("../../src/api/openapi.json", import.meta.url));
// Every source file that registers routes (router.Add) of the served API.
const routesFiles = ["api/rest_api.cpp", "api/memory_routes.cpp", "api/engine_routes.cpp", "api/health.cpp", "api/hook_routes.cpp", "api/metrics.cpp", "mcp/http_transport.cpp"].map((f) => fileURLToPath(new URL(`../../src/${f}`, import.meta.url)));
if (!binary) fail("usage: node conformance.mjs DEVSTREAM_BINARY [OPENAPI.json]");
if (!existsSync(binary)) fail(`no devstream binary at ${binary}`);
try {
  accessSync(binary, fsConstants.X_OK);
} catch {
  fail(`${binary} is not executable (an interrupted or failed link?); rebuild the devstream target`);
}

const doc = loadDocument(docFile);
const compiler = makeSchemaCompiler(doc, { strict: false });

const failures = [];
const covered = new Map(); // "METHOD template" -> Set(status)
let requests = 0;

function problem(msg) {
  failures.push(msg);
  console.log(`FAIL ${msg}`);
}

// ---------------------------------------------------------------- server process

let server = null;
let serverStderr = "";
let serverExit = null;
const tmp = mkdtempSync(join(tmpdir(), "devstream-conformance-"));

function startServer(env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ["serve", "--host", "127.0.0.1", "--port", "0", "--db", join(tmp, "c.db")], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    server = child;
    let out = "";
    const timer = setTimeout(() => reject(new Error(`server did not print its address within ${STARTUP_TIMEOUT_MS} ms; stdout: ${out} stderr: ${serverStderr}`)), STARTUP_TIMEOUT_MS);
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d) => {
      serverStderr += d;
      if (serverStderr.length > 200_000) serverStderr = serverStderr.slice(-100_000);
    });
    child.stdout.on("data", (d) => {
      out += d;
      const m = /DevStream listening on (http:\/\/127\.0\.0\.1:(\d+))/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("error", (e) => {
      // The process could not be started (or signalled): there is no exit to wait for.
      if (!serverExit && child.pid === undefined) serverExit = { code: null, signal: null, spawnError: e.message };
      clearTimeout(timer);
      reject(e);
    });
    child.on("exit", (code, signal) => {
      serverExit = { code, signal };
      clearTimeout(timer);
      reject(new Error(`server exited early (code ${code}, signal ${signal}); stderr: ${serverStderr}`));
    });
  });
}

async function stopServer() {
  if (!server || serverExit) return serverExit;
  const exited = new Promise((resolve) => server.once("exit", (code, signal) => resolve({ code, signal })));
  server.kill("SIGTERM");
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve(null), SHUTDOWN_TIMEOUT_MS);
  });
  let result = await Promise.race([exited, timeout]);
  clearTimeout(timer);
  if (!result) {
    problem(`server did not exit within ${SHUTDOWN_TIMEOUT_MS} ms of SIGTERM; killing it`);
    server.kill("SIGKILL");
    result = await exited;
  }
  serverExit = result;
  return result;
}

// ---------------------------------------------------------------- requests and checks

let base = "";

function opFor(method, template) {
  const op = doc.paths?.[template]?.[method.toLowerCase()];
  if (!op) throw new Error(`the document has no ${method} ${template}`);
  return op;
}

function params(op) {
  return (op.parameters ?? []).map((p) => deref(doc, p));
}

function validate(schema, value, where) {
  const fn = compiler.compile(schema, where);
  return fn(value) ? null : compiler.errorsText(fn.errors);
}

// Sends one request to the operation `method template` and checks the reply.
// expectStatus: the status the reply must have, or an array of acceptable
// ones (for replies that depend on timing, e.g. a job the worker may already
// have run). opts: path (the concrete path), query (object), headers, json (a body to
// serialise), raw (a raw string body), contentType, bodyValid (true: the body
// must satisfy the request schema; false: it must not; undefined: no check).
async function call(method, template, expectStatus, opts = {}) {
  const op = opFor(method, template);
  const path = opts.path ?? template;
  const url = new URL(base + path);
  for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.append(k, String(v));
  const headers = { "X-Request-Id": `conf-${++requests}`, ...(opts.headers ?? {}) };
  let body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers["Content-Type"] = opts.contentType ?? "application/json";
  } else if (opts.raw !== undefined) {
    body = opts.raw;
    headers["Content-Type"] = opts.contentType ?? "application/json";
  }
  const expected = [].concat(expectStatus);
  const label = `${method} ${path}${url.search} -> ${expected.join("|")}`;

  // The request itself, against the document.
  const declared = params(op);
  if (expected.every((s) => s < 300)) {
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      const p = declared.find((q) => q.in === "query" && q.name === k);
      if (!p) problem(`${label}: query parameter ${k} is not documented`);
      else {
        const s = deref(doc, p.schema);
        const value = s?.type === "integer" || s?.type === "number" ? Number(v) : String(v);
        const err = validate(p.schema, value, `${method} ${template} query ${k}`);
        if (err) problem(`${label}: query ${k}=${v} violates its documented schema: ${err}`);
      }
    }
    for (const name of Object.keys(opts.headers ?? {})) {
      // Authorization is documented by the security scheme, never as a parameter.
      if (name.toLowerCase() === "authorization" && (op.security ?? doc.security)?.length) continue;
      if (!declared.find((q) => q.in === "header" && q.name.toLowerCase() === name.toLowerCase())) {
        problem(`${label}: request header ${name} is not documented`);
      }
    }
  }
  if (opts.json !== undefined && opts.bodyValid !== undefined) {
    const rb = op.requestBody ? deref(doc, op.requestBody) : null;
    const schema = rb?.content?.["application/json"]?.schema;
    if (!schema) problem(`${label}: operation documents no application/json request body`);
    else {
      const err = validate(schema, opts.json, `${method} ${template} request`);
      if (opts.bodyValid && err) problem(`${label}: request body violates the documented schema: ${err}`);
      if (!opts.bodyValid && !err) problem(`${label}: the documented request schema accepts a body the server rejects: ${JSON.stringify(opts.json).slice(0, 200)}`);
    }
  }

  let res;
  try {
    res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), redirect: "manual" });
  } catch (e) {
    throw new Error(`${label}: request failed: ${e.cause?.message ?? e.message}`);
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    text = new TextDecoder("utf-8").decode(bytes);
    problem(`${label}: the response body is not valid UTF-8`);
  }
  const status = res.status;
  const ctype = (res.headers.get("content-type") ?? "").split(";")[0].trim();
  let json;
  if (text.length) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  if (!expected.includes(status)) {
    throw new Error(`${label}: got ${status} ${text.slice(0, 500)}`);
  }
  const key = `${method} ${template}`;
  if (!covered.has(key)) covered.set(key, new Set());
  covered.get(key).add(String(status));

  // The reply, against the document.
  const r0 = op.responses?.[String(status)];
  if (!r0) {
    problem(`${label}: status ${status} is not listed for ${key} (lists ${Object.keys(op.responses ?? {}).join(", ")})`);
    return { status, json, text, headers: res.headers };
  }
  const r = deref(doc, r0);
  for (const [name, h0] of Object.entries(r.headers ?? {})) {
    const h = deref(doc, h0);
    const value = res.headers.get(name);
    if (value === null) {
      if (h.required) problem(`${label}: documented response header ${name} is missing`);
      continue;
    }
    if (h.schema) {
      const err = validate(h.schema, value, `${key} ${status} header ${name}`);
      if (err) problem(`${label}: header ${name}: ${JSON.stringify(value)} violates its schema: ${err}`);
    }
  }
  if (res.headers.get("x-request-id") !== headers["X-Request-Id"]) {
    problem(`${label}: X-Request-Id ${res.headers.get("x-request-id")} does not echo ${headers["X-Request-Id"]}`);
  }
  if (!r.content) {
    if (text.length) problem(`${label}: documented without content but has a body: ${text.slice(0, 200)}`);
  } else {
    const media = r.content[ctype];
    if (!media) {
      problem(`${label}: content type ${JSON.stringify(ctype)} is not documented (documented: ${Object.keys(r.content).join(", ")})`);
    } else if (ctype === "text/plain") {
      if (typeof text !== "string") problem(`${label}: text/plain body expected`);
    } else if (json === undefined) {
      problem(`${label}: body is not JSON: ${text.slice(0, 200)}`);
    } else if (media.schema) {
      const err = validate(media.schema, json, `${key} ${status} ${ctype}`);
      if (err) problem(`${label}: body violates the documented schema: ${err}\n     body: ${text.slice(0, 1500)}`);
    }
    if (ctype === "application/problem+json" && json && json.request_id !== headers["X-Request-Id"]) {
      problem(`${label}: problem request_id ${json.request_id} differs from X-Request-Id ${headers["X-Request-Id"]}`);
    }
  }
  console.log(`ok   ${label}`);
  return { status, json, text, headers: res.headers };
}

function expect(cond, msg) {
  if (!cond) problem(msg);
}

const etagVersion = (r) => {
  const m = /^"(\d+)"$/.exec(r.headers.get("etag") ?? "");
  return m ? Number(m[1]) : NaN;
};

// A well-formed id that does not exist.
const missing = (prefix) => `${prefix}_0000000000000000000000000Z`;

// ---------------------------------------------------------------- the scenario

async function scenario() {
  const P = "/api/v1";

  // ---- health, version, the document ----
  const health = await call("GET", "/health", 200);
  expect(health.json?.status === "healthy", "GET /health: status should be healthy");
  await call("GET", "/health/live", 200);
  await call("GET", "/health/ready", 200);
  const version = await call("GET", "/version", 200);
  expect(version.json?.version === health.json?.version, "GET /version and /health disagree on the version");
  const served = await call("GET", "/openapi.json", 200);
  expect(isDeepStrictEqual(served.json, doc), "GET /openapi.json does not equal src/api/openapi.json (rebuild the server?)");

  // ---- projects ----
  const noProjects = await call("GET", `${P}/projects`, 200);
  expect(noProjects.json?.items?.length === 0, "a new database should have no projects");
  const project = (await call("POST", `${P}/projects`, 201, { json: { name: "conformance", root_path: "/tmp/conformance-root" }, bodyValid: true })).json;
  await call("POST", `${P}/projects`, 201, { json: { name: "second", root_path: null }, bodyValid: true });
  await call("POST", `${P}/projects`, 409, { json: { name: "conformance" }, bodyValid: true });
  await call("POST", `${P}/projects`, 422, { json: { name: "" }, bodyValid: false });
  await call("POST", `${P}/projects`, 422, { json: { name: "x", colour: "red" }, bodyValid: false });
  await call("POST", `${P}/projects`, 400, { raw: '{"name": "broken"' });
  await call("POST", `${P}/projects`, 400, { raw: '{"name":"wrong type"}', contentType: "text/plain" });
  const projects = await call("GET", `${P}/projects`, 200);
  expect(projects.json?.items?.length === 2, "expected 2 projects");
  await call("GET", `${P}/projects`, 422, { query: { limit: 5 } });
  await call("GET", "/api/v1/projects/{id}", 200, { path: `${P}/projects/conformance` });
  await call("GET", "/api/v1/projects/{id}", 200, { path: `${P}/projects/${project.id}` });
  await call("GET", "/api/v1/projects/{id}", 404, { path: `${P}/projects/${missing("prj")}` });

  // ---- plans ----
  const planRes = await call("POST", `${P}/plans`, 201, {
    json: {
      project: "conformance",
      title: "Conformance plan",
      description: "exercise every operation",
      objectives: ["document", "verify"],
      expected_outcome: "a matching OpenAPI document",
      priority: 7,
      estimated_hours: 1.5,
      tags: ["api", "openapi"],
      metadata: { owner: "tests", nested: { n: 1 } },
    },
    bodyValid: true,
  });
  const plan = planRes.json;
  expect(etagVersion(planRes) === plan.version, "POST /plans: ETag should carry the plan's version");
  await call("POST", `${P}/plans`, 201, { json: { title: "Via header" }, headers: { "X-DevStream-Project": "conformance" }, bodyValid: true });
  await call("POST", `${P}/plans`, 201, { json: { title: "Via query", status: "active" }, query: { project: "conformance" }, bodyValid: true });
  await call("POST", `${P}/plans`, 201, { json: { title: "In the default project" }, bodyValid: true });
  await call("POST", `${P}/plans`, 404, { json: { title: "Unknown project id", project: missing("prj") }, bodyValid: true });
  await call("POST", `${P}/plans`, 422, { json: { title: "Bad status", status: "completed" }, bodyValid: false });
  await call("POST", `${P}/plans`, 422, { json: { title: "Bad priority", priority: 11 }, bodyValid: false });
  await call("POST", `${P}/plans`, 422, { json: { description: "no title" }, bodyValid: false });
  await call("POST", `${P}/plans`, 422, { json: { title: "Bad metadata", metadata: [1, 2] }, bodyValid: false });
  await call("POST", `${P}/plans`, 422, { json: ["not", "an", "object"], bodyValid: false });
  await call("POST", `${P}/plans`, 422, { json: { title: "t" }, query: { colour: "red" } });

  const page1 = await call("GET", `${P}/plans`, 200, { query: { project: "conformance", limit: 2 } });
  expect(page1.json?.items?.length === 2 && typeof page1.json?.next_cursor === "string", "plans page 1 should have 2 items and a cursor");
  const page2 = await call("GET", `${P}/plans`, 200, { query: { project: "conformance", limit: 2, cursor: page1.json?.next_cursor } });
  expect(page2.json?.items?.length === 1 && page2.json?.next_cursor === null, "plans page 2 should have 1 item and no cursor");
  await call("GET", `${P}/plans`, 200, { query: { status: "active" }, headers: { "X-DevStream-Project": "conformance" } });
  await call("GET", `${P}/plans`, 200);
  await call("GET", `${P}/plans`, 422, { query: { limit: 0 } });
  await call("GET", `${P}/plans`, 422, { query: { limit: "many" } });
  await call("GET", `${P}/plans`, 422, { query: { status: "bogus" } });
  await call("GET", `${P}/plans`, 422, { query: { cursor: "not-a-cursor" } });
  await call("GET", `${P}/plans`, 404, { query: { project: "no-such-project" } });
  await call("GET", `${P}/plans`, 400, { path: `${P}/plans?status=%zz` });

  const planPath = `${P}/plans/${plan.id}`;
  const gotPlan = await call("GET", "/api/v1/plans/{id}", 200, { path: planPath });
  expect(gotPlan.json?.progress?.total === 0, "a new plan has no tasks");
  await call("GET", "/api/v1/plans/{id}", 404, { path: `${P}/plans/${missing("pln")}` });
  await call("GET", "/api/v1/plans/{id}", 422, { path: planPath, query: { verbose: 1 } });

  const patched = await call("PATCH", "/api/v1/plans/{id}", 200, {
    path: planPath,
    headers: { "If-Match": `"${plan.version}"` },
    json: { description: "patched", estimated_hours: null, actual_hours: 0.25, status: "active" },
    bodyValid: true,
  });
  expect(patched.json?.status === "active" && patched.json?.estimated_hours === null, "PATCH plan did not apply");
  await call("PATCH", "/api/v1/plans/{id}", 200, { path: planPath, json: { tags: ["x"], version: patched.json.version }, bodyValid: true });
  const stalePlan = await call("PATCH", "/api/v1/plans/{id}", 412, { path: planPath, headers: { "If-Match": '"1"' }, json: { title: "stale" }, bodyValid: true });
  expect(typeof stalePlan.json?.current_version === "number", "412 should carry current_version");
  await call("PATCH", "/api/v1/plans/{id}", 400, { path: planPath, headers: { "If-Match": "abc" }, json: { title: "bad if-match" } });
  await call("PATCH", "/api/v1/plans/{id}", 422, { path: planPath, headers: { "If-Match": '"2"' }, json: { version: 3 }, bodyValid: true });
  const illegalPlan = await call("PATCH", "/api/v1/plans/{id}", 409, { path: planPath, json: { status: "draft" }, bodyValid: true });
  expect(Array.isArray(illegalPlan.json?.allowed), "409 on a plan transition should list allowed");
  await call("PATCH", "/api/v1/plans/{id}", 422, { path: planPath, json: { status: "finished" }, bodyValid: false });
  await call("PATCH", "/api/v1/plans/{id}", 422, { path: planPath, json: { owner: "me" }, bodyValid: false });
  await call("PATCH", "/api/v1/plans/{id}", 404, { path: `${P}/plans/${missing("pln")}`, json: { title: "x" }, bodyValid: true });
  await call("PATCH", "/api/v1/plans/{id}", 400, { path: planPath, raw: "" });

  // ---- phases ----
  const phasesPath = `${P}/plans/${plan.id}/phases`;
  const p1 = (await call("POST", "/api/v1/plans/{id}/phases", 201, { path: phasesPath, json: { name: "Build", description: "first", estimated_minutes: 30, completion_criteria: "tests pass" }, bodyValid: true })).json;
  const p2Res = await call("POST", "/api/v1/plans/{id}/phases", 201, { path: phasesPath, json: { name: "Ship", sequence_order: 5, depends_on: [p1.id] }, bodyValid: true });
  const p2 = p2Res.json;
  const p3 = (await call("POST", "/api/v1/plans/{id}/phases", 201, { path: phasesPath, json: { name: "Scrap" }, bodyValid: true })).json;
  await call("POST", "/api/v1/plans/{id}/phases", 404, { path: `${P}/plans/${missing("pln")}/phases`, json: { name: "x" }, bodyValid: true });
  await call("POST", "/api/v1/plans/{id}/phases", 422, { path: phasesPath, json: { name: "x", depends_on: [missing("phs")] }, bodyValid: true });
  await call("POST", "/api/v1/plans/{id}/phases", 422, { path: phasesPath, json: { name: 5 }, bodyValid: false });
  await call("POST", "/api/v1/plans/{id}/phases", 422, { path: phasesPath, json: { name: "x", depends_on: ["not-an-id"] }, bodyValid: false });
  await call("POST", "/api/v1/plans/{id}/phases", 422, { path: phasesPath, json: { name: "x", depends_on: [p1.id, p1.id] }, bodyValid: false });

  const phases = await call("GET", "/api/v1/plans/{id}/phases", 200, { path: phasesPath });
  expect(phases.json?.items?.length === 3, "expected 3 phases");
  await call("GET", "/api/v1/plans/{id}/phases", 404, { path: `${P}/plans/${missing("pln")}/phases` });
  await call("GET", "/api/v1/phases/{id}", 200, { path: `${P}/phases/${p2.id}` });
  await call("GET", "/api/v1/phases/{id}", 404, { path: `${P}/phases/${missing("phs")}` });
  const cyc = await call("PATCH", "/api/v1/phases/{id}", 409, { path: `${P}/phases/${p1.id}`, json: { depends_on: [p2.id] }, bodyValid: true });
  expect(Array.isArray(cyc.json?.cycle), "409 on a phase cycle should carry cycle");
  await call("PATCH", "/api/v1/phases/{id}", 422, { path: `${P}/phases/${p1.id}`, json: { depends_on: [p1.id] }, bodyValid: true });
  const p1v = (await call("GET", "/api/v1/phases/{id}", 200, { path: `${P}/phases/${p1.id}` })).json.version;
  await call("PATCH", "/api/v1/phases/{id}", 200, { path: `${P}/phases/${p1.id}`, headers: { "If-Match": `W/"${p1v}"` }, json: { description: "patched", sequence_order: 1, depends_on: [] }, bodyValid: true });
  await call("PATCH", "/api/v1/phases/{id}", 412, { path: `${P}/phases/${p1.id}`, headers: { "If-Match": `${p1v}` }, json: { name: "stale" }, bodyValid: true });
  await call("PATCH", "/api/v1/phases/{id}", 422, { path: `${P}/phases/${p1.id}`, json: { status: "active" }, bodyValid: false });
  await call("PATCH", "/api/v1/phases/{id}", 404, { path: `${P}/phases/${missing("phs")}`, json: { name: "x" }, bodyValid: true });
  await call("PATCH", "/api/v1/phases/{id}", 400, { path: `${P}/phases/${p1.id}`, raw: "{name:" });

  // ---- tasks ----
  const phaseTasks = `${P}/phases/${p1.id}/tasks`;
  const aRes = await call("POST", "/api/v1/phases/{id}/tasks", 201, {
    path: phaseTasks,
    json: { title: "Schema", task_type: "coding", priority: 6, estimated_minutes: 4, acceptance_criteria: ["migrates"], input_files: ["a.sql"], output_files: ["b.sql"], notes: "n", max_retries: 1, max_context_tokens: 1000, assigned_agent: "claude" },
    bodyValid: true,
  });
  const a = aRes.json;
  expect(etagVersion(aRes) === a.version, "POST task: ETag should carry the task's version");
  const b = (await call("POST", `${P}/tasks`, 201, { json: { phase_id: p1.id, title: "Endpoint", depends_on: [a.id] }, bodyValid: true })).json;
  const c = (await call("POST", "/api/v1/phases/{id}/tasks", 201, { path: phaseTasks, json: { phase_id: p1.id, title: "Docs", task_type: "documentation", priority: 9, depends_on: [{ id: a.id, kind: "soft" }] }, bodyValid: true })).json;
  const d = (await call("POST", `${P}/tasks`, 201, { json: { phase_id: p2.id, title: "Release", max_duration_minutes: 5, estimated_minutes: 5 }, bodyValid: true })).json;
  const e = (await call("POST", `${P}/tasks`, 201, { json: { phase_id: p3.id, title: "To delete" }, bodyValid: true })).json;
  // A task of phase Build that depends on a task of phase Ship (which depends on Build): a cycle.
  await call("POST", "/api/v1/phases/{id}/tasks", 409, { path: phaseTasks, json: { title: "Cyclic", depends_on: [d.id] }, bodyValid: true });
  await call("POST", `${P}/tasks`, 422, { json: { title: "No phase" }, bodyValid: true });
  await call("POST", `${P}/tasks`, 422, { json: { phase_id: p1.id, title: "Too long", estimated_minutes: 11 }, bodyValid: false });
  await call("POST", `${P}/tasks`, 422, { json: { phase_id: p1.id, title: "Bad type", task_type: "dancing" }, bodyValid: false });
  await call("POST", `${P}/tasks`, 422, { json: { phase_id: p1.id, title: "Bad dep", depends_on: [{ id: a.id, kind: "hard" }] }, bodyValid: false });
  await call("POST", `${P}/tasks`, 422, { json: { phase_id: p1.id, title: "Missing dep", depends_on: [missing("tsk")] }, bodyValid: true });
  await call("POST", `${P}/tasks`, 404, { json: { phase_id: missing("phs"), title: "Unknown phase" }, bodyValid: true });
  await call("POST", "/api/v1/phases/{id}/tasks", 404, { path: `${P}/phases/${missing("phs")}/tasks`, json: { title: "x" }, bodyValid: true });
  await call("POST", "/api/v1/phases/{id}/tasks", 422, { path: phaseTasks, json: { title: "Other phase", phase_id: p2.id }, bodyValid: true });
  await call("POST", "/api/v1/phases/{id}/tasks", 400, { path: phaseTasks, raw: "[" });

  const tp1 = await call("GET", "/api/v1/phases/{id}/tasks", 200, { path: phaseTasks, query: { limit: 2 } });
  expect(tp1.json?.items?.length === 2 && typeof tp1.json?.next_cursor === "string", "phase tasks page 1 should have a cursor");
  const tp2 = await call("GET", "/api/v1/phases/{id}/tasks", 200, { path: phaseTasks, query: { limit: 2, cursor: tp1.json?.next_cursor } });
  expect(tp2.json?.items?.length === 1 && tp2.json?.next_cursor === null, "phase tasks page 2 should be the last");
  await call("GET", "/api/v1/phases/{id}/tasks", 404, { path: `${P}/phases/${missing("phs")}/tasks` });
  await call("GET", "/api/v1/phases/{id}/tasks", 422, { path: phaseTasks, query: { limit: 501 } });

  await call("GET", `${P}/tasks`, 200, { query: { plan_id: plan.id, status: "pending", task_type: "coding", priority_min: 5, assigned_agent: "claude", limit: 10 } });
  await call("GET", `${P}/tasks`, 200, { query: { project: "conformance", phase_id: p1.id } });
  await call("GET", `${P}/tasks`, 200, { headers: { "X-DevStream-Project": project.id } });
  await call("GET", `${P}/tasks`, 200);
  await call("GET", `${P}/tasks`, 422, { query: { task_type: "dancing" } });
  await call("GET", `${P}/tasks`, 422, { query: { priority_min: 11 } });
  await call("GET", `${P}/tasks`, 422, { path: `${P}/tasks?status=pending&status=active` });
  await call("GET", `${P}/tasks`, 404, { query: { plan_id: missing("pln") } });
  await call("GET", `${P}/tasks`, 404, { query: { phase_id: missing("phs") } });

  const ready = await call("GET", `${P}/tasks/ready`, 200, { query: { plan_id: plan.id, limit: 10 } });
  const readyIds = (ready.json?.items ?? []).map((t) => t.id);
  expect(readyIds.includes(a.id) && !readyIds.includes(b.id), "ready list: a is ready, b is not");
  expect(readyIds.indexOf(a.id) < readyIds.indexOf(c.id), "ready list: soft prerequisite a comes before c");
  await call("GET", `${P}/tasks/ready`, 200, { headers: { "X-DevStream-Project": "conformance" } });
  await call("GET", `${P}/tasks/ready`, 200, { query: { project: "second" } });
  await call("GET", `${P}/tasks/ready`, 404, { query: { plan_id: missing("pln") } });
  await call("GET", `${P}/tasks/ready`, 404, { query: { project: "nope" } });
  await call("GET", `${P}/tasks/ready`, 422, { query: { status: "pending" } });

  const taskPath = (t) => `${P}/tasks/${t.id}`;
  await call("GET", "/api/v1/tasks/{id}", 200, { path: taskPath(a) });
  await call("GET", "/api/v1/tasks/{id}", 404, { path: `${P}/tasks/${missing("tsk")}` });

  // ---- transitions ----
  const tr = (t) => `${P}/tasks/${t.id}/transition`;
  const unmet = await call("POST", "/api/v1/tasks/{id}/transition", 409, { path: tr(b), json: { to: "active" }, bodyValid: true });
  expect(Array.isArray(unmet.json?.unmet) && unmet.json.unmet.includes(a.id), "409 unmet should list a");
  const illegal = await call("POST", "/api/v1/tasks/{id}/transition", 409, { path: tr(a), json: { to: "completed" }, bodyValid: true });
  expect(illegal.json?.from === "pending" && illegal.json?.to === "completed" && Array.isArray(illegal.json?.allowed), "409 illegal transition should carry from/to/allowed");
  await call("POST", "/api/v1/tasks/{id}/transition", 422, { path: tr(a), json: { to: "done" }, bodyValid: false });
  await call("POST", "/api/v1/tasks/{id}/transition", 422, { path: tr(a), json: { note: "no target" }, bodyValid: false });
  await call("POST", "/api/v1/tasks/{id}/transition", 412, { path: tr(a), headers: { "If-Match": '"99"' }, json: { to: "active" }, bodyValid: true });
  await call("POST", "/api/v1/tasks/{id}/transition", 404, { path: `${P}/tasks/${missing("tsk")}/transition`, json: { to: "active" }, bodyValid: true });
  await call("POST", "/api/v1/tasks/{id}/transition", 400, { path: tr(a), raw: "nope" });
  const started = await call("POST", "/api/v1/tasks/{id}/transition", 200, { path: tr(a), headers: { "X-DevStream-Agent": "conformance-agent" }, json: { to: "active", note: "go" }, bodyValid: true });
  expect(started.json?.status === "active" && started.json?.started_at, "a should be active");
  const done = await call("POST", "/api/v1/tasks/{id}/transition", 200, { path: tr(a), headers: { "If-Match": `"${started.json.version}"` }, json: { to: "completed", context_tokens_used: 1200, actor: "tester" }, bodyValid: true });
  expect(done.json?.status === "completed" && done.json?.context_tokens_used === 1200, "a should be completed");
  // Exhausted retries: e fails twice with max_retries 0.
  await call("PATCH", "/api/v1/tasks/{id}", 200, { path: taskPath(e), json: { max_retries: 0 }, bodyValid: true });
  await call("POST", "/api/v1/tasks/{id}/transition", 200, { path: tr(e), json: { to: "active" }, bodyValid: true });
  await call("POST", "/api/v1/tasks/{id}/transition", 200, { path: tr(e), json: { to: "failed", note: "broke" }, bodyValid: true });
  const exhausted = await call("POST", "/api/v1/tasks/{id}/transition", 409, { path: tr(e), json: { to: "pending" }, bodyValid: true });
  expect(exhausted.json?.retry_count === 0 && exhausted.json?.max_retries === 0, "409 exhausted retries should carry retry_count/max_retries");

  // ---- dependencies ----
  const deps = (t) => `${P}/tasks/${t.id}/dependencies`;
  const cycle = await call("POST", "/api/v1/tasks/{id}/dependencies", 409, { path: deps(a), json: { depends_on: b.id }, bodyValid: true });
  expect(Array.isArray(cycle.json?.cycle), "409 cycle should carry cycle");
  await call("POST", "/api/v1/tasks/{id}/dependencies", 409, { path: deps(a), json: { depends_on: a.id }, bodyValid: true });
  const added = await call("POST", "/api/v1/tasks/{id}/dependencies", 200, { path: deps(b), json: { depends_on: c.id, kind: "soft" }, bodyValid: true });
  expect(added.json?.depends_on?.some((x) => x.id === c.id && x.kind === "soft"), "b should depend softly on c");
  await call("POST", "/api/v1/tasks/{id}/dependencies", 200, { path: deps(b), json: { depends_on: { id: c.id, kind: "blocking" } }, bodyValid: true });
  await call("POST", "/api/v1/tasks/{id}/dependencies", 422, { path: deps(b), json: { depends_on: missing("tsk") }, bodyValid: true });
  await call("POST", "/api/v1/tasks/{id}/dependencies", 422, { path: deps(b), json: { kind: "soft" }, bodyValid: false });
  await call("POST", "/api/v1/tasks/{id}/dependencies", 422, { path: deps(b), json: { depends_on: 42 }, bodyValid: false });
  await call("POST", "/api/v1/tasks/{id}/dependencies", 404, { path: `${P}/tasks/${missing("tsk")}/dependencies`, json: { depends_on: a.id }, bodyValid: true });
  await call("POST", "/api/v1/tasks/{id}/dependencies", 400, { path: deps(b), raw: "{}", contentType: "application/xml" });
  await call("DELETE", "/api/v1/tasks/{id}/dependencies/{dep}", 200, { path: `${deps(b)}/${c.id}` });
  await call("DELETE", "/api/v1/tasks/{id}/dependencies/{dep}", 404, { path: `${deps(b)}/${c.id}` });
  await call("DELETE", "/api/v1/tasks/{id}/dependencies/{dep}", 404, { path: `${P}/tasks/${missing("tsk")}/dependencies/${a.id}` });

  // ---- graph and events ----
  const graph = await call("GET", "/api/v1/plans/{id}/graph", 200, { path: `${planPath}/graph` });
  expect(graph.json?.nodes?.length === 5 && graph.json?.edges?.length >= 2, "graph should have 5 nodes and the dependency edges");
  await call("GET", "/api/v1/plans/{id}/graph", 404, { path: `${P}/plans/${missing("pln")}/graph` });
  const events = await call("GET", "/api/v1/tasks/{id}/events", 200, { path: `${taskPath(a)}/events` });
  expect(events.json?.items?.length === 3 && events.json.items[0].from === null, "a should have created/active/completed events");
  await call("GET", "/api/v1/tasks/{id}/events", 404, { path: `${P}/tasks/${missing("tsk")}/events` });

  // ---- task PATCH ----
  const bNow = (await call("GET", "/api/v1/tasks/{id}", 200, { path: taskPath(b) })).json;
  await call("PATCH", "/api/v1/tasks/{id}", 200, { path: taskPath(b), headers: { "If-Match": `"${bNow.version}"` }, json: { notes: "patched", assigned_agent: null, priority: 3, input_files: ["x.cpp"] }, bodyValid: true });
  await call("PATCH", "/api/v1/tasks/{id}", 412, { path: taskPath(b), headers: { "If-Match": `"${bNow.version}"` }, json: { notes: "stale" }, bodyValid: true });
  await call("PATCH", "/api/v1/tasks/{id}", 422, { path: taskPath(b), json: { status: "active" }, bodyValid: false });
  await call("PATCH", "/api/v1/tasks/{id}", 422, { path: taskPath(b), json: { depends_on: [] }, bodyValid: false });
  await call("PATCH", "/api/v1/tasks/{id}", 422, { path: taskPath(d), json: { estimated_minutes: 6 }, bodyValid: true });
  await call("PATCH", "/api/v1/tasks/{id}", 404, { path: `${P}/tasks/${missing("tsk")}`, json: { notes: "x" }, bodyValid: true });
  await call("PATCH", "/api/v1/tasks/{id}", 400, { path: taskPath(b), raw: "{" });

  // ---- 413 ----
  await call("POST", `${P}/projects`, 413, { raw: JSON.stringify({ name: "big", root_path: "x".repeat(1_200_000) }) });

  // ---- deletes ----
  await call("DELETE", "/api/v1/tasks/{id}", 412, { path: taskPath(e), headers: { "If-Match": '"1"' } });
  await call("DELETE", "/api/v1/tasks/{id}", 400, { path: taskPath(e), headers: { "If-Match": "latest" } });
  await call("DELETE", "/api/v1/tasks/{id}", 204, { path: taskPath(e) });
  await call("DELETE", "/api/v1/tasks/{id}", 404, { path: taskPath(e) });
  await call("DELETE", "/api/v1/tasks/{id}", 422, { path: taskPath(d), query: { force: 1 } });
  const p3v = (await call("GET", "/api/v1/phases/{id}", 200, { path: `${P}/phases/${p3.id}` })).json.version;
  await call("DELETE", "/api/v1/phases/{id}", 412, { path: `${P}/phases/${p3.id}`, headers: { "If-Match": `"${p3v + 1}"` } });
  await call("DELETE", "/api/v1/phases/{id}", 204, { path: `${P}/phases/${p3.id}`, headers: { "If-Match": `"${p3v}"` } });
  await call("DELETE", "/api/v1/phases/{id}", 404, { path: `${P}/phases/${p3.id}` });
  const other = (await call("POST", `${P}/plans`, 201, { json: { title: "Doomed", project: "second" }, bodyValid: true })).json;
  await call("DELETE", "/api/v1/plans/{id}", 412, { path: `${P}/plans/${other.id}`, headers: { "If-Match": '"7"' } });
  await call("DELETE", "/api/v1/plans/{id}", 204, { path: `${P}/plans/${other.id}`, headers: { "If-Match": `"${other.version}"` } });
  await call("DELETE", "/api/v1/plans/{id}", 404, { path: `${P}/plans/${other.id}` });

  // ---- memories, search and context ----
  await memoryScenario({ P, project, plan, phase: p1, task: a });

  // ---- leases, jobs and sessions ----
  await engineScenario({ P, task: a });

  // ---- hooks run in the server ----
  await hookScenario({ P });

  // ---- the MCP transport ----
  await mcpScenario();

  // ---- after all that, still healthy, and the metrics saw it ----
  await call("GET", "/health", 200);
  const scraped = await call("GET", "/metrics", 200);
  expect(/devstream_http_requests_total\{method="POST",route="\/api\/v1\/tasks\/claim",status="200"\} [1-9]/.test(scraped.text ?? ""), "/metrics counts the claims made");
}

// The memory routes (src/api/memory_routes.cpp): store, batch, list, get,
// patch, forget, delete, stats, search and context, with their documented
// errors. `project`, `plan`, `phase` and `task` come from the task scenario
// (memories may link to them).
async function memoryScenario({ P, project, plan, phase, task }) {
  const M = `${P}/memories`;
  const MQ = { project: "conformance" };
  const MH = { "X-DevStream-Project": "conformance" };
  const memPath = (m) => `${M}/${typeof m === "object" ? m.id : m}`;
  const ids = (r) => (r.json?.items ?? r.json?.results ?? []).map((m) => m.id);
  const bigBody = JSON.stringify({ content: "x".repeat(1_200_000), content_type: "output" });
  const notUtf8 = { "X-DevStream-Project": "caf\u00e9" }; // fetch sends U+00E9 as the single byte 0xE9
  const longAgent = { "X-DevStream-Agent": "a".repeat(201) };

  // ---- the project before any memory is stored ----
  // Completing task a (the task scenario) stored one memory linked to it.
  const pre = (await call("GET", M, 200, { query: { ...MQ, include_archived: "true" } })).json?.items ?? [];
  const completion = pre[0];
  expect(pre.length === 1 && completion?.source === "engine" && completion?.content_type === "output" && completion?.task_id === task.id && completion?.phase_id === phase.id && completion?.plan_id === plan.id, `completing a task should store one engine memory linked to it: ${JSON.stringify(pre).slice(0, 500)}`);
  const stats0 = await call("GET", `${M}/stats`, 200, { query: MQ });
  expect(stats0.json?.memories === 1 && stats0.json?.vectors <= 1 && stats0.json?.indexed <= 1, "a project with only the completion memory should count one memory");
  await call("GET", `${M}/stats`, 200);
  const empty = await call("GET", M, 200, { query: MQ });
  expect(isDeepStrictEqual(ids(empty), [completion?.id]) && empty.json?.next_cursor === null, "before any store the project should list only the completion memory");

  // ---- store ----
  const C1 = "Build with CMake presets: run cmake --preset asan, then ninja in build/asan.";
  const m1Res = await call("POST", M, 201, {
    query: MQ,
    json: { content: C1, content_type: "decision", content_format: "markdown", keywords: ["cmake", "build"], relevance_score: 0.8, pinned: true, plan_id: plan.id, phase_id: phase.id, task_id: task.id, source: "cli" },
    bodyValid: true,
  });
  const m1 = m1Res.json;
  expect(m1?.deduplicated === false && m1?.redactions === 0 && m1?.superseded?.length === 0, "a new memory is not deduplicated and supersedes nothing");
  expect(m1?.project_id === project.id && m1?.plan_id === plan.id && m1?.phase_id === phase.id && m1?.task_id === task.id, "the memory should keep its project and links");
  expect(m1?.source === "cli" && m1?.pinned === true && m1?.relevance_score === 0.8 && m1?.content_format === "markdown", "the memory should keep source, pinned, relevance_score and content_format");
  const dup = await call("POST", M, 200, { headers: MH, json: { content: C1, content_type: "learning", keywords: ["other"] }, bodyValid: true });
  expect(dup.json?.id === m1.id && dup.json?.deduplicated === true && dup.json?.content_type === "decision", "identical content should return the existing memory (200, deduplicated)");

  const m2 = (await call("POST", M, 201, {
    json: { project: "conformance", content: "def connect():\n    password = hunter2hunter2\n    return db.open()", content_type: "code", content_format: "python", file_path: "src/db.py", keywords: ["database", "connect"] },
    bodyValid: true,
  })).json;
  expect(m2?.redactions >= 1 && !m2?.content?.includes("hunter2") && m2?.content?.includes("[REDACTED]"), "the password should be redacted");
  const m3 = (await call("POST", M, 201, {
    json: { project: "conformance", content: "def connect(timeout=5):\n    return db.open(timeout)", content_type: "code", content_format: "python", file_path: "src/db.py" },
    bodyValid: true,
  })).json;
  expect(isDeepStrictEqual(m3?.superseded, [m2.id]), "a new snapshot of src/db.py should supersede the old one");
  const m4 = (await call("POST", M, 201, {
    query: MQ,
    json: { content: "Error: the linker failed with an undefined reference to sqlite3_open when building without -lsqlite3.", content_type: "error", project: null, plan_id: null, phase_id: null, task_id: null, session_id: null, content_format: null, source: null, file_path: null, keywords: null, relevance_score: null, pinned: null },
    bodyValid: true,
  })).json;
  expect(m4?.project_id === project.id && m4?.content_format === "text" && m4?.source === "api" && m4?.relevance_score === 0.5 && m4?.pinned === false && m4?.keywords?.length === 0, "null fields should take their defaults");
  const m5 = (await call("POST", M, 201, { query: MQ, json: { content: "Documentation lives in docs/; the architecture overview explains the memory index.", content_type: "documentation", keywords: ["docs"] }, bodyValid: true })).json;
  const long = (await call("POST", M, 201, { query: MQ, json: { content: `Truncation test. ${"A long learning about context budgets. ".repeat(60)}`, content_type: "learning" }, bodyValid: true })).json;
  await call("POST", M, 201, { json: { project: "memory-limits", content: "y".repeat(500_000), content_type: "output" }, bodyValid: true });

  await call("POST", M, 422, { query: MQ, json: { content: " \n\t \r\n", content_type: "learning" }, bodyValid: false });
  await call("POST", M, 422, { query: MQ, json: { content: "x", content_type: "idea" }, bodyValid: false });
  await call("POST", M, 422, { query: MQ, json: { content: "x", content_type: "learning", tags: ["a"] }, bodyValid: false });
  await call("POST", M, 422, { query: MQ, json: { content: "x" }, bodyValid: false });
  await call("POST", M, 422, { query: MQ, json: { content: null, content_type: "learning" }, bodyValid: false });
  await call("POST", M, 422, { query: MQ, json: { content: 42, content_type: "learning" }, bodyValid: false });
  await call("POST", M, 422, { query: MQ, json: { content: "x", content_type: "learning", content_format: "c++ 17" }, bodyValid: false });
  await call("POST", M, 422, { query: MQ, json: { content: "x", content_type: "learning", keywords: Array.from({ length: 51 }, (_, i) => `k${i}`) }, bodyValid: false });
  await call("POST", M, 422, { query: MQ, json: { content: "x", content_type: "learning", keywords: ["k".repeat(101)] }, bodyValid: false });
  await call("POST", M, 422, { query: MQ, json: { content: "x", content_type: "learning", keywords: [""] }, bodyValid: false });
  await call("POST", M, 422, { query: MQ, json: { content: "x", content_type: "learning", relevance_score: 1.5 }, bodyValid: false });
  await call("POST", M, 422, { query: MQ, json: { content: "x", content_type: "learning", source: "robot" }, bodyValid: false });
  await call("POST", M, 422, { query: MQ, json: { content: "x", content_type: "learning", pinned: "yes" }, bodyValid: false });
  await call("POST", M, 422, { query: MQ, json: { content: "x", content_type: "learning", plan_id: "pln_bad" }, bodyValid: false });
  await call("POST", M, 422, { query: MQ, json: { content: "x", content_type: "learning", file_path: "" }, bodyValid: false });
  await call("POST", M, 422, { query: MQ, json: { content: "z".repeat(500_001), content_type: "output" }, bodyValid: false });
  await call("POST", M, 422, { query: MQ, json: [{ content: "x", content_type: "learning" }], bodyValid: false });
  // Valid by the schema, rejected by the server's state: unknown links, an invalid new project name.
  await call("POST", M, 422, { query: MQ, json: { content: "Links to a plan that does not exist.", content_type: "learning", plan_id: missing("pln") }, bodyValid: true });
  await call("POST", M, 422, { query: MQ, json: { content: "Links to a task that does not exist.", content_type: "learning", task_id: missing("tsk") }, bodyValid: true });
  await call("POST", M, 422, { query: MQ, json: { content: "Links to a session that does not exist.", content_type: "learning", session_id: "no-such-session" }, bodyValid: true });
  await call("POST", M, 422, { json: { project: "p".repeat(150), content: "Too long a project name.", content_type: "learning" }, bodyValid: true });
  await call("POST", M, 404, { query: { project: missing("prj") }, json: { content: "Unknown project id.", content_type: "learning" }, bodyValid: true });
  await call("POST", M, 422, { query: { tag: "x" }, json: { content: "x", content_type: "learning" } });
  await call("POST", M, 422, { headers: longAgent, json: { content: "x", content_type: "learning" } });
  await call("POST", M, 400, { headers: notUtf8, json: { content: "x", content_type: "learning" } });
  await call("POST", M, 400, { raw: '{"content": "x", ' });
  await call("POST", M, 400, { raw: '{"content":"x","content_type":"learning"}', contentType: "text/plain" });
  await call("POST", M, 400, { raw: "" });
  await call("POST", M, 413, { raw: bigBody });

  // ---- batch ----
  const SAME = "Batch: the same text twice in one batch.";
  const batch = await call("POST", `${M}/batch`, 201, {
    query: MQ,
    json: {
      memories: [
        { content: "Batch: the HTTP server drains connections on SIGTERM.", content_type: "learning", keywords: ["shutdown"] },
        { content: C1, content_type: "decision" },
        { content: SAME, content_type: "context", project: "conformance" },
        { content: SAME, content_type: "context" },
      ],
    },
    bodyValid: true,
  });
  const bi = batch.json?.items ?? [];
  expect(batch.json?.created === 2 && batch.json?.deduplicated === 2 && bi.length === 4, "batch: 2 created, 2 deduplicated");
  expect(bi[1]?.id === m1.id && bi[1]?.deduplicated && bi[3]?.id === bi[2]?.id && bi[3]?.deduplicated && !bi[0]?.deduplicated, "batch: duplicates should name the existing memories");
  const allDup = await call("POST", `${M}/batch`, 200, { headers: MH, json: { memories: [{ content: C1, content_type: "decision" }] }, bodyValid: true });
  expect(allDup.json?.created === 0 && allDup.json?.deduplicated === 1, "batch of duplicates: 200, nothing created");
  const LOST = "Batch: stored only if the whole batch is.";
  await call("POST", `${M}/batch`, 422, {
    query: MQ,
    json: { memories: [{ content: LOST, content_type: "learning" }, { content: "Batch: links an unknown task.", content_type: "learning", task_id: missing("tsk") }] },
    bodyValid: true,
  });
  const m6 = (await call("POST", M, 201, { query: MQ, json: { content: LOST, content_type: "learning" }, bodyValid: true })).json;
  expect(m6?.deduplicated === false, "a failed batch should store nothing");
  await call("POST", `${M}/batch`, 422, { query: MQ, json: { memories: [] }, bodyValid: false });
  await call("POST", `${M}/batch`, 422, { query: MQ, json: {}, bodyValid: false });
  await call("POST", `${M}/batch`, 422, { query: MQ, json: { memories: null }, bodyValid: false });
  await call("POST", `${M}/batch`, 422, { query: MQ, json: { memories: "x" }, bodyValid: false });
  await call("POST", `${M}/batch`, 422, { query: MQ, json: { memories: ["text"] }, bodyValid: false });
  await call("POST", `${M}/batch`, 422, { query: MQ, json: { memories: [{ content: "", content_type: "code" }] }, bodyValid: false });
  await call("POST", `${M}/batch`, 422, { query: MQ, json: { memories: [{ content: "x", content_type: "code", colour: "red" }] }, bodyValid: false });
  await call("POST", `${M}/batch`, 422, { query: MQ, json: { memories: [{ content: "x", content_type: "code" }], project: "conformance" }, bodyValid: false });
  await call("POST", `${M}/batch`, 422, { query: MQ, json: { memories: Array.from({ length: 1001 }, (_, i) => ({ content: `item ${i}`, content_type: "output" })) }, bodyValid: false });
  await call("POST", `${M}/batch`, 422, { query: { limit: 1 }, json: { memories: [{ content: "x", content_type: "code" }] } });
  await call("POST", `${M}/batch`, 404, { query: { project: missing("prj") }, json: { memories: [{ content: "Unknown project id.", content_type: "code" }] }, bodyValid: true });
  await call("POST", `${M}/batch`, 400, { raw: "[" });
  await call("POST", `${M}/batch`, 400, { headers: notUtf8, json: { memories: [{ content: "x", content_type: "code" }] } });
  await call("POST", `${M}/batch`, 413, { raw: JSON.stringify({ memories: [JSON.parse(bigBody)] }) });

  // ---- list ----
  // Live: the completion memory, m1, m3, m4, m5, long, batch[0], batch[2], m6; m2 is superseded.
  const live = [completion.id, m1.id, m3.id, m4.id, m5.id, long.id, bi[0].id, bi[2].id, m6.id].sort((x, y) => y - x);
  const seen = [];
  let cursor;
  let pages = 0;
  do {
    const page = await call("GET", M, 200, { query: { ...MQ, limit: 3, ...(cursor ? { cursor } : {}) } });
    seen.push(...ids(page));
    cursor = page.json?.next_cursor;
    expect(cursor === null || ids(page).length === 3, "only the last page may be short");
  } while (cursor && ++pages < 10);
  expect(isDeepStrictEqual(seen, live), `paging through the list should give the live memories newest first: got ${seen}, want ${live}`);
  const all = await call("GET", M, 200, { query: { ...MQ, include_archived: "true", limit: 500 } });
  expect(ids(all).includes(m2.id) && ids(all).length === live.length + 1, "include_archived should add the superseded memory");
  const code = await call("GET", M, 200, { query: { ...MQ, content_type: "code" } });
  expect(isDeepStrictEqual(ids(code), [m3.id]), "content_type=code should list the current snapshot only");
  const codeAll = await call("GET", M, 200, { query: { ...MQ, content_type: "code", include_archived: "1", file_path: "src/db.py" } });
  expect(isDeepStrictEqual(ids(codeAll), [m3.id, m2.id]), "include_archived=1 should list both snapshots, newest first");
  expect(codeAll.json?.items?.[1]?.superseded_by === m3.id, "the old snapshot should be superseded by the new one");
  const linked = await call("GET", M, 200, { query: { ...MQ, plan_id: plan.id, phase_id: phase.id, task_id: task.id, include_archived: "false" } });
  expect(isDeepStrictEqual(ids(linked), [m1.id, completion.id]), "plan/phase/task filters should find the linked memory and the task's completion memory");
  const noSession = await call("GET", M, 200, { query: { ...MQ, session_id: "no-such-session", include_archived: "0" } });
  expect(noSession.json?.items?.length === 0, "an unknown session matches nothing");
  const viaHeader = await call("GET", M, 200, { headers: MH });
  expect(ids(viaHeader).length === live.length, "X-DevStream-Project should select the project");
  await call("GET", M, 422, { query: { plan_id: "not-a-plan-id" } });
  await call("GET", M, 422, { query: { ...MQ, content_type: "idea" } });
  await call("GET", M, 422, { query: { ...MQ, limit: 0 } });
  await call("GET", M, 422, { query: { ...MQ, limit: 501 } });
  await call("GET", M, 422, { query: { ...MQ, include_archived: "yes" } });
  await call("GET", M, 422, { query: { ...MQ, cursor: "garbage" } });
  await call("GET", M, 422, { query: { ...MQ, q: "cmake" } });
  await call("GET", M, 422, { path: `${M}?content_type=code&content_type=error` });
  await call("GET", M, 404, { query: { project: "no-such-project" } });
  await call("GET", M, 400, { headers: notUtf8 });

  // ---- get ----
  const got = await call("GET", "/api/v1/memories/{id}", 200, { path: memPath(m1) });
  expect(got.json?.content === C1 && got.json?.access_count === 0, "GET should return the memory without counting an access");
  await call("GET", "/api/v1/memories/{id}", 200, { path: memPath(m2) });
  for (const bad of ["999999", "abc", "0", "-1", "1.5", "99999999999999999999999", `${m1.id}x`]) {
    await call("GET", "/api/v1/memories/{id}", 404, { path: `${M}/${bad}` });
  }
  await call("GET", "/api/v1/memories/{id}", 422, { path: memPath(m1), query: { verbose: 1 } });
  await call("GET", "/api/v1/memories/{id}", 422, { path: memPath(m1), headers: longAgent });
  await call("GET", "/api/v1/memories/{id}", 400, { path: memPath(m1), headers: notUtf8 });

  // ---- patch ----
  const p4 = await call("PATCH", "/api/v1/memories/{id}", 200, { path: memPath(m4), json: { keywords: ["linker", "sqlite"], relevance_score: 0.3, pinned: true, content_format: null, content_type: null }, bodyValid: true });
  expect(isDeepStrictEqual(p4.json?.keywords, ["linker", "sqlite"]) && p4.json?.relevance_score === 0.3 && p4.json?.pinned === true && p4.json?.content_format === "text" && p4.json?.content_type === "error", "PATCH should change only the given fields");
  const p5 = await call("PATCH", "/api/v1/memories/{id}", 200, { path: memPath(m5), json: { content: "Documentation lives in docs/: architecture.md covers the memory index, search and context.", content_format: "markdown" }, bodyValid: true });
  expect(p5.json?.content_hash !== m5.content_hash && p5.json?.content_format === "markdown", "new content should get a new hash");
  await call("PATCH", "/api/v1/memories/{id}", 200, { path: memPath(m1), json: { content: C1 }, bodyValid: true });
  await call("PATCH", "/api/v1/memories/{id}", 200, { path: memPath(m1), json: {}, bodyValid: true });
  const clash = await call("PATCH", "/api/v1/memories/{id}", 409, { path: memPath(m5), json: { content: C1 }, bodyValid: true });
  expect(clash.json?.existing_id === m1.id, "409 should name the memory that has the content (existing_id)");
  await call("PATCH", "/api/v1/memories/{id}", 422, { path: memPath(m5), json: { content: "   " }, bodyValid: false });
  await call("PATCH", "/api/v1/memories/{id}", 422, { path: memPath(m5), json: { project: "second" }, bodyValid: false });
  await call("PATCH", "/api/v1/memories/{id}", 422, { path: memPath(m5), json: { file_path: "x" }, bodyValid: false });
  await call("PATCH", "/api/v1/memories/{id}", 422, { path: memPath(m5), json: { archived: "yes" }, bodyValid: false });
  await call("PATCH", "/api/v1/memories/{id}", 422, { path: memPath(m5), json: { content_type: "idea" }, bodyValid: false });
  await call("PATCH", "/api/v1/memories/{id}", 422, { path: memPath(m5), json: { relevance_score: -0.1 }, bodyValid: false });
  await call("PATCH", "/api/v1/memories/{id}", 422, { path: memPath(m5), json: { keywords: "docs" }, bodyValid: false });
  await call("PATCH", "/api/v1/memories/{id}", 422, { path: memPath(m5), json: ["content"], bodyValid: false });
  await call("PATCH", "/api/v1/memories/{id}", 422, { path: memPath(m5), query: { force: 1 }, json: { pinned: true } });
  await call("PATCH", "/api/v1/memories/{id}", 404, { path: `${M}/999999`, json: { pinned: true }, bodyValid: true });
  await call("PATCH", "/api/v1/memories/{id}", 404, { path: `${M}/abc`, json: { pinned: true }, bodyValid: true });
  await call("PATCH", "/api/v1/memories/{id}", 400, { path: memPath(m5), raw: "{" });
  await call("PATCH", "/api/v1/memories/{id}", 400, { path: memPath(m5), headers: notUtf8, json: { pinned: true } });
  await call("PATCH", "/api/v1/memories/{id}", 413, { path: memPath(m5), raw: bigBody });

  // ---- search ----
  const hybrid = await call("POST", `${P}/search`, 200, { json: { query: "cmake preset", project: "conformance" }, bodyValid: true });
  const h1 = hybrid.json?.results?.find((r) => r.id === m1.id);
  expect(hybrid.json?.results?.[0]?.id === m1.id && hybrid.json?.degraded === false, "hybrid search should rank the cmake memory first");
  expect(h1 && h1.keyword_rank === 1 && h1.vector_rank === 1 && typeof h1.bm25 === "number" && typeof h1.similarity === "number" && h1.access_count === 1 && h1.last_accessed_at !== null, "a hybrid hit should carry both ranks and count the access");
  const kw = await call("POST", `${P}/search`, 200, { query: MQ, json: { query: "connect database", mode: "keyword", content_types: ["code"], file_path: "src/db.py", include_archived: true, limit: 5 }, bodyValid: true });
  expect(isDeepStrictEqual(ids(kw).sort(), [m2.id, m3.id].sort()), "keyword search with include_archived should find both snapshots");
  expect((kw.json?.results ?? []).every((r) => r.vector_rank === null && r.similarity === null && r.keyword_rank >= 1 && typeof r.bm25 === "number"), "keyword hits have no vector side");
  const kwLive = await call("POST", `${P}/search`, 200, { query: MQ, json: { query: "connect", mode: "keyword", content_types: ["code", "error"] }, bodyValid: true });
  expect(isDeepStrictEqual(ids(kwLive), [m3.id]), "search should skip superseded memories by default");
  const vec = await call("POST", `${P}/search`, 200, { headers: MH, json: { query: "cmake presets for the asan build", mode: "vector", min_similarity: 0.05, content_types: ["decision", "learning"], limit: 100 }, bodyValid: true });
  expect(ids(vec).includes(m1.id) && (vec.json?.results ?? []).every((r) => r.keyword_rank === null && r.bm25 === null && r.vector_rank >= 1 && r.similarity >= 0.05), "vector hits have no keyword side and respect min_similarity");
  const filtered = await call("POST", `${P}/search`, 200, {
    json: { query: "build", project: "conformance", mode: "hybrid", weights: { keyword: 2, vector: 0.5 }, plan_id: plan.id, phase_id: phase.id, task_id: task.id, since: "2000-01-01T00:00:00Z", until: "2999-01-01T00:00:00+02:00", limit: 100, session_id: null },
    bodyValid: true,
  });
  expect(isDeepStrictEqual(ids(filtered), [m1.id]), "plan/phase/task and time filters should find the linked memory only");
  const future = await call("POST", `${P}/search`, 200, { query: MQ, json: { query: "cmake", since: "2999-01-01T00:00:00.000Z" }, bodyValid: true });
  expect(future.json?.results?.length === 0, "since in the future matches nothing");
  const bySession = await call("POST", `${P}/search`, 200, { query: MQ, json: { query: "cmake", session_id: "no-such-session", file_path: "nowhere" }, bodyValid: true });
  expect(bySession.json?.results?.length === 0, "an unknown session matches nothing");
  await call("POST", `${P}/search`, 200, { query: MQ, json: { query: "cmake", mode: null, weights: null, limit: null, content_types: null, min_similarity: null, include_archived: null, since: null, until: null }, bodyValid: true });
  await call("POST", `${P}/search`, 200, { query: MQ, json: { query: "cmake", weights: { keyword: null, vector: 3 }, content_types: [] }, bodyValid: true });
  await call("POST", `${P}/search`, 200, { json: { query: "anything at all" }, bodyValid: true });
  await call("POST", `${P}/search`, 422, { query: MQ, json: { query: "cmake", limit: 0 }, bodyValid: false });
  await call("POST", `${P}/search`, 422, { query: MQ, json: { query: "cmake", limit: 101 }, bodyValid: false });
  await call("POST", `${P}/search`, 422, { query: MQ, json: { query: "cmake", mode: "semantic" }, bodyValid: false });
  await call("POST", `${P}/search`, 422, { query: MQ, json: { query: "cmake", cursor: "abc" }, bodyValid: false });
  await call("POST", `${P}/search`, 422, { query: MQ, json: { query: "cmake", weights: { keyword: 11 } }, bodyValid: false });
  await call("POST", `${P}/search`, 422, { query: MQ, json: { query: "cmake", weights: { bm25: 1 } }, bodyValid: false });
  await call("POST", `${P}/search`, 422, { query: MQ, json: { query: "cmake", weights: "high" }, bodyValid: false });
  await call("POST", `${P}/search`, 422, { query: MQ, json: { query: "cmake", min_similarity: 2 }, bodyValid: false });
  await call("POST", `${P}/search`, 422, { query: MQ, json: { query: "cmake", since: "yesterday" }, bodyValid: false });
  await call("POST", `${P}/search`, 422, { query: MQ, json: { query: "cmake", content_types: Array(8).fill("code") }, bodyValid: false });
  await call("POST", `${P}/search`, 422, { query: MQ, json: { query: "cmake", content_types: ["idea"] }, bodyValid: false });
  await call("POST", `${P}/search`, 422, { query: MQ, json: { query: "cmake", plan_id: "pln_bad" }, bodyValid: false });
  await call("POST", `${P}/search`, 422, { query: MQ, json: { query: "cmake", filters: {} }, bodyValid: false });
  await call("POST", `${P}/search`, 422, { query: MQ, json: { limit: 5 }, bodyValid: false });
  await call("POST", `${P}/search`, 422, { query: MQ, json: { query: "" }, bodyValid: false });
  await call("POST", `${P}/search`, 422, { query: MQ, json: "cmake", bodyValid: false });
  await call("POST", `${P}/search`, 422, { query: { ...MQ, limit: 5 }, json: { query: "cmake" } });
  await call("POST", `${P}/search`, 404, { json: { query: "cmake", project: "no-such-project" }, bodyValid: true });
  await call("POST", `${P}/search`, 404, { query: { project: missing("prj") }, json: { query: "cmake" }, bodyValid: true });
  await call("POST", `${P}/search`, 400, { raw: '{"query": "cmake"' });
  await call("POST", `${P}/search`, 400, { raw: '{"query":"cmake"}', contentType: "text/plain" });
  await call("POST", `${P}/search`, 400, { headers: notUtf8, json: { query: "cmake" } });
  await call("POST", `${P}/search`, 413, { raw: JSON.stringify({ query: "x".repeat(1_200_000) }) });

  // ---- context ----
  const ctx = await call("POST", `${P}/context`, 200, { json: { query: "cmake build linker documentation", project: "conformance", token_budget: 2000, diversity: true, content_types: null }, bodyValid: true });
  expect(ctx.json?.memory_ids?.includes(m1.id) && ctx.json?.tokens <= 2000 && ctx.json?.context?.includes(`## Memory ${m1.id} · decision`), "context should include the cmake memory");
  expect(ctx.json?.truncated === false && ctx.json?.degraded === false, "a 2000-token budget fits these memories");
  const cut = await call("POST", `${P}/context`, 200, { query: MQ, json: { query: "truncation", token_budget: 64, limit: 5 }, bodyValid: true });
  expect(cut.json?.truncated === true && cut.json?.tokens <= 64 && cut.json?.memory_ids?.[0] === long.id && cut.json?.context?.includes("…[truncated]"), "a long memory should be cut to the budget");
  const tiny = await call("POST", `${P}/context`, 200, { headers: MH, json: { query: "cmake", token_budget: 1 }, bodyValid: true });
  expect(tiny.json?.truncated === true && tiny.json?.memory_ids?.length === 0 && tiny.json?.tokens === 0 && tiny.json?.context === "", "a 1-token budget fits nothing");
  const none = await call("POST", `${P}/context`, 200, { query: MQ, json: { query: "cmake", content_types: ["output"], plan_id: plan.id, since: "2000-01-01T00:00:00Z", until: null, include_archived: false, diversity: null, token_budget: null }, bodyValid: true });
  expect(none.json?.memory_ids?.length === 0 && none.json?.truncated === false, "no match: empty context");
  await call("POST", `${P}/context`, 200, { json: { query: "anything at all" }, bodyValid: true });
  await call("POST", `${P}/context`, 422, { query: MQ, json: { query: "cmake", token_budget: 0 }, bodyValid: false });
  await call("POST", `${P}/context`, 422, { query: MQ, json: { query: "cmake", token_budget: 200_001 }, bodyValid: false });
  await call("POST", `${P}/context`, 422, { query: MQ, json: { query: "cmake", mode: "hybrid" }, bodyValid: false });
  await call("POST", `${P}/context`, 422, { query: MQ, json: { query: "cmake", cursor: "abc" }, bodyValid: false });
  await call("POST", `${P}/context`, 422, { query: MQ, json: { query: "cmake", limit: 101 }, bodyValid: false });
  await call("POST", `${P}/context`, 422, { query: MQ, json: { token_budget: 100 }, bodyValid: false });
  await call("POST", `${P}/context`, 422, { query: MQ, json: { query: "cmake", diversity: "yes" }, bodyValid: false });
  await call("POST", `${P}/context`, 422, { headers: longAgent, json: { query: "cmake" } });
  await call("POST", `${P}/context`, 404, { json: { query: "cmake", project: "no-such-project" }, bodyValid: true });
  await call("POST", `${P}/context`, 400, { raw: "nope" });
  await call("POST", `${P}/context`, 400, { headers: notUtf8, json: { query: "cmake" } });
  await call("POST", `${P}/context`, 413, { raw: JSON.stringify({ query: "x".repeat(1_200_000) }) });

  // ---- forget ----
  const forgotten = await call("POST", "/api/v1/memories/{id}/forget", 200, { path: `${memPath(m4)}/forget` });
  expect(forgotten.json?.archived === true && forgotten.json?.id === m4.id, "forget should archive");
  await call("POST", "/api/v1/memories/{id}/forget", 200, { path: `${memPath(m4)}/forget` });
  const afterForget = await call("GET", M, 200, { query: MQ });
  expect(!ids(afterForget).includes(m4.id), "a forgotten memory is not listed by default");
  const searchForgotten = await call("POST", `${P}/search`, 200, { query: MQ, json: { query: "linker sqlite3", mode: "keyword" }, bodyValid: true });
  expect(!ids(searchForgotten).includes(m4.id), "search skips forgotten memories");
  const searchArchived = await call("POST", `${P}/search`, 200, { query: MQ, json: { query: "linker sqlite3", mode: "keyword", include_archived: true }, bodyValid: true });
  expect(ids(searchArchived).includes(m4.id), "include_archived finds forgotten memories");
  const revived = await call("POST", M, 200, { query: MQ, json: { content: m4.content, content_type: "error" }, bodyValid: true });
  expect(revived.json?.id === m4.id && revived.json?.deduplicated === true && revived.json?.archived === false, "storing forgotten content again should revive it");
  await call("POST", "/api/v1/memories/{id}/forget", 200, { path: `${memPath(m5)}/forget` });
  const restored = await call("PATCH", "/api/v1/memories/{id}", 200, { path: memPath(m5), json: { archived: false }, bodyValid: true });
  expect(restored.json?.archived === false, "PATCH archived:false should restore");
  await call("POST", "/api/v1/memories/{id}/forget", 404, { path: `${M}/999999/forget` });
  await call("POST", "/api/v1/memories/{id}/forget", 404, { path: `${M}/abc/forget` });
  await call("POST", "/api/v1/memories/{id}/forget", 422, { path: `${memPath(m5)}/forget`, query: { now: 1 } });
  await call("POST", "/api/v1/memories/{id}/forget", 400, { path: `${memPath(m5)}/forget`, headers: notUtf8 });

  // ---- delete ----
  await call("DELETE", "/api/v1/memories/{id}", 204, { path: memPath(m3) });
  await call("DELETE", "/api/v1/memories/{id}", 404, { path: memPath(m3) });
  await call("GET", "/api/v1/memories/{id}", 404, { path: memPath(m3) });
  const m2Now = await call("GET", "/api/v1/memories/{id}", 200, { path: memPath(m2) });
  expect(m2Now.json?.superseded_by === null, "deleting the newer snapshot should make the older one current again");
  const codeNow = await call("GET", M, 200, { query: { ...MQ, content_type: "code" } });
  expect(isDeepStrictEqual(ids(codeNow), [m2.id]), "the older snapshot should be listed again");
  await call("DELETE", "/api/v1/memories/{id}", 404, { path: `${M}/abc` });
  await call("DELETE", "/api/v1/memories/{id}", 404, { path: `${M}/0` });
  await call("DELETE", "/api/v1/memories/{id}", 422, { path: memPath(m2), query: { force: 1 } });
  await call("DELETE", "/api/v1/memories/{id}", 400, { path: memPath(m2), headers: notUtf8 });

  // ---- stats ----
  const rows = (await call("GET", M, 200, { query: { ...MQ, include_archived: "true", limit: 500 } })).json?.items ?? [];
  const stats = await call("GET", `${M}/stats`, 200, { query: MQ });
  const st = stats.json ?? {};
  expect(st.memories === rows.length && st.archived === rows.filter((m) => m.archived).length && st.superseded === rows.filter((m) => m.superseded_by !== null).length, `stats should count the project's memories: ${JSON.stringify(st)}`);
  expect(st.vectors === st.memories && st.indexed === st.memories && st.dim > 0 && st.vector_bytes >= st.indexed * st.dim * 4, `every memory should have an indexed vector: ${JSON.stringify(st)}`);
  await call("GET", `${M}/stats`, 200, { headers: MH });
  await call("GET", `${M}/stats`, 404, { query: { project: "no-such-project" } });
  await call("GET", `${M}/stats`, 422, { query: { ...MQ, verbose: 1 } });
  await call("GET", `${M}/stats`, 422, { headers: longAgent });
  await call("GET", `${M}/stats`, 400, { headers: notUtf8 });
}

// The task-engine routes (src/api/engine_routes.cpp, and the lease rules of
// GET /tasks/{id} and the transition route): claiming tasks with leases,
// heartbeats, the durable job queue and work sessions. They run in their
// own project ("engine") so that the other scenarios' expectations hold; the
// server's embedded worker runs the jobs meanwhile. `task` is the completed
// task of the task scenario.
async function engineScenario({ P, task }) {
  const EQ = { project: "engine" };
  const EH = { "X-DevStream-Project": "engine" };
  const A1 = { "X-DevStream-Agent": "agent-one" };
  const A2 = { "X-DevStream-Agent": "agent-two" };
  const taskPath = (t) => `${P}/tasks/${t.id}`;
  const CLAIM = `${P}/tasks/claim`;
  const hb = (t) => `${taskPath(t)}/heartbeat`;
  const tr = (t) => `${taskPath(t)}/transition`;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---- a plan with two ready tasks, and a memory relevant to the first ----
  const plan = (await call("POST", `${P}/plans`, 201, { json: { project: "engine", title: "Engine plan", status: "active" }, bodyValid: true })).json;
  const phase = (await call("POST", "/api/v1/plans/{id}/phases", 201, { path: `${P}/plans/${plan.id}/phases`, json: { name: "Leases" }, bodyValid: true })).json;
  const phaseTasks = `${P}/phases/${phase.id}/tasks`;
  const t1 = (await call("POST", "/api/v1/phases/{id}/tasks", 201, { path: phaseTasks, json: { title: "Lease reaper", description: "expired task leases go back to pending", priority: 9, output_files: ["src/engine/reaper.cpp"] }, bodyValid: true })).json;
  const t2 = (await call("POST", "/api/v1/phases/{id}/tasks", 201, { path: phaseTasks, json: { title: "Second engine task", priority: 4 }, bodyValid: true })).json;
  await call("POST", `${P}/memories`, 201, { query: EQ, json: { content: "Lease reaper: expired task leases go back to pending with retry_count + 1.", content_type: "learning", keywords: ["lease", "reaper"] }, bodyValid: true });

  // ---- claim ----
  await call("POST", CLAIM, 422, { query: EQ, json: {}, bodyValid: true }); // no agent anywhere
  await call("POST", CLAIM, 422, { query: EQ, json: { agent: "" }, bodyValid: false });
  await call("POST", CLAIM, 422, { query: EQ, json: { agent: "agent-one", lease_seconds: 0 }, bodyValid: false });
  await call("POST", CLAIM, 422, { query: EQ, json: { agent: "agent-one", lease_seconds: 86_401 }, bodyValid: false });
  await call("POST", CLAIM, 422, { query: EQ, json: { agent: "agent-one", colour: "red" }, bodyValid: false });
  await call("POST", CLAIM, 422, { query: EQ, json: ["agent-one"], bodyValid: false });
  await call("POST", CLAIM, 422, { query: { ...EQ, with_context: "yes" }, json: { agent: "agent-one" } });
  await call("POST", CLAIM, 422, { query: { ...EQ, limit: 1 }, json: { agent: "agent-one" } });
  await call("POST", CLAIM, 422, { query: { ...EQ, with_context: "1", context_limit: 0 }, json: { agent: "agent-one" } });
  await call("POST", CLAIM, 422, { query: { ...EQ, with_context: "1", context_limit: 51 }, json: { agent: "agent-one" } });
  await call("POST", CLAIM, 422, { query: { ...EQ, context_limit: "many" }, json: { agent: "agent-one" } });
  await call("POST", CLAIM, 404, { json: { agent: "agent-one", project: "p".repeat(200) }, bodyValid: true });
  await call("POST", CLAIM, 422, { json: { agent: "agent-one", project: "p".repeat(201) }, bodyValid: false });
  await call("POST", CLAIM, 404, { json: { agent: "agent-one", project: "no-such-project" }, bodyValid: true });
  await call("POST", CLAIM, 404, { query: EQ, json: { agent: "agent-one", plan_id: missing("pln") }, bodyValid: true });
  await call("POST", CLAIM, 400, { query: EQ, raw: '{"agent": ' });
  await call("POST", CLAIM, 400, { query: EQ, raw: '{"agent":"agent-one"}', contentType: "text/plain" });
  const c1 = await call("POST", CLAIM, 200, { query: { ...EQ, with_context: "1", context_limit: 1 }, headers: A1, json: { lease_seconds: 600 }, bodyValid: true });
  const claimed = c1.json ?? {};
  expect(claimed.id === t1.id && claimed.status === "active" && claimed.lease_owner === "agent-one" && claimed.assigned_agent === "agent-one" && typeof claimed.lease_expires_at === "string", "claim should lease the highest-priority ready task to the agent");
  expect(etagVersion(c1) === claimed.version, "claim: ETag should carry the task's version");
  expect(Array.isArray(claimed.context) && claimed.context.length === 1, "claim with_context=1&context_limit=1 should return the one relevant memory");
  const c2 = await call("POST", CLAIM, 200, { headers: EH, json: { agent: "agent-two", plan_id: plan.id, lease_seconds: null, project: null }, bodyValid: true });
  expect(c2.json?.id === t2.id && c2.json?.lease_owner === "agent-two" && !("context" in (c2.json ?? {})), "the second claim should take the other task, without context");
  await call("POST", CLAIM, 204, { query: { ...EQ, with_context: "true" }, json: { agent: "agent-three" }, bodyValid: true });
  await call("POST", CLAIM, 204, { headers: A2, json: { plan_id: plan.id }, bodyValid: true });

  // ---- heartbeat ----
  const beat = await call("POST", "/api/v1/tasks/{id}/heartbeat", 200, { path: hb(t1), headers: A1, json: { lease_seconds: 900 }, bodyValid: true });
  expect(beat.json?.lease_owner === "agent-one" && beat.json?.status === "active" && etagVersion(beat) === beat.json?.version, "the owner's heartbeat should keep the lease");
  expect(beat.json?.version === claimed.version + 1 && beat.json?.lease_expires_at > claimed.lease_expires_at, "a heartbeat extends the lease and increments the version (as documented)");
  await call("POST", "/api/v1/tasks/{id}/heartbeat", 200, { path: hb(t1), json: { agent: "agent-one" }, bodyValid: true });
  const denied = await call("POST", "/api/v1/tasks/{id}/heartbeat", 403, { path: hb(t1), headers: A2, json: {}, bodyValid: true });
  expect(denied.json?.lease_owner === "agent-one" && typeof denied.json?.lease_expires_at === "string", "403 should name the lease owner and expiry");
  const forced = await call("POST", "/api/v1/tasks/{id}/heartbeat", 200, { path: hb(t1), headers: A2, json: { force: true, lease_seconds: 60 }, bodyValid: true });
  expect(forced.json?.lease_owner === "agent-one", "a forced heartbeat keeps the owner");
  const notActive = await call("POST", "/api/v1/tasks/{id}/heartbeat", 409, { path: hb(task), headers: A1, json: {}, bodyValid: true });
  expect(notActive.json?.task_status === "completed" && notActive.json?.status === 409, "heartbeat 409 should carry task_status (and keep status the HTTP status)");
  await call("POST", "/api/v1/tasks/{id}/heartbeat", 404, { path: hb({ id: missing("tsk") }), headers: A1, json: {}, bodyValid: true });
  await call("POST", "/api/v1/tasks/{id}/heartbeat", 422, { path: hb(t1), json: {}, bodyValid: true });
  await call("POST", "/api/v1/tasks/{id}/heartbeat", 422, { path: hb(t1), json: { agent: "agent-one", lease_seconds: 86_401 }, bodyValid: false });
  await call("POST", "/api/v1/tasks/{id}/heartbeat", 422, { path: hb(t1), json: { agent: "agent-one", force: "yes" }, bodyValid: false });
  await call("POST", "/api/v1/tasks/{id}/heartbeat", 422, { path: hb(t1), json: { agent: "agent-one", ttl: 5 }, bodyValid: false });
  await call("POST", "/api/v1/tasks/{id}/heartbeat", 422, { path: hb(t1), query: { now: 1 }, json: { agent: "agent-one" } });
  await call("POST", "/api/v1/tasks/{id}/heartbeat", 400, { path: hb(t1), raw: "nope" });

  // ---- transitions of leased tasks ----
  const notOwner = await call("POST", "/api/v1/tasks/{id}/transition", 403, { path: tr(t1), headers: A2, json: { to: "completed" }, bodyValid: true });
  expect(notOwner.json?.lease_owner === "agent-one", "403 should name the lease owner");
  await call("POST", "/api/v1/tasks/{id}/transition", 403, { path: tr(t1), json: { to: "failed", actor: "agent-two", force: false }, bodyValid: true });
  await call("POST", "/api/v1/tasks/{id}/transition", 403, { path: tr(t1), json: { to: "completed" }, bodyValid: true }); // no actor at all
  await call("POST", "/api/v1/tasks/{id}/transition", 422, { path: tr(t1), headers: A1, json: { to: "completed", force: "yes" }, bodyValid: false });
  const completed = await call("POST", "/api/v1/tasks/{id}/transition", 200, { path: tr(t1), headers: A1, json: { to: "completed", note: "reaper wired" }, bodyValid: true });
  expect(completed.json?.status === "completed" && completed.json?.lease_owner === null && completed.json?.lease_expires_at === null, "completing ends the lease");
  const released = await call("POST", "/api/v1/tasks/{id}/transition", 200, { path: tr(t2), json: { to: "pending", actor: "admin", force: true, note: "released by hand" }, bodyValid: true });
  expect(released.json?.status === "pending" && released.json?.lease_owner === null && released.json?.retry_count === 1, "a forced release returns the task to pending");

  // ---- GET a task with its context ----
  const withCtx = await call("GET", "/api/v1/tasks/{id}", 200, { path: taskPath(task), query: { with_context: "1", context_limit: 3 } });
  const ctxHits = withCtx.json?.context;
  expect(Array.isArray(ctxHits) && ctxHits.length <= 3 && !ctxHits.some((h) => h.task_id === task.id && h.source === "engine"), "with_context should return at most context_limit memories, without the task's own completion memory");
  expect(etagVersion(withCtx) === withCtx.json?.version, "GET task with_context: ETag should carry the version");
  const t1Ctx = await call("GET", "/api/v1/tasks/{id}", 200, { path: taskPath(t1), query: { with_context: "true" } });
  expect(Array.isArray(t1Ctx.json?.context) && t1Ctx.json.context.length >= 1 && t1Ctx.json.context.length <= 5, "with_context=true should use the default limit");
  const noCtx = await call("GET", "/api/v1/tasks/{id}", 200, { path: taskPath(t1), query: { with_context: "false", context_limit: 50 } });
  expect(noCtx.json && !("context" in noCtx.json), "with_context=false returns no context");
  await call("GET", "/api/v1/tasks/{id}", 422, { path: taskPath(t1), query: { with_context: "yes" } });
  await call("GET", "/api/v1/tasks/{id}", 422, { path: taskPath(t1), query: { with_context: "1", context_limit: 51 } });
  await call("GET", "/api/v1/tasks/{id}", 422, { path: taskPath(t1), query: { context_limit: 0 } });

  // ---- jobs ----
  const J = `${P}/jobs`;
  const jobPath = (j) => `${J}/${j.id}`;
  const rollup = await call("POST", J, 201, { json: { kind: "rollup" }, bodyValid: true });
  expect(rollup.json?.state === "queued" && rollup.json?.deduplicated === false && rollup.json?.priority === 5 && rollup.json?.max_attempts === 5 && rollup.json?.attempts === 0, "a new job is queued with the defaults");
  const full = await call("POST", J, 201, { json: { kind: "retention", payload: { optimize: false }, priority: 2, max_attempts: 1, dedup_key: null }, bodyValid: true });
  expect(full.json?.priority === 2 && full.json?.max_attempts === 1 && isDeepStrictEqual(full.json?.payload, { optimize: false }), "the job keeps its payload, priority and max_attempts");
  await call("POST", J, 201, { json: { kind: "lease_reaper", payload: null, priority: null, max_attempts: null }, bodyValid: true });
  // Deduplication: two requests sent together; the worker may (rarely) run
  // the first job in between, so try a few keys.
  let deduplicated = false;
  for (let i = 0; i < 5 && !deduplicated; ++i) {
    const body = { kind: "rollup", dedup_key: `conformance-dedup-${i}`, priority: 1 };
    const [first, second] = await Promise.all([
      call("POST", J, [200, 201], { json: body, bodyValid: true }),
      call("POST", J, [200, 201], { json: body, bodyValid: true }),
    ]);
    const dup = [first, second].find((r) => r.status === 200);
    const orig = [first, second].find((r) => r.status === 201);
    if (dup && orig) {
      deduplicated = dup.json?.deduplicated === true && dup.json?.id === orig.json?.id && dup.json?.dedup_key === body.dedup_key;
      expect(deduplicated, "a deduplicated enqueue should return the queued job");
    }
  }
  expect(deduplicated, "enqueueing the same dedup_key twice should deduplicate");
  await call("POST", J, 422, { json: { kind: "fts_optimize" }, bodyValid: false });
  await call("POST", J, 422, { json: { payload: {} }, bodyValid: false });
  await call("POST", J, 422, { json: { kind: null }, bodyValid: false });
  await call("POST", J, 422, { json: { kind: "backup", payload: "nightly" }, bodyValid: false });
  await call("POST", J, 422, { json: { kind: "backup", payload: [1] }, bodyValid: false });
  await call("POST", J, 422, { json: { kind: "backup", priority: 11 }, bodyValid: false });
  await call("POST", J, 422, { json: { kind: "backup", max_attempts: 0 }, bodyValid: false });
  await call("POST", J, 422, { json: { kind: "backup", max_attempts: 101 }, bodyValid: false });
  await call("POST", J, 422, { json: { kind: "backup", dedup_key: "" }, bodyValid: false });
  await call("POST", J, 422, { json: { kind: "backup", dedup_key: "k".repeat(201) }, bodyValid: false });
  await call("POST", J, 422, { json: { kind: "backup", run_at: "now" }, bodyValid: false });
  await call("POST", J, 422, { json: { kind: "backup", payload: { path: join(tmp, "elsewhere.db") } }, bodyValid: false });
  for (const name of [".hidden.db", "../escape.db", "sub/dir.db", "", "n".repeat(129), 5]) {
    await call("POST", J, 422, { json: { kind: "backup", payload: { name } }, bodyValid: false });
  }
  await call("POST", J, 422, { json: { kind: "retention", payload: { optimize: "yes" } }, bodyValid: false });
  await call("POST", J, 422, { json: { kind: "retention", payload: { vacuum: true } }, bodyValid: false });
  await call("POST", J, 422, { json: { kind: "session_summary" }, bodyValid: false });
  await call("POST", J, 422, { json: { kind: "session_summary", payload: {} }, bodyValid: false });
  await call("POST", J, 422, { json: { kind: "session_summary", payload: { session_id: 5 } }, bodyValid: false });
  await call("POST", J, 422, { json: { kind: "rollup", payload: { plan_id: "x" } }, bodyValid: false });
  await call("POST", J, 422, { json: { kind: "lease_reaper", payload: { now: true } }, bodyValid: false });
  const named = await call("POST", J, 201, { json: { kind: "backup", payload: { name: "conformance-1.db" }, max_attempts: 1 }, bodyValid: true });
  expect(isDeepStrictEqual(named.json?.payload, { name: "conformance-1.db" }), "a backup job keeps its file name");
  await call("POST", J, 201, { json: { kind: "backup", payload: { name: null } }, bodyValid: true });
  await call("POST", J, 201, { json: { kind: "retention", payload: { optimize: null } }, bodyValid: true });
  await call("POST", J, 201, { json: { kind: "embed_memory", payload: {} }, bodyValid: true });
  await call("POST", J, 422, { json: "rollup", bodyValid: false });
  await call("POST", J, 422, { query: { project: "engine" }, json: { kind: "rollup" } });
  await call("POST", J, 400, { raw: '{"kind": "rollup"' });
  await call("POST", J, 400, { raw: '{"kind":"rollup"}', contentType: "text/plain" });
  await call("POST", J, 413, { raw: JSON.stringify({ kind: "backup", payload: { name: "x".repeat(1_200_000) } }) });

  const gotJob = await call("GET", "/api/v1/jobs/{id}", 200, { path: jobPath(rollup.json) });
  expect(gotJob.json?.id === rollup.json.id && gotJob.json?.kind === "rollup", "GET job should return it");
  await call("GET", "/api/v1/jobs/{id}", 404, { path: jobPath({ id: missing("job") }) });
  await call("GET", "/api/v1/jobs/{id}", 422, { path: jobPath(rollup.json), query: { verbose: 1 } });

  const list = await call("GET", J, 200);
  expect((list.json?.items ?? []).some((j) => j.id === rollup.json.id), "the job list should include the new job");
  const jp1 = await call("GET", J, 200, { query: { kind: "rollup", limit: 1 } });
  expect(jp1.json?.items?.length === 1 && jp1.json.items[0].kind === "rollup" && typeof jp1.json?.next_cursor === "string", "jobs page 1 should have 1 rollup job and a cursor");
  const jp2 = await call("GET", J, 200, { query: { kind: "rollup", limit: 1, cursor: jp1.json?.next_cursor } });
  expect(jp2.json?.items?.length === 1 && jp2.json.items[0].kind === "rollup" && jp2.json.items[0].id < jp1.json.items[0].id, "jobs page 2 should continue after page 1, newest first");
  await call("GET", J, 200, { query: { state: "queued" } });
  await call("GET", J, 422, { query: { state: "bogus" } });
  await call("GET", J, 422, { query: { limit: 0 } });
  await call("GET", J, 422, { query: { cursor: "garbage" } });
  await call("GET", J, 422, { query: { project: "engine" } });

  // Retry: a job that never fails is never retryable (409, whatever its
  // state by now); a session_summary job for a session that does not exist
  // fails permanently, and can then be retried.
  const notDead = await call("POST", "/api/v1/jobs/{id}/retry", 409, { path: `${jobPath(rollup.json)}/retry` });
  expect(["queued", "running", "done"].includes(notDead.json?.state), "409 on retry should carry the job's state");
  const broken = (await call("POST", J, 201, { json: { kind: "session_summary", payload: { session_id: missing("ses") }, max_attempts: 3 }, bodyValid: true })).json;
  let brokenNow = broken;
  for (let i = 0; i < 150 && brokenNow?.state !== "failed"; ++i) {
    await sleep(100);
    brokenNow = (await call("GET", "/api/v1/jobs/{id}", 200, { path: jobPath(broken) })).json;
  }
  expect(brokenNow?.state === "failed" && typeof brokenNow?.last_error === "string" && brokenNow?.finished_at !== null, `a summary job for a missing session should fail permanently: ${JSON.stringify(brokenNow)}`);
  if (brokenNow?.state === "failed") {
    const failedList = await call("GET", J, 200, { query: { state: "failed", kind: "session_summary" } });
    expect((failedList.json?.items ?? []).some((j) => j.id === broken.id), "state=failed should list the failed job");
    const retried = await call("POST", "/api/v1/jobs/{id}/retry", 200, { path: `${jobPath(broken)}/retry` });
    expect(retried.json?.state === "queued" && retried.json?.attempts === 0 && retried.json?.finished_at === null, "a retried job is queued again with no attempts");
  }
  await call("POST", "/api/v1/jobs/{id}/retry", 404, { path: `${jobPath({ id: missing("job") })}/retry` });
  await call("POST", "/api/v1/jobs/{id}/retry", 422, { path: `${jobPath(broken)}/retry`, query: { force: 1 } });

  // ---- sessions ----
  const S = `${P}/sessions`;
  const sesPath = (id) => `${S}/${id}`;
  await call("GET", `${S}/latest`, 404, { query: EQ });
  const s1Res = await call("POST", S, 201, { query: EQ, headers: A1, json: { external_id: "conf-session-1", plan_id: plan.id }, bodyValid: true });
  const s1 = s1Res.json;
  expect(s1?.status === "active" && s1?.agent === "agent-one" && s1?.external_id === "conf-session-1" && s1?.plan_id === plan.id && s1?.summary === "" && s1?.ended_at === null, "a new session is active and keeps its fields");
  const again = await call("POST", S, 200, { headers: EH, json: { external_id: "conf-session-1", agent: "someone-else" }, bodyValid: true });
  expect(again.json?.id === s1.id, "the same external_id should return the same session");
  const anon = await call("POST", S, 201, { json: { project: "engine", agent: null, external_id: null, plan_id: null }, bodyValid: true });
  expect(anon.json?.agent === "" && anon.json?.external_id === null, "a session without agent has an empty agent");
  await call("POST", S, 422, { query: EQ, json: { plan_id: missing("pln") }, bodyValid: true });
  await call("POST", S, 422, { query: EQ, json: { plan_id: "not-a-plan" }, bodyValid: true });
  await call("POST", S, 422, { query: EQ, json: { external_id: "" }, bodyValid: false });
  await call("POST", S, 422, { query: EQ, json: { agent: "a".repeat(201) }, bodyValid: false });
  await call("POST", S, 422, { query: EQ, json: { title: "x" }, bodyValid: false });
  await call("POST", S, 422, { query: EQ, json: [], bodyValid: false });
  await call("POST", S, 422, { query: { ...EQ, limit: 1 }, json: {} });
  await call("POST", S, 404, { json: { project: missing("prj") }, bodyValid: true });
  await call("POST", S, 400, { query: EQ, raw: "{" });
  await call("POST", S, 400, { query: EQ, raw: "" });

  const byId = await call("GET", "/api/v1/sessions/{id}", 200, { path: sesPath(s1.id) });
  expect(byId.json?.id === s1.id, "GET session by id");
  const byExternal = await call("GET", "/api/v1/sessions/{id}", 200, { path: sesPath("conf-session-1"), query: EQ });
  expect(byExternal.json?.id === s1.id, "GET session by external id");
  const byExternalHeader = await call("GET", "/api/v1/sessions/{id}", 200, { path: sesPath("conf-session-1"), headers: EH });
  expect(byExternalHeader.json?.id === s1.id, "GET session by external id (project from X-DevStream-Project)");
  await call("GET", "/api/v1/sessions/{id}", 404, { path: sesPath("conf-session-1") }); // not in `default`
  await call("GET", "/api/v1/sessions/{id}", 404, { path: sesPath("conf-session-1"), query: { project: "conformance" } });
  await call("GET", "/api/v1/sessions/{id}", 404, { path: sesPath("conf-session-1"), query: { project: "no-such-project" } });
  const ownId = await call("GET", "/api/v1/sessions/{id}", 200, { path: sesPath(s1.id), query: { project: "conformance" } });
  expect(ownId.json?.id === s1.id, "a ses_ id is found whatever the project");
  await call("GET", "/api/v1/sessions/{id}", 404, { path: sesPath(missing("ses")) });
  await call("GET", "/api/v1/sessions/{id}", 422, { path: sesPath(s1.id), query: { verbose: 1 } });

  const ended = await call("POST", "/api/v1/sessions/{id}/end", 200, { path: `${sesPath(s1.id)}/end` });
  expect(ended.json?.status === "ended" && typeof ended.json?.ended_at === "string", "ending a session");
  const endedAgain = await call("POST", "/api/v1/sessions/{id}/end", 200, { path: `${sesPath(s1.id)}/end`, json: {}, bodyValid: true });
  expect(endedAgain.json?.ended_at === ended.json?.ended_at, "ending twice changes nothing");
  await call("POST", "/api/v1/sessions/{id}/end", 422, { path: `${sesPath(s1.id)}/end`, json: { summary: "x" }, bodyValid: false });
  await call("POST", "/api/v1/sessions/{id}/end", 422, { path: `${sesPath(s1.id)}/end`, json: "now", bodyValid: false });
  await call("POST", "/api/v1/sessions/{id}/end", 422, { path: `${sesPath(s1.id)}/end`, query: { now: 1 } });
  await call("POST", "/api/v1/sessions/{id}/end", 400, { path: `${sesPath(s1.id)}/end`, raw: "{" });
  await call("POST", "/api/v1/sessions/{id}/end", 400, { path: `${sesPath(s1.id)}/end`, raw: "{}", contentType: "text/plain" });
  await call("POST", "/api/v1/sessions/{id}/end", 404, { path: `${sesPath(missing("ses"))}/end` });
  await call("POST", "/api/v1/sessions/{id}/end", 404, { path: `${sesPath("conf-session-1")}/end`, query: { project: "conformance" } });
  const endedByExternal = await call("POST", "/api/v1/sessions/{id}/end", 200, { path: `${sesPath("conf-session-1")}/end`, query: EQ });
  expect(endedByExternal.json?.id === s1.id && endedByExternal.json?.ended_at === ended.json?.ended_at, "ending by external id within the project");
  const summaryJobs = await call("GET", J, 200, { query: { kind: "session_summary" } });
  expect((summaryJobs.json?.items ?? []).some((j) => j.payload?.session_id === s1.id && j.dedup_key === `session_summary:${s1.id}`), "ending a session should queue its summary job");

  const latest = await call("GET", `${S}/latest`, 200, { query: EQ });
  expect(latest.json?.id === s1.id && latest.json?.summary?.includes(s1.id) && typeof latest.json?.summary_memory_id === "number", "the latest ended session should come back summarised");
  await call("GET", `${S}/latest`, 200, { headers: EH });
  await call("GET", `${S}/latest`, 404, { query: { project: "no-such-project" } });
  await call("GET", `${S}/latest`, 422, { query: { ...EQ, limit: 1 } });
  const reopened = await call("POST", S, 200, { query: EQ, json: { external_id: "conf-session-1" }, bodyValid: true });
  expect(reopened.json?.id === s1.id && reopened.json?.status === "active" && reopened.json?.ended_at === null, "starting an ended session's external_id again should reopen it");
}

// The MCP Streamable HTTP transport (src/mcp/http_transport.cpp): the
// documented statuses of POST and DELETE /mcp. (tests/node/mcp_e2e.mjs drives
// the tools through the official SDK client; SSE answers are checked there.)
async function hookScenario({ P }) {
  const H = "/api/v1/hooks/{event}";
  const at = (event) => `${P}/hooks/${event}`;
  const input = { session_id: "conf-hook-1", cwd: "/tmp/conformance-repo", hook_event_name: "SessionStart", source: "startup" };
  const start = await call("POST", H, 200, { path: at("SessionStart"), json: { event: "SessionStart", input, project: "hooks" }, bodyValid: true });
  expect(start.json && "output" in start.json, "a hook answers {output}");
  await call("POST", H, 200, { path: at("PostToolUse"), bodyValid: true, json: {
    event: "PostToolUse", project: "hooks",
    input: { ...input, hook_event_name: "PostToolUse", tool_name: "Write", tool_input: { file_path: "src/conf.cpp" } },
    files: [{ path: "src/conf.cpp", content: "int conformance_answer() { return 42; }\n" }] } });
  const prompt = await call("POST", H, 200, { path: at("UserPromptSubmit"), bodyValid: true, json: {
    event: "UserPromptSubmit", project: "hooks", input: { ...input, hook_event_name: "UserPromptSubmit", prompt: "conformance_answer" } } });
  expect(prompt.json?.output?.hookSpecificOutput?.hookEventName === "UserPromptSubmit", "UserPromptSubmit injects the stored file");
  await call("POST", H, 200, { path: at("Stop"), json: { event: "Stop", project: "hooks", input }, bodyValid: true });
  await call("POST", H, 422, { path: at("Stop"), json: { event: "SessionEnd", project: "hooks", input }, bodyValid: true });
  await call("POST", H, 422, { path: at("Stop"), json: { event: "Stop", input: [] }, bodyValid: false });
  await call("POST", H, 422, { path: at("Stop"), json: { event: "Stop", input, extra: 1 }, bodyValid: false });
  await call("POST", H, 400, { path: at("Stop"), raw: '{"event":' });
  await call("POST", H, 200, { path: at("SessionEnd"), json: { event: "SessionEnd", project: "hooks", input: { ...input, hook_event_name: "SessionEnd", reason: "exit" } }, bodyValid: true });
}

async function mcpScenario() {
  const M = "/mcp";
  const rpc = (id, method, params) => ({ jsonrpc: "2.0", id, method, ...(params ? { params } : {}) });
  const init = rpc(1, "initialize", { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "conformance", version: "1" } });
  const opened = await call("POST", M, 200, { headers: { "X-DevStream-Project": "engine" }, json: init, bodyValid: true });
  const sid = opened.headers.get("mcp-session-id") ?? "";
  expect(opened.json?.result?.protocolVersion === "2025-11-25" && opened.json?.result?.serverInfo?.name === "devstream" && /^[0-9a-f]{32}\.[A-Za-z0-9_-]{22}$/.test(sid), "initialize should negotiate 2025-11-25 and open a session");
  const S = { "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25" };
  await call("POST", M, 202, { headers: S, json: { jsonrpc: "2.0", method: "notifications/initialized" }, bodyValid: true });
  const tools = await call("POST", M, 200, { headers: S, json: rpc(2, "tools/list"), bodyValid: true });
  expect(tools.json?.result?.tools?.length === 10, "tools/list should list the 10 devstream tools");
  const batch = await call("POST", M, 200, { headers: S, json: [rpc(3, "ping"), rpc(4, "resources/list")], bodyValid: true });
  expect(Array.isArray(batch.json) && batch.json.length === 2 && batch.json[1]?.error?.code === -32601, "a batch gets one answer per request");
  const toolError = await call("POST", M, 200, { headers: S, json: rpc(5, "tools/call", { name: "devstream_forget_memory", arguments: {} }), bodyValid: true });
  expect(toolError.json?.result?.isError === true, "a tool called with bad arguments answers an isError result");
  const plans = await call("POST", M, 200, { headers: { ...S, "X-DevStream-Project": "engine" }, json: rpc(6, "tools/call", { name: "devstream_list_plans", arguments: {} }), bodyValid: true });
  expect(plans.json?.result?.structuredContent?.items?.some((p) => p.title === "Engine plan"), "X-DevStream-Project sets the tools' default project");
  const unknownTool = await call("POST", M, 200, { headers: S, json: rpc(7, "tools/call", { name: "nope" }), bodyValid: true });
  expect(unknownTool.json?.error?.code === -32602, "an unknown tool is a JSON-RPC -32602 error");
  await call("POST", M, 400, { headers: { "Mcp-Session-Id": sid }, raw: "{not json" });
  await call("POST", M, 400, { headers: { "Mcp-Session-Id": sid, "MCP-Protocol-Version": "1999-01-01" }, json: rpc(8, "ping") });
  await call("POST", M, 403, { headers: { Origin: "http://evil.example" }, json: init });
  await call("POST", M, 404, { headers: { "Mcp-Session-Id": "0".repeat(32) }, json: rpc(9, "ping") });
  await call("POST", M, 406, { headers: { Accept: "text/html" }, json: init });
  await call("POST", M, 413, { raw: JSON.stringify(rpc(10, "ping", { pad: "x".repeat(1_200_000) })) });
  await call("DELETE", M, 400);
  await call("DELETE", M, 403, { headers: { Origin: "https://evil.example", "Mcp-Session-Id": sid } });
  await call("DELETE", M, 204, { headers: { "Mcp-Session-Id": sid } });
  await call("DELETE", M, 404, { headers: { "Mcp-Session-Id": sid } });
  await call("POST", M, 404, { headers: { "Mcp-Session-Id": sid }, json: rpc(11, "ping") });
}

// ---------------------------------------------------------------- routes in the source

function checkRoutesMatchSource() {
  const registered = new Map(); // "METHOD /path" -> file that registers it
  const files = routesFiles.map((f) => f.replace(/^.*\/src\//, "src/"));
  routesFiles.forEach((file, i) => {
    let src;
    try {
      src = readFileSync(file, "utf8");
    } catch (e) {
      problem(`cannot read ${file}: ${e.message}`);
      return;
    }
    const found = [...src.matchAll(/router\.Add\(\s*"([A-Z]+)"\s*,\s*"([^"]+)"/g)].map((m) => `${m[1]} ${m[2]}`);
    if (found.length === 0) problem(`found no router.Add(...) calls in ${files[i]}`);
    for (const r of found) {
      if (registered.has(r)) problem(`route ${r} is registered twice (${registered.get(r)} and ${files[i]})`);
      else registered.set(r, files[i]);
    }
  });
  const documented = new Set(operations(doc).map(({ method, path }) => `${method.toUpperCase()} ${path}`));
  for (const [r, file] of registered) if (!documented.has(r)) problem(`route ${r} is registered in ${file} but not documented`);
  for (const r of documented) if (!registered.has(r)) problem(`operation ${r} is documented but registered in none of ${files.join(", ")}`);
}

function checkCoverage() {
  for (const { method, path } of operations(doc)) {
    const key = `${method.toUpperCase()} ${path}`;
    const seen = covered.get(key) ?? new Set();
    const listed = Object.keys(deref(doc, doc.paths[path][method]).responses ?? {}).filter((s) => s !== "default");
    if (![...seen].some((s) => s.startsWith("2"))) problem(`${key}: no successful request was made`);
    const untested = listed.filter((s) => !seen.has(s));
    console.log(`cov  ${key}: exercised ${[...seen].sort().join(", ") || "-"}${untested.length ? `; not exercised ${untested.join(", ")}` : ""}`);
  }
}

// ---------------------------------------------------------------- main

const watchdog = setTimeout(async () => {
  problem(`the conformance run exceeded ${TOTAL_TIMEOUT_MS} ms`);
  await stopServer().catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
  process.exit(1);
}, TOTAL_TIMEOUT_MS);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    if (server && !serverExit) server.kill("SIGTERM");
    rmSync(tmp, { recursive: true, force: true });
    process.exit(1);
  });
}

async function launch(env = {}) {
  serverExit = null;
  base = await startServer(env);
  server.removeAllListeners("exit");
  server.on("exit", (code, signal) => {
    serverExit = { code, signal };
  });
  console.log(`server at ${base}`);
}

// Creates an API key with the CLI on the scenario's database; returns the key.
function createKey(name, scopes, project) {
  const args = ["apikey", "create", "--name", name, "--scopes", scopes, "--db", join(tmp, "c.db"), "--json"];
  if (project) args.push("--project", project);
  const r = spawnSync(binary, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`devstream ${args.join(" ")} failed: ${r.stderr}`);
  return JSON.parse(r.stdout).key;
}

// The same server with API keys on: the 401/403/404/429 answers are the
// documented ones (problem+json, WWW-Authenticate, Retry-After).
async function authScenario() {
  const P = "/api/v1";
  const reader = createKey("conf-reader", "read");
  const admin = createKey("conf-admin", "admin");
  const bound = createKey("conf-bound", "write", "bound-only");
  const flood = createKey("conf-flood", "read");
  await launch({ DEVSTREAM_AUTH_ENABLED: "true", DEVSTREAM_RATE_LIMIT_PER_MINUTE: "1", DEVSTREAM_RATE_LIMIT_BURST: "8" });
  const as = (key) => ({ Authorization: `Bearer ${key}` });

  const none = await call("GET", `${P}/plans`, 401);
  expect((none.headers.get("www-authenticate") ?? "").startsWith("Bearer"), "401 without WWW-Authenticate: Bearer");
  await call("POST", "/mcp", 401, { raw: "{}" });
  await call("GET", "/health", 401, { headers: as("dsk_not-a-key") });
  await call("GET", "/health/live", 200);
  const plans = await call("GET", `${P}/plans`, 200, { headers: as(reader) });
  const planId = plans.json?.items?.[0]?.id;
  expect(planId, "the reader should see the scenario's plans");
  await call("POST", `${P}/plans`, 403, { headers: as(reader), json: { title: "no" }, bodyValid: true });
  await call("GET", `${P}/jobs`, 403, { headers: as(reader) });
  await call("GET", `${P}/jobs`, 200, { headers: as(admin) });
  await call("GET", "/metrics", 200, { headers: as(admin) });
  await call("GET", `${P}/plans/{id}`, 404, { path: `${P}/plans/${planId}`, headers: as(bound) });
  const own = await call("GET", `${P}/plans`, 200, { headers: as(bound) });
  expect(own.json?.items?.length === 0, "a bound key must not list another project's plans");
  await call("POST", `${P}/projects`, 403, { headers: as(bound), json: { name: "escape" }, bodyValid: true });
  let limited = null;
  for (let i = 0; i < 20 && !limited; i++) {
    const r = await call("GET", "/version", [200, 429], { headers: as(flood) });
    if (r.status === 429) limited = r;
  }
  expect(limited, "no 429 after 20 requests with a burst of 8");
  if (limited) expect(Number(limited.headers.get("retry-after")) >= 1, "429 without Retry-After");
}

let exitCode = 0;
try {
  checkRoutesMatchSource();
  await launch();
  await scenario();
  const first = await stopServer();
  if (first && (first.code !== 0 || first.signal)) problem(`server exited with code ${first.code} signal ${first.signal}`);
  server = null;
  await authScenario();
  checkCoverage();
} catch (e) {
  problem(e.message);
} finally {
  const exit = await stopServer().catch((e) => {
    problem(`stopping the server: ${e.message}`);
    return null;
  });
  if (exit && !exit.spawnError && (exit.code !== 0 || exit.signal)) {
    problem(`server exited with code ${exit.code} signal ${exit.signal} after SIGTERM; stderr:\n${serverStderr.slice(-4000)}`);
  }
  clearTimeout(watchdog);
  rmSync(tmp, { recursive: true, force: true });
}
if (failures.length) {
  console.log(`\n${failures.length} failure(s):`);
  for (const f of failures) console.log(`  - ${f}`);
  exitCode = 1;
}
console.log(`${requests} requests, ${failures.length ? "FAILED" : "conformance OK"}`);
process.exit(exitCode);
