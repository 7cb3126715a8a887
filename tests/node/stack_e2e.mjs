// The deployed stack end to end, without Docker:
//   usage `node stack_e2e.mjs DEVSTREAM_BINARY NGINX_BINARY [REPO_ROOT] [OPENSSL_BINARY]`
//
// In a temporary directory: a test CA and a server certificate for
// 127.0.0.1/localhost (openssl), `devstream migrate up`, two API processes
// (`serve`, DEVSTREAM_SERVICE_MODE=api, DEVSTREAM_TRUSTED_PROXIES=127.0.0.1,
// port 0), one `devstream worker`, and nginx in front of them with TLS on free
// loopback ports, its configuration rendered from the shipped template
// (deployment/nginx/nginx.conf) by the shipped deployment/nginx/render.sh.
// Then, through HTTPS (the test CA is the only one trusted):
//   - /health is 200 healthy (the worker counts), with the security headers and
//     `Server: nginx` without a version; X-Request-Id passes through;
//   - a plan, a phase and two tasks are created, both tasks claimed, a third
//     claim gets 204; a memory is stored and found by search (the requests are
//     spread over both API processes);
//   - JSON is gzipped; a body over 1 MiB gets 413 problem+json from nginx;
//   - MCP initialize, tools/list (several times: the session must stick to one
//     process), a tools/call answered as an SSE stream (progress token) through
//     the unbuffered /mcp location, with the official SDK client;
//   - plain HTTP answers 301 to the same URL on the HTTPS port;
//   - /metrics: allowed from 127.0.0.1; refused by nginx (403 problem+json,
//     the app never sees it) from 127.0.0.2, an address not in
//     NGINX_METRICS_ALLOW; from 127.0.0.3, allowed by nginx, refused by the app,
//     which therefore saw the client address nginx put in X-Forwarded-For;
//   - a burst of concurrent requests beyond the limit gets 429 (problem+json,
//     Retry-After, security headers) and no 5xx;
//   - after SIGTERM to one API process (it exits 0), every request of a
//     sequence of 24 (reads and writes) still succeeds.
// Requests come from different loopback source addresses (127.0.0.x) so that
// each part has its own rate-limit bucket. Every process is stopped on exit,
// also on failure, and the directory removed; everything has a timeout.
// Exits 0 when all checks pass, 1 with the failures listed otherwise.
import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants as fsConstants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { tmpdir, userInfo } from "node:os";
import { dirname, join, resolve } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";

const TOTAL_TIMEOUT_MS = 150_000;
const REQUEST_TIMEOUT_MS = 20_000; // sanitizer builds are slow
const STARTUP_TIMEOUT_MS = 40_000;
const EXIT_TIMEOUT_MS = 20_000;
const RATE_PER_S = 10; // the test's limit_req: 10 requests/s per address,
const RATE = `${RATE_PER_S}r/s`;
const BURST = 20; //      20 at once
const BURST_REQUESTS = 50; // concurrent requests of the burst check
const FAILOVER_REQUESTS = 24;
const PROJECT = "stack-e2e";

const SECURITY_HEADERS = {
  "strict-transport-security": "max-age=63072000; includeSubDomains",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
};
const SANITIZER = /ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|runtime error:|SUMMARY: \w+Sanitizer/;

function fatal(message) {
  console.error(`stack_e2e: ${message}`);
  process.exit(1);
}

// ---------------------------------------------------------------- arguments

const [binaryArg, nginxArg, rootArg, opensslArg] = process.argv.slice(2);
if (!binaryArg || !nginxArg) fatal("usage: node stack_e2e.mjs DEVSTREAM_BINARY NGINX_BINARY [REPO_ROOT] [OPENSSL_BINARY]");
const binary = resolve(binaryArg);
const nginx = resolve(nginxArg);
const root = resolve(rootArg ?? join(dirname(fileURLToPath(import.meta.url)), "..", ".."));
const openssl = opensslArg ?? "openssl";
const renderScript = join(root, "deployment", "nginx", "render.sh");
for (const [what, path] of [["devstream binary", binary], ["nginx binary", nginx]]) {
  if (!existsSync(path)) fatal(`no ${what} at ${path}${what.startsWith("nginx") ? " (install the nginx package: deps/debian-test-packages.txt)" : ""}`);
  try {
    accessSync(path, fsConstants.X_OK);
  } catch {
    fatal(`${path} (${what}) is not executable`);
  }
}
if (!existsSync(renderScript)) fatal(`no ${renderScript} (is ${root} the repository root?)`);
if (spawnSync(openssl, ["version"], { stdio: "ignore" }).status !== 0) fatal(`openssl not found ("${openssl}"): install the openssl package`);

