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
// JSON) and that the routes registered in src/api/rest_api.cpp are exactly
// the documented operations. The server is stopped with SIGTERM in all cases.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
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
const routesFile = fileURLToPath(new URL("../../src/api/rest_api.cpp", import.meta.url));
if (!binary) fail("usage: node conformance.mjs DEVSTREAM_BINARY [OPENAPI.json]");
if (!existsSync(binary)) fail(`no devstream binary at ${binary}`);

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

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ["serve", "--host", "127.0.0.1", "--port", "0", "--db", join(tmp, "c.db")], {
      stdio: ["ignore", "pipe", "pipe"],
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
// opts: path (the concrete path), query (object), headers, json (a body to
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
  const label = `${method} ${path}${url.search} -> ${expectStatus}`;

  // The request itself, against the document.
  const declared = params(op);
  if (expectStatus < 300) {
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
  if (status !== expectStatus) {
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

  // ---- after all that, still healthy ----
  await call("GET", "/health", 200);
}

// ---------------------------------------------------------------- routes in the source

function checkRoutesMatchSource() {
  let src;
  try {
    src = readFileSync(routesFile, "utf8");
  } catch (e) {
    problem(`cannot read ${routesFile}: ${e.message}`);
    return;
  }
  const registered = new Set([...src.matchAll(/router\.Add\(\s*"([A-Z]+)"\s*,\s*"([^"]+)"/g)].map((m) => `${m[1]} ${m[2]}`));
  const documented = new Set(operations(doc).map(({ method, path }) => `${method.toUpperCase()} ${path}`));
  for (const r of registered) if (!documented.has(r)) problem(`route ${r} is registered in src/api/rest_api.cpp but not documented`);
  for (const r of documented) if (!registered.has(r)) problem(`operation ${r} is documented but not registered in src/api/rest_api.cpp`);
  if (registered.size === 0) problem("found no router.Add(...) calls in src/api/rest_api.cpp");
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

let exitCode = 0;
try {
  checkRoutesMatchSource();
  base = await startServer();
  server.removeAllListeners("exit");
  server.on("exit", (code, signal) => {
    serverExit = { code, signal };
  });
  console.log(`server at ${base}`);
  await scenario();
  checkCoverage();
} catch (e) {
  problem(e.message);
} finally {
  const exit = await stopServer().catch((e) => {
    problem(`stopping the server: ${e.message}`);
    return null;
  });
  if (exit && (exit.code !== 0 || exit.signal)) {
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