let Client, StreamableHTTPClientTransport;
try {
  ({ Client } = await import("@modelcontextprotocol/sdk/client/index.js"));
  ({ StreamableHTTPClientTransport } = await import("@modelcontextprotocol/sdk/client/streamableHttp.js"));
} catch (e) {
  fatal(`missing @modelcontextprotocol/sdk (${e.message.split("\n")[0]}); run \`make test-deps\` or \`cd tests/node && npm ci\``);
}

// ---------------------------------------------------------------- bookkeeping

const tmp = mkdtempSync(join(tmpdir(), "devstream-stack-e2e-"));
const procs = []; // every process started: { label, child, out, err, exit }
const failures = [];
let checks = 0;
let agent = null;

function check(cond, message) {
  ++checks;
  if (!cond) {
    failures.push(message);
    console.log(`FAIL ${message}`);
  }
  return !!cond;
}

// Each child is the leader of its own process group (nginx's workers are in
// its group), so one kill of the group stops everything it started.
function killAll() {
  for (const p of procs) {
    if (p.exit || !p.child.pid) continue;
    try {
      process.kill(-p.child.pid, "SIGKILL");
    } catch {
      try {
        process.kill(p.child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

process.on("exit", () => {
  killAll();
  if (process.env.STACK_E2E_KEEP) console.log(`stack_e2e: kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    console.error(`stack_e2e: ${sig}; stopping`);
    process.exit(1);
  });
}
const watchdog = setTimeout(() => {
  console.log(`FAIL the run exceeded ${TOTAL_TIMEOUT_MS} ms`);
  for (const p of procs) console.log(`--- ${p.label} stderr (end):\n${p.err.slice(-2000)}`);
  process.exit(1);
}, TOTAL_TIMEOUT_MS);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// No inherited DevStream or nginx settings in children.
function childEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("DEVSTREAM_") && !k.startsWith("NGINX_") && !/^(OPENAI_API_KEY|OLLAMA_HOST)$/.test(k)) env[k] = v;
  }
  return { ...env, ...extra };
}

function run(cmd, args, env) {
  const r = spawnSync(cmd, args, { cwd: tmp, env: childEnv(env), encoding: "utf8", timeout: 60_000 });
  if (r.error || r.status !== 0) {
    fatal(`${cmd} ${args.join(" ")} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout ?? ""}${r.stderr ?? ""}`);
  }
  return r;
}

// Starts a process; resolves with its entry when `ready` matches its stdout.
function start(label, cmd, args, env, ready) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: tmp, env: childEnv(env), stdio: ["ignore", "pipe", "pipe"], detached: true });
    const p = { label, child, out: "", err: "", exit: null, match: null };
    procs.push(p);
    const timer = setTimeout(() => reject(new Error(`${label} was not ready within ${STARTUP_TIMEOUT_MS} ms; stdout: ${p.out.slice(-2000)} stderr: ${p.err.slice(-3000)}`)), STARTUP_TIMEOUT_MS);
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d) => {
      p.err += d;
      if (p.err.length > 2_000_000) p.err = p.err.slice(-1_000_000);
    });
    child.stdout.on("data", (d) => {
      p.out += d;
      const m = ready ? ready.exec(p.out) : null;
      if (m && !p.match) {
        p.match = m;
        clearTimeout(timer);
        resolvePromise(p);
      }
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${label} (${cmd}): ${e.message}`));
    });
    child.on("exit", (code, signal) => {
      p.exit = { code, signal };
      clearTimeout(timer);
      reject(new Error(`${label} exited early (code ${code}, signal ${signal}); stderr: ${p.err.slice(-3000)}`));
    });
    if (!ready) {
      clearTimeout(timer);
      resolvePromise(p);
    }
  });
}

// Sends SIGNAL and waits for the exit; checks a clean exit when asked.
async function stop(p, signal = "SIGTERM", { expectClean = true } = {}) {
  if (!p.exit) {
    const exited = new Promise((r) => p.child.once("exit", (code, sig) => r({ code, signal: sig })));
    p.child.kill(signal);
    const result = await withTimeout(exited, EXIT_TIMEOUT_MS, `${p.label} exit`).catch(() => null);
    if (!result) {
      check(false, `${p.label} did not exit within ${EXIT_TIMEOUT_MS} ms of ${signal}`);
      try {
        process.kill(-p.child.pid, "SIGKILL");
      } catch {
        // gone
      }
      await exited;
    }
  }
  if (expectClean) {
    check(p.exit.code === 0 && !p.exit.signal, `${p.label} should exit 0 after ${signal}, got code ${p.exit.code} signal ${p.exit.signal}; stderr:\n${p.err.slice(-4000)}`);
  }
  check(!SANITIZER.test(p.err), `${p.label} reported a sanitizer error:\n${p.err.slice(-6000)}`);
}

// A free loopback port: bind port 0, read it, close.
function freePort() {
  return new Promise((r, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => r(port));
    });
  });
}

// ---------------------------------------------------------------- HTTP(S) clients

let HTTPS_PORT = 0;
let HTTP_PORT = 0;
const base = () => `https://127.0.0.1:${HTTPS_PORT}`;

// One request; `from` is the loopback source address. The body is not
// decompressed. Resolves { status, headers (lower-case names), body (Buffer),
// text, json }.
function request(method, path, { body, headers = {}, from = "127.0.0.1", plain = false } = {}) {
  return new Promise((resolvePromise, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
    const h = { Accept: "application/json", ...headers };
    if (payload) {
      h["Content-Type"] ??= "application/json";
      h["Content-Length"] = payload.length;
    }
    const mod = plain ? http : https;
    const req = mod.request(
      {
        host: "127.0.0.1",
        port: plain ? HTTP_PORT : HTTPS_PORT,
        method,
        path,
        headers: h,
        localAddress: from,
        agent: plain ? false : agent,
        servername: plain ? undefined : "localhost",
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const buf = Buffer.concat(chunks);
          const text = buf.toString("utf8");
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolvePromise({ status: res.statusCode, headers: res.headers, body: buf, text, json });
        });
        res.on("error", reject);
      },
    );
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`${method} ${path} timed out after ${REQUEST_TIMEOUT_MS} ms`)));
    req.on("error", reject);
    req.end(payload);
  });
}

// A request that must not throw: a network error becomes status 0.
async function req(method, path, options) {
  try {
    return await request(method, path, options);
  } catch (e) {
    return { status: 0, headers: {}, body: Buffer.alloc(0), text: `(${e.message})`, json: undefined };
  }
}

// fetch() for the MCP SDK over node:https with the test CA (Node's global
// fetch trusts only the system CAs). Streams the body, so SSE answers arrive
// as they are sent. Records each response's method, status and content type.
const mcpLog = [];
function httpsFetch(from) {
  return (url, init = {}) =>
    new Promise((resolvePromise, reject) => {
      const u = new URL(url);
      const headers = {};
      new Headers(init.headers ?? {}).forEach((v, k) => {
        headers[k] = v;
      });
      const payload = init.body == null ? undefined : Buffer.from(init.body);
      if (payload) headers["content-length"] = String(payload.length);
      const method = init.method ?? "GET";
      const r = https.request(
        { host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers, localAddress: from, agent, servername: "localhost" },
        (res) => {
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) {
            for (const x of [].concat(v)) h.append(k, x);
          }
          mcpLog.push({ method, status: res.statusCode, ctype: res.headers["content-type"] ?? "", body: typeof init.body === "string" ? init.body : "" });
          const noBody = [101, 204, 205, 304].includes(res.statusCode) || method === "HEAD";
          if (noBody) res.resume();
          resolvePromise(new Response(noBody ? null : Readable.toWeb(res), { status: res.statusCode, statusText: res.statusMessage, headers: h }));
        },
      );
      if (init.signal) {
        if (init.signal.aborted) {
          reject(init.signal.reason ?? new Error("aborted"));
          return;
        }
        init.signal.addEventListener("abort", () => r.destroy(init.signal.reason ?? new Error("aborted")), { once: true });
      }
      r.setTimeout(REQUEST_TIMEOUT_MS, () => r.destroy(new Error(`${method} ${url} timed out`)));
      r.on("error", reject);
      r.end(payload);
    });
}

const api = (path) => `/api/v1${path}`;
const P = { "X-DevStream-Project": PROJECT };
const brief = (r) => `${r.status} ${r.headers["content-type"] ?? ""} ${r.text.slice(0, 300)}`;

function checkSecurityHeaders(r, where) {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    check(r.headers[name] === value, `${where}: ${name} should be ${JSON.stringify(value)}, got ${JSON.stringify(r.headers[name])}`);
  }
  check(r.headers.server === "nginx", `${where}: Server should be "nginx" without a version (server_tokens off), got ${JSON.stringify(r.headers.server)}`);
}

// ---------------------------------------------------------------- setup

function makeCertificates() {
  const ext = join(tmp, "server.ext");
  writeFileSync(ext, ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment", "extendedKeyUsage=serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost", ""].join("\n"));
  run(openssl, ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=DevStream stack_e2e test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
  run(openssl, ["req", "-newkey", "rsa:2048", "-nodes", "-sha256", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
  run(openssl, ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-sha256", "-extfile", ext, "-out", "server.pem"]);
}

const DB = () => join(tmp, "devstream.db");
const appEnv = {
  DEVSTREAM_SERVICE_MODE: "api",
  DEVSTREAM_TRUSTED_PROXIES: "127.0.0.1",
  DEVSTREAM_EMBEDDING_PROVIDER: "hash",
  DEVSTREAM_THREADS: "2",
  DEVSTREAM_LOG_LEVEL: "info",
};

function renderNginx() {
  const env = {
    NGINX_UPSTREAMS: apis.map((a) => `127.0.0.1:${a.port}`).join(" "),
    NGINX_SERVER_NAME: "localhost 127.0.0.1",
    NGINX_HTTP_PORT: String(HTTP_PORT),
    NGINX_HTTPS_PORT: String(HTTPS_PORT),
    NGINX_LISTEN_ADDRESSES: "127.0.0.1",
    NGINX_TLS_CERT: join(tmp, "server.pem"),
    NGINX_TLS_KEY: join(tmp, "server.key"),
    NGINX_METRICS_ALLOW: "127.0.0.1 127.0.0.3",
    NGINX_RATE: RATE,
    NGINX_BURST: String(BURST),
    NGINX_USER: userInfo().username,
    NGINX_RUNTIME_DIR: join(tmp, "nginx"),
    NGINX_LOG_DIR: join(tmp, "nginx", "logs"),
  };
  run("sh", [renderScript, join(tmp, "nginx.conf")], env);
  const conf = readFileSync(join(tmp, "nginx.conf"), "utf8");
  check(!conf.includes("@@"), "the rendered nginx.conf should have no placeholder left");
}

const apis = []; // { p, port }
let worker = null;
let nginxProc = null;

async function setup() {
  makeCertificates();
  agent = new https.Agent({ ca: readFileSync(join(tmp, "ca.pem")), keepAlive: true, maxSockets: 64 });
  run(binary, ["migrate", "up", "--db", DB()], appEnv);

  const listening = /DevStream listening on http:\/\/127\.0\.0\.1:(\d+)/;
  const started = await Promise.all([
    start("api-1", binary, ["serve", "--host", "127.0.0.1", "--port", "0", "--db", DB()], appEnv, listening),
    start("api-2", binary, ["serve", "--host", "127.0.0.1", "--port", "0", "--db", DB()], appEnv, listening),
    start("worker", binary, ["worker", "--db", DB()], { ...appEnv, DEVSTREAM_SERVICE_MODE: "task_engine" }, /DevStream worker \S+ running/),
  ]);
  for (const p of started.slice(0, 2)) apis.push({ p, port: Number(p.match[1]) });
  worker = started[2];
  check(apis[0].p.out.includes("mode api") && apis[1].p.out.includes("mode api"), `the API processes should run in mode api: ${apis.map((a) => a.p.out.trim()).join(" | ")}`);

  HTTPS_PORT = await freePort();
  do HTTP_PORT = await freePort();
  while (HTTP_PORT === HTTPS_PORT);
  renderNginx();
  nginxProc = await start("nginx", nginx, ["-p", `${tmp}/nginx/`, "-c", join(tmp, "nginx.conf"), "-e", join(tmp, "nginx", "logs", "startup.log"), "-g", "daemon off;"], {}, null);
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let last = null;
  while (Date.now() < deadline && !nginxProc.exit) {
    last = await req("GET", "/health/live");
    if (last.status === 200) break;
    await sleep(100);
  }
  if (last?.status !== 200) {
    const log = (f) => (existsSync(f) ? readFileSync(f, "utf8").slice(-3000) : "(none)");
    throw new Error(`nginx did not answer https://127.0.0.1:${HTTPS_PORT}/health/live with 200 (last: ${last ? brief(last) : "none"}; exit ${JSON.stringify(nginxProc.exit)}); stderr: ${nginxProc.err.slice(-2000)} error.log: ${log(join(tmp, "nginx", "logs", "error.log"))}`);
  }
}

// ---------------------------------------------------------------- scenario

const state = {};

async function restScenario() {
  // health, through nginx, with the worker's heartbeat
  const health = await req("GET", "/health");
  check(health.status === 200 && health.json?.status === "healthy", `GET /health should be 200 healthy, got ${brief(health)}`);
  check(health.json?.components?.tasks?.workers >= 1, `GET /health should count the worker: ${health.text.slice(0, 400)}`);
  checkSecurityHeaders(health, "GET /health");
  check(/^[0-9a-f]{32}$/.test(health.headers["x-request-id"] ?? ""), `a request without X-Request-Id should get a generated one, got ${health.headers["x-request-id"]}`);
  const withId = await req("GET", "/health/live", { headers: { "X-Request-Id": "stack-e2e-1" } });
  check(withId.status === 200 && withId.headers["x-request-id"] === "stack-e2e-1", `X-Request-Id should pass through nginx, got ${withId.status} ${withId.headers["x-request-id"]}`);

  // plan, phase, tasks
  const plan = await req("POST", api("/plans"), { headers: P, body: { title: "Ship behind nginx", priority: 7 } });
  check(plan.status === 201 && /^pln_/.test(plan.json?.id ?? ""), `POST /plans should be 201 with a plan, got ${brief(plan)}`);
  checkSecurityHeaders(plan, "POST /plans");
  state.plan = plan.json?.id ?? "pln_missing";
  const phase = await req("POST", api(`/plans/${state.plan}/phases`), { headers: P, body: { name: "Build" } });
  check(phase.status === 201 && /^phs_/.test(phase.json?.id ?? "") && phase.json?.plan_id === state.plan, `POST /plans/{id}/phases should be 201 with the phase, got ${brief(phase)}`);
  state.phase = phase.json?.id ?? "phs_missing";
  const tasks = [];
  for (const [title, priority] of [["Write the nginx template", 9], ["Write the e2e test", 5]]) {
    const t = await req("POST", api(`/phases/${state.phase}/tasks`), { headers: P, body: { title, priority } });
    check(t.status === 201 && /^tsk_/.test(t.json?.id ?? "") && t.json?.status === "pending", `POST /phases/{id}/tasks (${title}) should be 201 pending, got ${brief(t)}`);
    tasks.push(t.json?.id);
  }

  // claims: the higher priority first, then the other, then nothing
  const c1 = await req("POST", api("/tasks/claim"), { headers: P, body: { agent: "stack-e2e", lease_seconds: 120 } });
  check(c1.status === 200 && c1.json?.id === tasks[0] && c1.json?.status === "active" && c1.json?.lease_owner === "stack-e2e", `the first claim should return "Write the nginx template" active and leased to stack-e2e, got ${brief(c1)}`);
  const c2 = await req("POST", api("/tasks/claim"), { headers: P, body: { agent: "stack-e2e-2" } });
  check(c2.status === 200 && c2.json?.id === tasks[1] && c2.json?.lease_owner === "stack-e2e-2", `the second claim should return the other task, got ${brief(c2)}`);
  const c3 = await req("POST", api("/tasks/claim"), { headers: P, body: { agent: "stack-e2e-3" } });
  check(c3.status === 204 && c3.body.length === 0, `a third claim should be 204 without a body, got ${brief(c3)}`);

  // memory: stored through one process, found through whichever answers
  const content = "Decision: nginx terminates TLS (zirconium-kestrel) and balances over two API processes.";
  const mem = await req("POST", api("/memories"), { headers: P, body: { content, content_type: "context" } });
  check(mem.status === 201 && Number.isInteger(mem.json?.id), `POST /memories should be 201 with an id, got ${brief(mem)}`);
  state.memory = mem.json?.id;
  for (let i = 0; i < 2; ++i) {
    const found = await req("POST", api("/search"), { headers: P, body: { query: "zirconium-kestrel nginx TLS", limit: 5 } });
    check(found.status === 200 && found.json?.results?.some((h) => h.id === state.memory), `POST /search (${i + 1}) should find memory ${state.memory}, got ${brief(found)}`);
  }

  // gzip for JSON
  const doc = await req("GET", "/openapi.json", { headers: { "Accept-Encoding": "gzip" } });
  check(doc.status === 200 && doc.headers["content-encoding"] === "gzip", `GET /openapi.json with Accept-Encoding gzip should be gzipped, got ${doc.status} content-encoding ${doc.headers["content-encoding"]}`);
  check((doc.headers.vary ?? "").includes("Accept-Encoding"), `a gzipped answer should say Vary: Accept-Encoding, got ${doc.headers.vary}`);
  let parsed = null;
  try {
    parsed = JSON.parse(gunzipSync(doc.body).toString("utf8"));
  } catch (e) {
    parsed = null;
  }
  check(typeof parsed?.openapi === "string", "the gzipped /openapi.json should decompress to the OpenAPI document");

  // the body limit (1 MiB) is enforced by nginx already
  const big = await req("POST", api("/memories"), { headers: P, body: { content: "x".repeat(1_100_000), content_type: "context" } });
  check(big.status === 413 && big.headers["content-type"] === "application/problem+json" && big.json?.status === 413 && /larger than 1m/.test(big.json?.detail ?? ""), `a body over 1 MiB should get 413 problem+json from nginx (client_max_body_size 1m), got ${brief(big)}`);
  check(big.headers["x-request-id"] === undefined, `the 413 should come from nginx, not from the app (it has X-Request-Id ${big.headers["x-request-id"]})`);
  checkSecurityHeaders(big, "413");

  // plain HTTP: a redirect to the same URL over HTTPS
  const redirect = await req("GET", "/api/v1/plans?limit=1", { plain: true, headers: { Host: `127.0.0.1:${HTTP_PORT}` } });
  check(redirect.status === 301 && redirect.headers.location === `https://127.0.0.1:${HTTPS_PORT}/api/v1/plans?limit=1`, `http://…/api/v1/plans?limit=1 should be 301 to https://127.0.0.1:${HTTPS_PORT}/api/v1/plans?limit=1, got ${redirect.status} Location ${redirect.headers.location}`);
  const redirectPost = await req("POST", "/mcp", { plain: true, body: {} });
  check(redirectPost.status === 301 && redirectPost.headers.location === `https://127.0.0.1:${HTTPS_PORT}/mcp`, `POST http://…/mcp should be 301 to https, got ${redirectPost.status} ${redirectPost.headers.location}`);
}

async function metricsScenario() {
  const allowed = await req("GET", "/metrics", { headers: { Accept: "text/plain" } });
  check(allowed.status === 200 && /^devstream_build_info\{version="[^"]+"\} 1$/m.test(allowed.text), `GET /metrics from 127.0.0.1 (allowed) should be 200 Prometheus text, got ${allowed.status} ${allowed.text.slice(0, 200)}`);

  // 127.0.0.2 is not in NGINX_METRICS_ALLOW: nginx answers, the app never sees it
  const refused = await req("GET", "/metrics", { from: "127.0.0.2" });
  check(refused.status === 403 && refused.headers["content-type"] === "application/problem+json" && /not served to your address/.test(refused.json?.detail ?? ""), `GET /metrics from 127.0.0.2 should be refused by nginx with 403 problem+json, got ${brief(refused)}`);
  check(refused.headers["x-request-id"] === undefined, `the 403 for 127.0.0.2 should come from nginx, not from the app (it has X-Request-Id ${refused.headers["x-request-id"]})`);
  checkSecurityHeaders(refused, "403 /metrics");

  // 127.0.0.3 passes nginx; the app refuses it because X-Forwarded-For told
  // it the client is 127.0.0.3 (not in its metrics.allowed_addresses)
  const forwarded = await req("GET", "/metrics", { from: "127.0.0.3", headers: { "X-Request-Id": "stack-e2e-xff" } });
  check(forwarded.status === 403 && /metrics\.allowed_addresses/.test(forwarded.json?.detail ?? "") && forwarded.headers["x-request-id"] === "stack-e2e-xff", `GET /metrics from 127.0.0.3 should reach the app and be refused by it (it sees the forwarded address), got ${brief(forwarded)}`);
  // (the app writes its access log line after the response)
  const findLogged = () => apis.map((a) => a.p.err).join("\n").split("\n").find((l) => l.includes('"stack-e2e-xff"'));
  for (let i = 0; i < 50 && !findLogged(); ++i) await sleep(100);
  const logged = findLogged();
  check(logged && /"remote":"127\.0\.0\.3"/.test(logged), `the app's access log should show the forwarded client 127.0.0.3 for request stack-e2e-xff, got ${logged}`);
  const anyAppSaw2 = apis.some((a) => /"route":"\/metrics"[^\n]*"remote":"127\.0\.0\.2"/.test(a.p.err));
  check(!anyAppSaw2, "no API process should have seen /metrics from 127.0.0.2");
}

async function mcpScenario() {
  const from = "127.0.0.6"; // its own rate-limit bucket
  const transport = new StreamableHTTPClientTransport(new URL(`${base()}/mcp`), { fetch: httpsFetch(from), requestInit: { headers: P } });
  const client = new Client({ name: "stack-e2e", version: "1.0.0" }, { capabilities: {} });
  try {
    await client.connect(transport, { timeout: REQUEST_TIMEOUT_MS });
    check(client.getServerVersion()?.name === "devstream", `MCP initialize should name the devstream server, got ${JSON.stringify(client.getServerVersion())}`);
    check(typeof transport.sessionId === "string" && transport.sessionId.length >= 16, "MCP initialize should open a session");
    // Several requests: with two processes behind nginx, each must reach the
    // process that holds the session (a stray one would answer 404).
    for (let i = 0; i < 4; ++i) {
      const listed = await client.listTools({}, { timeout: REQUEST_TIMEOUT_MS });
      const names = listed.tools.map((t) => t.name);
      check(names.length === 10 && names.includes("devstream_next_task") && names.includes("devstream_search_memory"), `MCP tools/list (${i + 1}) should list the 10 tools, got ${names.join(", ")}`);
    }
    // A progress token makes the server answer with an SSE stream: through
    // the unbuffered /mcp location the progress arrives, then the result.
    const progress = [];
    const before = mcpLog.length;
    const res = await client.callTool({ name: "devstream_search_memory", arguments: { query: "zirconium-kestrel", limit: 3 } }, undefined, { timeout: REQUEST_TIMEOUT_MS, onprogress: (p) => progress.push(p) });
    check(res.isError === false && res.structuredContent?.results?.some((h) => h.id === state.memory), `MCP devstream_search_memory should find memory ${state.memory}: ${JSON.stringify(res).slice(0, 400)}`);
    const post = mcpLog.slice(before).find((r) => r.method === "POST" && r.body.includes("progressToken"));
    check(post?.status === 200 && post.ctype.startsWith("text/event-stream"), `a tools/call with a progress token should be answered as text/event-stream through nginx, got ${JSON.stringify(post)}`);
    check(progress.length >= 1, `the progress notification should arrive through nginx, got ${JSON.stringify(progress)}`);
    const plans = await client.callTool({ name: "devstream_list_plans", arguments: {} }, undefined, { timeout: REQUEST_TIMEOUT_MS });
    check(plans.structuredContent?.items?.some((p) => p.id === state.plan), `MCP devstream_list_plans should list the plan created over REST: ${JSON.stringify(plans).slice(0, 300)}`);
    check(mcpLog.every((r) => r.status < 500), `no MCP request should get a 5xx: ${JSON.stringify(mcpLog.map((r) => `${r.method} ${r.status}`))}`);
    check(mcpLog.every((r) => r.status !== 404), `no MCP request should lose its session (404): ${JSON.stringify(mcpLog.map((r) => `${r.method} ${r.status}`))}`);
    await transport.terminateSession();
  } catch (e) {
    check(false, `MCP over https://127.0.0.1:${HTTPS_PORT}/mcp failed: ${e.constructor?.name} ${e.code ?? ""} ${e.message}; requests: ${JSON.stringify(mcpLog.map((r) => `${r.method} ${r.status} ${r.ctype}`))}`);
  } finally {
    await withTimeout(client.close(), EXIT_TIMEOUT_MS, "MCP client close").catch((e) => check(false, e.message));
  }
}

async function burstScenario() {
  const from = "127.0.0.4"; // a fresh bucket: BURST (+1) requests pass, the rest get 429
  // Open the connections first (the health checks are not limited), so that
  // the burst itself is not spread out by TLS handshakes.
  const warm = await Promise.all(Array.from({ length: BURST_REQUESTS }, () => req("GET", "/health/live", { from })));
  check(warm.every((r) => r.status === 200), `/health/live should never be rate limited, got ${[...new Set(warm.map((r) => r.status))].join(",")}`);
  const t = Date.now();
  const results = await Promise.all(Array.from({ length: BURST_REQUESTS }, () => req("GET", "/version", { from })));
  const elapsed = (Date.now() - t) / 1000;
  const count = (s) => results.filter((r) => r.status === s).length;
  const summary = `${JSON.stringify(results.reduce((m, r) => ({ ...m, [r.status]: (m[r.status] ?? 0) + 1 }), {}))} in ${elapsed.toFixed(2)} s`;
  // At most the burst, the request nginx always lets through, and what the
  // rate refills while the burst lasts.
  const most = BURST + 1 + Math.ceil(RATE_PER_S * elapsed) + 1;
  check(count(429) >= 1, `a burst of ${BURST_REQUESTS} concurrent requests (limit ${RATE}, burst ${BURST}) should get 429s, got ${summary}`);
  check(count(200) >= BURST && count(200) <= most, `between ${BURST} and ${most} requests of the burst should pass, got ${summary}`);
  check(count(200) + count(429) === BURST_REQUESTS, `a burst should get only 200 and 429 (no 5xx, no error), got ${summary}`);
  const limited = results.find((r) => r.status === 429);
  if (limited) {
    check(limited.headers["content-type"] === "application/problem+json" && limited.json?.status === 429, `a 429 should be problem+json, got ${brief(limited)}`);
    check(limited.headers["retry-after"] === "1", `a 429 should carry Retry-After: 1, got ${limited.headers["retry-after"]}`);
    checkSecurityHeaders(limited, "429");
  }
  // The health checks are not limited.
  const health = await req("GET", "/health/ready", { from });
  check(health.status === 200, `/health/ready should not be rate limited, got ${brief(health)}`);
}

async function failoverScenario() {
  const [gone, stays] = apis;
  await stop(gone.p, "SIGTERM"); // drains, then exits 0
  const from = "127.0.0.5";
  const statuses = [];
  for (let i = 0; i < FAILOVER_REQUESTS; ++i) {
    let r;
    if (i % 3 === 0) r = await req("GET", "/health", { from });
    else if (i % 3 === 1) r = await req("GET", api(`/plans/${state.plan}`), { from, headers: P });
    else r = await req("POST", api(`/phases/${state.phase}/tasks`), { from, headers: P, body: { title: `after failover ${i}` } });
    statuses.push(r.status);
    const want = i % 3 === 2 ? 201 : 200;
    check(r.status === want, `request ${i + 1} after stopping api-1 should be ${want}, got ${brief(r)}`);
    if (i % 3 === 1) check(r.json?.id === state.plan, `GET /plans/{id} after stopping api-1 should return the plan, got ${brief(r)}`);
  }
  check(!stays.p.exit, "api-2 should still run");
  // nginx did try the stopped process (and went on to the other one)
  const errorLog = readFileSync(join(tmp, "nginx", "logs", "error.log"), "utf8");
  check(errorLog.includes(`connect() failed (111: Connection refused) while connecting to upstream`) && errorLog.includes(`upstream: "http://127.0.0.1:${gone.port}/`), `nginx's error.log should show a refused connection to the stopped api-1 (127.0.0.1:${gone.port}), i.e. a request that failed over`);
  console.log(`  after SIGTERM to api-1: ${statuses.length} requests, statuses ${[...new Set(statuses)].join(",")}`);
}

async function teardown() {
  await stop(nginxProc, "SIGQUIT"); // graceful: finishes what is in flight
  check(!existsSync(join(tmp, "nginx", "nginx.pid")), "nginx should remove its pid file on exit");
  await Promise.all([stop(apis[1].p), stop(worker)]);
  agent?.destroy();

  // nginx's access log: JSON lines, the health checks left out, the 429s in
  const logFile = join(tmp, "nginx", "logs", "access.log");
  const lines = existsSync(logFile) ? readFileSync(logFile, "utf8").split("\n").filter(Boolean) : [];
  let entries = [];
  try {
    entries = lines.map((l) => JSON.parse(l));
    check(entries.length > 0, "nginx's access log should have lines");
  } catch (e) {
    check(false, `nginx's access log should be JSON lines: ${e.message}: ${lines.slice(0, 3).join("\n")}`);
  }
  check(!entries.some((e) => /^\/health(\/|$)/.test(e.uri ?? "")), "nginx should not log the health checks");
  check(entries.some((e) => e.status === 429 && e.remote_addr === "127.0.0.4"), "nginx's access log should show the 429s of 127.0.0.4");
  check(entries.some((e) => e.request_id === "stack-e2e-xff"), "nginx's access log should carry the client's X-Request-Id");
}

// ---------------------------------------------------------------- main

const t0 = Date.now();
const step = async (name, fn) => {
  const t = Date.now();
  await fn();
  console.log(`${failures.length ? "..." : "ok "} ${name} (${Date.now() - t} ms)`);
};
try {
  await step("setup: certificates, migrations, 2 API processes, worker, nginx", setup);
  console.log(`  nginx https://127.0.0.1:${HTTPS_PORT} http://127.0.0.1:${HTTP_PORT} -> 127.0.0.1:${apis[0].port}, 127.0.0.1:${apis[1].port}`);
  await step("REST through HTTPS: health, plan, phase, tasks, claims, memory, search, gzip, 413, redirect", restScenario);
  await step("/metrics allow list and X-Forwarded-For", metricsScenario);
  await step("MCP over https /mcp with the SDK", mcpScenario);
  await step("rate limit burst", burstScenario);
  await step("one API process stopped", failoverScenario);
  await step("teardown", teardown);
} catch (e) {
  check(false, `stopped early: ${e.stack ?? e.message}`);
}
clearTimeout(watchdog);
if (failures.length) {
  console.log(`stack_e2e: ${failures.length} of ${checks} checks failed (${Date.now() - t0} ms)`);
  process.exit(1);
}
console.log(`stack_e2e: all ${checks} checks passed (${Date.now() - t0} ms)`);
process.exit(0);
