// MCP end-to-end test: usage `node mcp_e2e.mjs DEVSTREAM_BINARY`.
// Drives DevStream's MCP server with the official TypeScript SDK client
// (@modelcontextprotocol/sdk) over its three transports, each on a
// temporary database:
//   stdio  `devstream mcp --db <tmp>/e2e.db --project e2e`
//   http   Streamable HTTP at http://HOST:PORT/mcp of `devstream serve --port 0
//          --db <tmp>/e2e2.db`
//   relay  `devstream mcp` with DEVSTREAM_URL pointing at that server
// For each: initialize (server name, negotiated protocol version), tools/list
// (the 10 tools, each with object input and output schemas), every tool called
// with good arguments (isError false, structuredContent — which the SDK
// validates against the tool's outputSchema — and the expected effect) and
// with bad ones (missing required field, wrong type, unknown id: an isError
// result whose text names the problem, not a protocol error), and an unknown
// tool name (McpError -32602). Over HTTP also the transport rules: a foreign
// Origin is refused (403), an unknown Mcp-Session-Id is 404, GET /mcp is 405,
// an unsupported MCP-Protocol-Version is 400, a request with a progress token
// is answered as an SSE stream (progress, then the result), DELETE ends the
// session. Every child process is killed on exit; everything has a timeout.
// Exits 0 when all checks pass, 1 with the list of failures otherwise.
import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants as fsConstants, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const TOTAL_TIMEOUT_MS = 240_000;
const REQUEST_TIMEOUT_MS = 30_000; // sanitizer builds are slow
const STARTUP_TIMEOUT_MS = 30_000;
const EXIT_TIMEOUT_MS = 15_000;
const VERBOSE = !!process.env.MCP_E2E_VERBOSE; // print every error text

const TOOL_NAMES = [
  "devstream_list_tasks",
  "devstream_create_task",
  "devstream_update_task",
  "devstream_list_plans",
  "devstream_store_memory",
  "devstream_search_memory",
  "devstream_create_plan",
  "devstream_next_task",
  "devstream_get_context",
  "devstream_forget_memory",
];
const missing = (prefix) => `${prefix}_0000000000000000000000000Z`; // well-formed, never exists

function fatal(message) {
  console.error(`mcp_e2e: ${message}`);
  process.exit(1);
}

// ---------------------------------------------------------------- setup

const binary = process.argv[2];
if (!binary) fatal("usage: node mcp_e2e.mjs DEVSTREAM_BINARY");
if (!existsSync(binary)) fatal(`no devstream binary at ${binary}`);
try {
  accessSync(binary, fsConstants.X_OK);
} catch {
  fatal(`${binary} is not executable (an interrupted or failed link?); rebuild the devstream target`);
}
if (typeof fetch !== "function") fatal(`Node ${process.version} has no global fetch; Node 18 or later is required`);

let Client, StdioClientTransport, StreamableHTTPClientTransport, McpError, LATEST_PROTOCOL_VERSION;
try {
  ({ Client } = await import("@modelcontextprotocol/sdk/client/index.js"));
  ({ StdioClientTransport } = await import("@modelcontextprotocol/sdk/client/stdio.js"));
  ({ StreamableHTTPClientTransport } = await import("@modelcontextprotocol/sdk/client/streamableHttp.js"));
  ({ McpError, LATEST_PROTOCOL_VERSION } = await import("@modelcontextprotocol/sdk/types.js"));
} catch (e) {
  fatal(`missing @modelcontextprotocol/sdk (${e.message.split("\n")[0]}); run \`make test-deps\` or \`cd tests/node && npm ci\``);
}

const tmp = mkdtempSync(join(tmpdir(), "devstream-mcp-e2e-"));
const children = new Map(); // pid -> label: killed on exit
const failures = [];
const clients = [];
let checks = 0;

function check(cond, message) {
  ++checks;
  if (!cond) {
    failures.push(message);
    console.log(`FAIL ${message}`);
  }
  return !!cond;
}

function killChildren() {
  for (const pid of children.keys()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  children.clear();
}

process.on("exit", () => {
  killChildren();
  rmSync(tmp, { recursive: true, force: true });
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    console.error(`mcp_e2e: ${sig}; stopping`);
    process.exit(1);
  });
}
const watchdog = setTimeout(() => {
  console.log(`FAIL the run exceeded ${TOTAL_TIMEOUT_MS} ms`);
  process.exit(1);
}, TOTAL_TIMEOUT_MS);

// The environment of spawned processes: no inherited DevStream settings
// (a stray DEVSTREAM_URL would turn the stdio server into a relay).
function childEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("DEVSTREAM_") && !/^(OPENAI_API_KEY|OLLAMA_HOST)$/.test(k)) env[k] = v;
  }
  return { ...env, DEVSTREAM_EMBEDDING_PROVIDER: "hash", ...extra };
}

const SANITIZER = /ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|runtime error:|SUMMARY: \w+Sanitizer/;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------- the HTTP server

const server = { proc: null, stderr: "", exit: null, base: "" };

function startServer(dbPath, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ["serve", "--host", "127.0.0.1", "--port", "0", "--db", dbPath], {
      stdio: ["ignore", "pipe", "pipe"],
      env: childEnv(env),
    });
    server.proc = child;
    if (child.pid) children.set(child.pid, "serve");
    let out = "";
    const timer = setTimeout(() => reject(new Error(`devstream serve did not print its address within ${STARTUP_TIMEOUT_MS} ms; stdout: ${out} stderr: ${server.stderr}`)), STARTUP_TIMEOUT_MS);
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d) => {
      server.stderr += d;
      if (server.stderr.length > 400_000) server.stderr = server.stderr.slice(-200_000);
    });
    child.stdout.on("data", (d) => {
      out += d;
      const m = /DevStream listening on (http:\/\/[^\s:/]+:(\d+))/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${binary} serve: ${e.message}`));
    });
    child.on("exit", (code, signal) => {
      server.exit = { code, signal };
      children.delete(child.pid);
      clearTimeout(timer);
      reject(new Error(`devstream serve exited early (code ${code}, signal ${signal}); stderr: ${server.stderr.slice(-4000)}`));
    });
  });
}

async function stopServer() {
  const child = server.proc;
  if (!child || server.exit) return;
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  child.kill("SIGTERM");
  let result = await withTimeout(exited, EXIT_TIMEOUT_MS, "devstream serve shutdown").catch(() => null);
  if (!result) {
    check(false, `devstream serve did not exit within ${EXIT_TIMEOUT_MS} ms of SIGTERM`);
    child.kill("SIGKILL");
    result = await exited;
  }
  server.exit = result;
  children.delete(child.pid);
  check(result.code === 0 && !result.signal, `devstream serve exited with code ${result.code} signal ${result.signal} after SIGTERM; stderr:\n${server.stderr.slice(-4000)}`);
  check(!SANITIZER.test(server.stderr), `devstream serve reported a sanitizer error:\n${server.stderr.slice(-6000)}`);
}

// ---------------------------------------------------------------- clients

// Connects a new SDK client; returns it with the messages it received
// (the initialize response among them) and, for stdio, the child process.
async function connect(label, transport) {
  const received = [];
  transport.onmessage = (m) => received.push(m); // the SDK chains its own handler after this one
  const client = new Client({ name: `mcp-e2e-${label}`, version: "1.0.0" }, { capabilities: {} });
  const entry = { label, client, transport, received, proc: null, stderr: "" };
  clients.push(entry);
  if (transport instanceof StdioClientTransport) {
    transport.stderr?.setEncoding("utf8");
    transport.stderr?.on("data", (d) => {
      entry.stderr += d;
      if (entry.stderr.length > 400_000) entry.stderr = entry.stderr.slice(-200_000);
    });
  }
  try {
    await client.connect(transport, { timeout: REQUEST_TIMEOUT_MS });
  } finally {
    if (transport instanceof StdioClientTransport && transport.pid) {
      children.set(transport.pid, label);
      entry.proc = transport._process ?? null; // to check its exit status
    }
  }
  return entry;
}

// Ends a stdio server the way a client does (end of input) and checks that
// it exits cleanly on its own.
async function closeStdio(entry) {
  const proc = entry.proc;
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
    proc.stdin.end();
    const result = await withTimeout(exited, EXIT_TIMEOUT_MS, `${entry.label} server exit`).catch(() => null);
    check(result && result.code === 0 && !result.signal, `${entry.label}: devstream mcp should exit 0 at end of input, got ${JSON.stringify(result)}; stderr:\n${entry.stderr.slice(-4000)}`);
  }
  await withTimeout(entry.client.close(), EXIT_TIMEOUT_MS, `${entry.label} client close`).catch((e) => check(false, e.message));
  if (entry.proc?.pid) children.delete(entry.proc.pid);
  check(!SANITIZER.test(entry.stderr), `${entry.label}: devstream mcp reported a sanitizer error:\n${entry.stderr.slice(-6000)}`);
}

function checkInitialize(entry) {
  const { label, client, received } = entry;
  const init = received.find((m) => m.id !== undefined && m.result?.protocolVersion !== undefined);
  check(init, `${label}: no initialize result was received`);
  check(init?.result?.protocolVersion === LATEST_PROTOCOL_VERSION, `${label}: negotiated protocol version ${init?.result?.protocolVersion}, expected the client's ${LATEST_PROTOCOL_VERSION}`);
  const info = client.getServerVersion();
  check(info?.name === "devstream" && typeof info?.version === "string" && info.version.length > 0, `${label}: serverInfo should name devstream with a version, got ${JSON.stringify(info)}`);
  check(client.getServerCapabilities()?.tools !== undefined, `${label}: the server should announce the tools capability`);
  check(/devstream_next_task/.test(client.getInstructions() ?? ""), `${label}: initialize should carry instructions that mention the tools`);
  if (entry.transport instanceof StreamableHTTPClientTransport) {
    check(typeof entry.transport.sessionId === "string" && entry.transport.sessionId.length >= 16, `${label}: initialize should open a session (Mcp-Session-Id)`);
  }
}

async function checkListTools(label, client) {
  const listed = await client.listTools({}, { timeout: REQUEST_TIMEOUT_MS });
  const names = listed.tools.map((t) => t.name);
  check(names.length === TOOL_NAMES.length && TOOL_NAMES.every((n) => names.includes(n)), `${label}: tools/list should list exactly ${TOOL_NAMES.join(", ")}; got ${names.join(", ")}`);
  check(listed.nextCursor === undefined, `${label}: all tools fit on one page (nextCursor ${listed.nextCursor})`);
  for (const t of listed.tools) {
    check(t.inputSchema?.type === "object", `${label}: ${t.name} inputSchema.type should be "object"`);
    check(t.outputSchema?.type === "object", `${label}: ${t.name} outputSchema.type should be "object"`);
    check(!JSON.stringify(t.inputSchema).includes("$ref") && !JSON.stringify(t.outputSchema ?? {}).includes("$ref"), `${label}: ${t.name} schemas should have every $ref inlined`);
    check(typeof t.description === "string" && t.description.length > 20, `${label}: ${t.name} should have a description`);
    check(typeof t.annotations?.readOnlyHint === "boolean", `${label}: ${t.name} should have a readOnlyHint annotation`);
  }
  return listed.tools;
}

const textOf = (res) => (res?.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n");

// A call that must succeed. Returns the result, or null after recording a failure.
async function good(label, client, name, args, options = {}) {
  const where = `${label}: ${name}(${JSON.stringify(args).slice(0, 200)})`;
  let res;
  try {
    res = await client.callTool({ name, arguments: args }, undefined, { timeout: REQUEST_TIMEOUT_MS, ...options });
  } catch (e) {
    check(false, `${where} threw ${e.constructor?.name} ${e.code ?? ""}: ${e.message}`);
    return null;
  }
  const ok = check(res.isError === false, `${where} should succeed (isError false), got isError ${res.isError}: ${textOf(res)}`);
  check(res.structuredContent && typeof res.structuredContent === "object", `${where} should return structuredContent`);
  check(textOf(res).length > 0, `${where} should return a text block`);
  return ok ? res : null;
}

// A call that must fail as a tool execution error: isError true, a text
// that starts with "Error:" and mentions each of `mentions`.
async function bad(label, client, name, args, mentions) {
  const where = `${label}: ${name}(${JSON.stringify(args).slice(0, 200)})`;
  let res;
  try {
    res = await client.callTool({ name, arguments: args }, undefined, { timeout: REQUEST_TIMEOUT_MS });
  } catch (e) {
    check(false, `${where} should answer an isError result, but threw ${e.constructor?.name} ${e.code ?? ""}: ${e.message}`);
    return;
  }
  const text = textOf(res);
  if (VERBOSE) console.log(`     ${where} -> ${text}`);
  check(res.isError === true, `${where} should fail with isError true, got ${res.isError}: ${text.slice(0, 300)}`);
  check(res.structuredContent === undefined, `${where}: an error result carries no structuredContent`);
  check(/^Error: \S/.test(text), `${where}: the error text should start with "Error:", got ${JSON.stringify(text.slice(0, 300))}`);
  for (const m of [].concat(mentions)) {
    check(text.includes(m), `${where}: the error text should mention ${JSON.stringify(m)} to help fix the call, got ${JSON.stringify(text.slice(0, 300))}`);
  }
}

// Every tool with good and bad arguments, in the transport's default project
// `project` (the tools fall back to it when a call names none).
async function toolScenario(label, client, project, callOptions = {}) {
  const tools = await checkListTools(label, client);
  check(tools.length === 10, `${label}: 10 tools`);

  // ---- create_plan, list_plans ----
  const planRes = await good(label, client, "devstream_create_plan", {
    title: `Parser plan (${label})`,
    description: "Build and ship the config parser",
    status: "active",
    priority: 7,
    phases: [
      {
        name: "Build",
        tasks: [
          { title: "Write parser", description: "Recursive descent parser for the config format", priority: 9, task_type: "coding" },
          { title: "Test parser", task_type: "testing", depends_on: ["Write parser"] },
        ],
      },
      { name: "Ship", tasks: [{ title: "Release notes", task_type: "documentation" }] },
    ],
  }, callOptions);
  const created = planRes?.structuredContent ?? {};
  const plan = created.plan;
  check(plan && typeof plan.id === "string" && plan.title === `Parser plan (${label})`, `${label}: create_plan should return the plan`);
  check(created.phases?.length === 2 && created.tasks?.length === 3, `${label}: create_plan should create 2 phases and 3 tasks, got ${created.phases?.length} and ${created.tasks?.length}`);
  const [write, test] = created.tasks ?? [];
  check(test?.depends_on?.some((d) => d.id === write?.id), `${label}: "Test parser" should depend on "Write parser" (resolved by title)`);
  check(created.phases?.[1]?.depends_on?.includes(created.phases?.[0]?.id), `${label}: phases are sequential by default`);
  check(/Created plan pln_/.test(textOf(planRes)), `${label}: create_plan text: ${textOf(planRes)}`);

  const plans = await good(label, client, "devstream_list_plans", {});
  check(plans?.structuredContent?.items?.some((p) => p.id === plan?.id), `${label}: list_plans (default project ${project}) should find the new plan`);
  check(textOf(plans).includes(plan?.id ?? "?"), `${label}: list_plans text should list the plan id`);
  const plansExplicit = await good(label, client, "devstream_list_plans", { project, status: "active", limit: 10 });
  check(plansExplicit?.structuredContent?.items?.some((p) => p.id === plan?.id), `${label}: list_plans with project ${project} and status active should find the plan`);
  check("next_cursor" in (plansExplicit?.structuredContent ?? {}), `${label}: list_plans structuredContent has next_cursor`);

  // ---- create_task, list_tasks ----
  const shipPhase = created.phases?.[1];
  const docsRes = await good(label, client, "devstream_create_task", { phase_id: shipPhase?.id ?? missing("phs"), title: "Update docs", priority: 3, task_type: "documentation" });
  const docs = docsRes?.structuredContent;
  check(docs?.phase_id === shipPhase?.id && docs?.status === "pending" && docs?.title === "Update docs", `${label}: create_task should add a pending task to the phase`);

  const listed = await good(label, client, "devstream_list_tasks", { plan_id: plan?.id ?? missing("pln") });
  check(listed?.structuredContent?.items?.length === 4, `${label}: list_tasks of the plan should return 4 tasks, got ${listed?.structuredContent?.items?.length}`);
  const ready = await good(label, client, "devstream_list_tasks", { ready: true });
  const readyIds = (ready?.structuredContent?.items ?? []).map((t) => t.id);
  check(readyIds.length === 1 && readyIds[0] === write?.id, `${label}: only "Write parser" should be ready, got ${JSON.stringify(readyIds)}`);
  const pendingTesting = await good(label, client, "devstream_list_tasks", { status: "pending", task_type: "testing", limit: 5 });
  check(pendingTesting?.structuredContent?.items?.length === 1 && pendingTesting.structuredContent.items[0].id === test?.id, `${label}: list_tasks status=pending task_type=testing should find "Test parser"`);

  // ---- store_memory, search_memory ----
  const memContent = `Decision (${label}): the config parser is a hand-written recursive descent parser; no generator.`;
  const stored = await good(label, client, "devstream_store_memory", { content: memContent, content_type: "decision", keywords: ["parser", "recursive-descent"] }, callOptions);
  const memory = stored?.structuredContent;
  check(Number.isInteger(memory?.id) && memory?.deduplicated === false && memory?.source === "mcp", `${label}: store_memory should store a new memory from source mcp: ${JSON.stringify(memory)?.slice(0, 300)}`);
  const again = await good(label, client, "devstream_store_memory", { content: memContent, content_type: "decision" });
  check(again?.structuredContent?.deduplicated === true && again.structuredContent.id === memory?.id, `${label}: storing the same content again should deduplicate`);
  const found = await good(label, client, "devstream_search_memory", { query: "recursive descent parser", limit: 5 });
  check(found?.structuredContent?.results?.some((h) => h.id === memory?.id), `${label}: search_memory should find the stored memory: ${textOf(found).slice(0, 300)}`);
  check(textOf(found).includes(`memory ${memory?.id}`), `${label}: search_memory text should name the memory`);

  // ---- next_task, update_task ----
  const next = await good(label, client, "devstream_next_task", {}, callOptions);
  const claimed = next?.structuredContent?.task;
  check(claimed?.id === write?.id && claimed?.status === "active" && claimed?.lease_owner === `mcp-e2e-${label}`, `${label}: next_task should claim "Write parser" for the client (lease owner = client name): ${JSON.stringify(claimed)?.slice(0, 300)}`);
  check(Array.isArray(next?.structuredContent?.context), `${label}: next_task returns a context array`);
  check(next?.structuredContent?.context?.some((h) => h.id === memory?.id), `${label}: next_task context should include the parser decision`);
  const patched = await good(label, client, "devstream_update_task", { task_id: write?.id ?? missing("tsk"), notes: "started", priority: 10 });
  check(patched?.structuredContent?.priority === 10 && patched?.structuredContent?.status === "active", `${label}: update_task with fields only should patch the task`);
  const done = await good(label, client, "devstream_update_task", { task_id: write?.id ?? missing("tsk"), status: "completed", note: "Parser written; 40 tests pass." }, callOptions);
  check(done?.structuredContent?.status === "completed" && done?.structuredContent?.lease_owner === null, `${label}: update_task status=completed should complete the task and end its lease`);
  check(/outcome is stored as a memory/.test(textOf(done)), `${label}: completing should say the outcome was stored: ${textOf(done)}`);
  const next2 = await good(label, client, "devstream_next_task", { with_context: false, lease_seconds: 120 });
  check(next2?.structuredContent?.task?.id === test?.id && next2?.structuredContent?.context?.length === 0, `${label}: the second next_task should claim "Test parser" (its dependency is done), without context`);
  await good(label, client, "devstream_update_task", { task_id: test?.id ?? missing("tsk"), status: "completed", note: "tests green" });
  // Phase 2 (Ship) becomes ready once Build is done: two more tasks, then nothing.
  const n3 = await good(label, client, "devstream_next_task", { plan_id: plan?.id ?? missing("pln") });
  const n4 = await good(label, client, "devstream_next_task", { agent: "other-agent" });
  check(n3?.structuredContent?.task?.phase_id === shipPhase?.id && n4?.structuredContent?.task?.lease_owner === "other-agent", `${label}: the Ship phase's tasks should be claimable once Build is done`);
  const none = await good(label, client, "devstream_next_task", {});
  check(none?.structuredContent?.task === null && /No task is ready/.test(textOf(none)), `${label}: next_task with nothing ready should return task null: ${textOf(none)}`);

  // ---- get_context ----
  const ctx = await good(label, client, "devstream_get_context", { query: "how is the config parser built?", token_budget: 500 });
  check(typeof ctx?.structuredContent?.context === "string" && ctx.structuredContent.context.length > 0 && ctx.structuredContent.memory_ids?.includes(memory?.id), `${label}: get_context should assemble the parser decision`);
  check(textOf(ctx).includes("recursive descent"), `${label}: get_context text should be the context itself: ${textOf(ctx).slice(0, 200)}`);

  // ---- forget_memory ----
  const forgot = await good(label, client, "devstream_forget_memory", { memory_id: memory?.id ?? 999_999_999 });
  check(forgot?.structuredContent?.archived === true && forgot?.structuredContent?.id === memory?.id, `${label}: forget_memory should archive the memory`);
  const after = await good(label, client, "devstream_search_memory", { query: "recursive descent parser", content_types: ["decision"] });
  check(!after?.structuredContent?.results?.some((h) => h.id === memory?.id), `${label}: a forgotten memory should leave search`);

  // ---- bad arguments: isError results that say what is wrong ----
  const noTask = missing("tsk");
  await bad(label, client, "devstream_list_tasks", { limit: "ten" }, "limit");
  await bad(label, client, "devstream_list_tasks", { status: "finished" }, ["status", "pending"]);
  await bad(label, client, "devstream_list_tasks", { colour: "red" }, "colour");
  await bad(label, client, "devstream_list_tasks", { project: "no-such-project-e2e" }, ["no-such-project-e2e", "devstream_list"]);
  await bad(label, client, "devstream_create_task", { title: "orphan" }, "phase_id");
  await bad(label, client, "devstream_create_task", { phase_id: 5, title: "x" }, "phase_id");
  await bad(label, client, "devstream_create_task", { phase_id: missing("phs"), title: "x" }, [missing("phs"), "devstream_list"]);
  await bad(label, client, "devstream_update_task", { status: "completed" }, "task_id");
  await bad(label, client, "devstream_update_task", { task_id: 42, status: "completed" }, "task_id");
  await bad(label, client, "devstream_update_task", { task_id: noTask, status: "completed" }, [noTask, "devstream_list"]);
  await bad(label, client, "devstream_update_task", { task_id: write?.id ?? noTask }, "nothing to change");
  await bad(label, client, "devstream_update_task", { task_id: write?.id ?? noTask, status: "active" }, ["completed", "active"]);
  await bad(label, client, "devstream_list_plans", { limit: 0 }, "limit");
  await bad(label, client, "devstream_list_plans", { status: 3 }, "status");
  await bad(label, client, "devstream_list_plans", { project: "no-such-project-e2e" }, "no-such-project-e2e");
  await bad(label, client, "devstream_store_memory", { content_type: "decision" }, "content");
  await bad(label, client, "devstream_store_memory", { content: 17, content_type: "decision" }, "content");
  await bad(label, client, "devstream_store_memory", { content: "x", content_type: "rumour" }, "content_type");
  await bad(label, client, "devstream_search_memory", {}, "query");
  await bad(label, client, "devstream_search_memory", { query: ["parser"] }, "query");
  await bad(label, client, "devstream_create_plan", { description: "no title" }, "title");
  await bad(label, client, "devstream_create_plan", { title: "x", phases: "Build" }, "phases");
  await bad(label, client, "devstream_create_plan", { title: "x", phases: [{ name: "A", tasks: [{ title: "t", depends_on: ["nonexistent earlier task"] }] }] }, "nonexistent earlier task");
  await bad(label, client, "devstream_create_plan", { title: "x", phases: [{ name: "A", tasks: [{ title: "t", depends_on: [noTask] }] }] }, noTask);
  await bad(label, client, "devstream_next_task", { lease_seconds: "long" }, "lease_seconds");
  await bad(label, client, "devstream_next_task", { with_context: "yes" }, "with_context");
  await bad(label, client, "devstream_next_task", { plan_id: missing("pln") }, missing("pln"));
  await bad(label, client, "devstream_get_context", { token_budget: 100 }, "query");
  await bad(label, client, "devstream_get_context", { query: "parser", token_budget: "many" }, "token_budget");
  await bad(label, client, "devstream_forget_memory", {}, "memory_id");
  await bad(label, client, "devstream_forget_memory", { memory_id: "one" }, "memory_id");
  await bad(label, client, "devstream_forget_memory", { memory_id: 987_654_321 }, ["987654321", "devstream_"]);
  // The failed create_plan calls left nothing behind.
  const plansAfter = await good(label, client, "devstream_list_plans", {});
  check(plansAfter?.structuredContent?.items?.length === 1, `${label}: failed create_plan calls should create nothing; plans: ${plansAfter?.structuredContent?.items?.map((p) => p.title).join(", ")}`);

  // ---- an unknown tool is a protocol error ----
  try {
    await client.callTool({ name: "devstream_no_such_tool", arguments: {} }, undefined, { timeout: REQUEST_TIMEOUT_MS });
    check(false, `${label}: an unknown tool should be a protocol error`);
  } catch (e) {
    check(e instanceof McpError && e.code === -32602, `${label}: an unknown tool should be McpError -32602, got ${e.constructor?.name} ${e.code}: ${e.message}`);
    check(/devstream_list_tasks/.test(e.message), `${label}: the unknown-tool error should list the tools: ${e.message}`);
  }
  // ping works after all that.
  await client.ping({ timeout: REQUEST_TIMEOUT_MS });
}

// ---------------------------------------------------------------- raw HTTP checks

async function raw(url, { method = "POST", headers = {}, body } = {}) {
  const res = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream", ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

const INIT = (id = 1, protocolVersion = LATEST_PROTOCOL_VERSION) => ({
  jsonrpc: "2.0",
  id,
  method: "initialize",
  params: { protocolVersion, capabilities: {}, clientInfo: { name: "raw-e2e", version: "0" } },
});

async function httpTransportChecks(mcpUrl, sessionId) {
  const label = "http/raw";
  const list = { jsonrpc: "2.0", id: 7, method: "tools/list" };
  const evil = await raw(mcpUrl, { headers: { Origin: "http://evil.example" }, body: INIT() });
  check(evil.status === 403 && /Origin/.test(evil.json?.error?.message ?? ""), `${label}: a foreign Origin should be refused with 403, got ${evil.status} ${evil.text.slice(0, 200)}`);
  const evilDelete = await raw(mcpUrl, { method: "DELETE", headers: { Origin: "https://evil.example", "Mcp-Session-Id": sessionId } });
  check(evilDelete.status === 403, `${label}: DELETE with a foreign Origin should be 403, got ${evilDelete.status}`);
  const local = await raw(mcpUrl, { headers: { Origin: "http://localhost:5173" }, body: INIT(2, "2025-06-18") });
  check(local.status === 200 && local.json?.result?.protocolVersion === "2025-06-18" && local.headers.get("mcp-session-id"), `${label}: a loopback Origin is allowed and 2025-06-18 is negotiated, got ${local.status} ${local.text.slice(0, 200)}`);
  const old = await raw(mcpUrl, { body: INIT(3, "2024-11-05") });
  check(old.status === 200 && old.json?.result?.protocolVersion === "2024-11-05" && !old.headers.get("mcp-session-id"), `${label}: 2024-11-05 is negotiated without a session, got ${old.status} ${old.text.slice(0, 200)}`);
  const unknownVersion = await raw(mcpUrl, { body: INIT(4, "1999-01-01") });
  check(unknownVersion.json?.result?.protocolVersion === LATEST_PROTOCOL_VERSION, `${label}: an unknown version is answered with the newest one`);

  const unknownSession = await raw(mcpUrl, { headers: { "Mcp-Session-Id": "0123456789abcdef0123456789abcdef" }, body: list });
  check(unknownSession.status === 404, `${label}: an unknown Mcp-Session-Id should be 404, got ${unknownSession.status} ${unknownSession.text.slice(0, 200)}`);
  const get = await raw(mcpUrl, { method: "GET", headers: { Accept: "text/event-stream" } });
  check(get.status === 405, `${label}: GET /mcp should be 405, got ${get.status}`);
  const badVersion = await raw(mcpUrl, { headers: { "Mcp-Session-Id": sessionId, "MCP-Protocol-Version": "1999-01-01" }, body: list });
  check(badVersion.status === 400, `${label}: an unsupported MCP-Protocol-Version should be 400, got ${badVersion.status}`);
  const notAcceptable = await raw(mcpUrl, { headers: { Accept: "text/html" }, body: INIT() });
  check(notAcceptable.status === 406, `${label}: Accept text/html should be 406, got ${notAcceptable.status}`);
  const parseError = await raw(mcpUrl, { headers: { "Mcp-Session-Id": sessionId }, body: "{not json" });
  check(parseError.status === 400 && parseError.json?.error?.code === -32700, `${label}: a body that is not JSON should be 400 with -32700, got ${parseError.status} ${parseError.text.slice(0, 200)}`);
  const notification = await raw(mcpUrl, { headers: { "Mcp-Session-Id": sessionId }, body: { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 99 } } });
  check(notification.status === 202 && notification.text === "", `${label}: a notification should be answered 202 without a body, got ${notification.status}`);
  const inSession = await raw(mcpUrl, { headers: { "Mcp-Session-Id": sessionId, "MCP-Protocol-Version": LATEST_PROTOCOL_VERSION }, body: list });
  check(inSession.status === 200 && inSession.json?.result?.tools?.length === 10, `${label}: tools/list in the SDK's session, got ${inSession.status}`);
  const sseOnly = await raw(mcpUrl, { headers: { "Mcp-Session-Id": sessionId, Accept: "text/event-stream" }, body: { jsonrpc: "2.0", id: 8, method: "ping" } });
  check(sseOnly.status === 200 && (sseOnly.headers.get("content-type") ?? "").startsWith("text/event-stream") && /^event: message\ndata: \{.*"id":8/m.test(sseOnly.text), `${label}: a client accepting only text/event-stream gets SSE, got ${sseOnly.status} ${sseOnly.headers.get("content-type")} ${sseOnly.text.slice(0, 200)}`);
  const batch = await raw(mcpUrl, { headers: { "Mcp-Session-Id": sessionId }, body: [{ jsonrpc: "2.0", id: 9, method: "ping" }, { jsonrpc: "2.0", method: "notifications/initialized" }, { jsonrpc: "2.0", id: 10, method: "nope" }] });
  check(batch.status === 200 && Array.isArray(batch.json) && batch.json.length === 2 && batch.json[1]?.error?.code === -32601, `${label}: a batch gets one answer per request, got ${batch.text.slice(0, 300)}`);
}

// ---------------------------------------------------------------- main

async function stdioPart() {
  const label = "stdio";
  const transport = new StdioClientTransport({
    command: binary,
    args: ["mcp", "--db", join(tmp, "e2e.db"), "--project", "e2e"],
    env: childEnv(),
    cwd: tmp,
    stderr: "pipe",
  });
  const entry = await connect(label, transport);
  checkInitialize(entry);
  await toolScenario(label, entry.client, "e2e");
  await closeStdio(entry);
}

async function httpPart(base) {
  const label = "http";
  const mcpUrl = new URL("/mcp", base);
  const log = [];
  const recordingFetch = async (url, init) => {
    const res = await fetch(url, init);
    log.push({ method: init?.method ?? "GET", body: typeof init?.body === "string" ? init.body : "", status: res.status, ctype: res.headers.get("content-type") ?? "" });
    return res;
  };
  const transport = new StreamableHTTPClientTransport(mcpUrl, {
    fetch: recordingFetch,
    requestInit: { headers: { "X-DevStream-Project": "e2e-http" } },
  });
  const entry = await connect(label, transport);
  checkInitialize(entry);
  const sessionId = transport.sessionId;
  // The SDK opens its server-to-client stream (GET) in the background after
  // notifications/initialized; the server has none to offer: 405.
  for (let i = 0; i < 100 && !log.some((r) => r.method === "GET"); ++i) await sleep(50);
  check(log.some((r) => r.method === "GET" && r.status === 405), `${label}: the SDK's GET /mcp (server-to-client stream) should get 405: ${JSON.stringify(log.map((r) => `${r.method} ${r.status}`))}`);
  await toolScenario(label, entry.client, "e2e-http");
  check(log.filter((r) => r.method === "POST" && r.body.includes('"tools/call"')).every((r) => r.ctype.startsWith("application/json")), `${label}: calls without a progress token are answered with JSON`);

  // A progress token: an SSE answer with a progress notification, then the result.
  const progress = [];
  const before = log.length;
  const res = await good(label, entry.client, "devstream_search_memory", { query: "parser", limit: 3 }, { onprogress: (p) => progress.push(p) });
  const post = log.slice(before).find((r) => r.method === "POST" && r.body.includes("progressToken"));
  check(post, `${label}: onprogress should send params._meta.progressToken`);
  check(post?.ctype.startsWith("text/event-stream"), `${label}: a call with a progress token should be answered as text/event-stream, got ${post?.ctype}`);
  check(res && Array.isArray(res.structuredContent?.results), `${label}: the SSE answer should carry the result`);
  check(progress.length >= 1 && progress.at(-1).progress === 1 && progress.at(-1).total === 1, `${label}: onprogress should see progress 1 of 1, got ${JSON.stringify(progress)}`);

  await httpTransportChecks(mcpUrl, sessionId);

  // DELETE ends the session; the id is then unknown.
  await withTimeout(transport.terminateSession(), REQUEST_TIMEOUT_MS, "terminateSession");
  check(log.some((r) => r.method === "DELETE" && r.status === 204), `${label}: DELETE /mcp should end the session with 204`);
  const gone = await raw(mcpUrl, { headers: { "Mcp-Session-Id": sessionId }, body: { jsonrpc: "2.0", id: 1, method: "ping" } });
  check(gone.status === 404, `${label}: a request in an ended session should be 404, got ${gone.status}`);
  const goneDelete = await raw(mcpUrl, { method: "DELETE", headers: { "Mcp-Session-Id": sessionId } });
  check(goneDelete.status === 404, `${label}: DELETE of an ended session should be 404, got ${goneDelete.status}`);
  await withTimeout(entry.client.close(), EXIT_TIMEOUT_MS, "http client close").catch((e) => check(false, e.message));
}

async function relayPart(base) {
  const label = "relay";
  const transport = new StdioClientTransport({
    command: binary,
    args: ["mcp", "--project", "e2e-relay"],
    env: childEnv({ DEVSTREAM_URL: base }),
    cwd: tmp,
    stderr: "pipe",
  });
  const entry = await connect(label, transport);
  checkInitialize(entry);
  await toolScenario(label, entry.client, "e2e-relay");
  // Progress notifications pass through the relay too, ahead of the result.
  // (Checked on the wire: the relay writes both lines at once, and the SDK
  // handles notifications a microtask after responses, so its onprogress
  // callback may legitimately be dropped as "unknown token".)
  const before = entry.received.length;
  const res = await good(label, entry.client, "devstream_list_plans", {}, { onprogress: () => {} });
  check(res?.structuredContent?.items?.length === 1, `${label}: list_plans with a progress token should return the relay project's plan`);
  const wire = entry.received.slice(before);
  const p = wire.findIndex((m) => m.method === "notifications/progress");
  const r = wire.findIndex((m) => m.id !== undefined && m.result?.structuredContent);
  check(p >= 0 && r > p && wire[p].params?.progress === 1 && wire[p].params?.total === 1, `${label}: the relay should forward notifications/progress before the result, got ${JSON.stringify(wire).slice(0, 500)}`);
  check(/relaying to http/.test(entry.stderr), `${label}: devstream mcp should say it relays (stderr: ${entry.stderr.slice(0, 300)})`);
  await closeStdio(entry);
}

// API keys (security.auth_enabled): the SDK client sends its key through
// requestInit, the relay through DEVSTREAM_API_KEY; no key is refused at
// connect, a read key cannot call a tool that writes.
async function authPart(dbPath) {
  const key = (name, scopes) => {
    const r = spawnSync(binary, ["apikey", "create", "--name", name, "--scopes", scopes, "--db", dbPath, "--json"], { encoding: "utf8", env: childEnv() });
    if (r.status !== 0) throw new Error(`apikey create failed: ${r.stderr}`);
    return JSON.parse(r.stdout).key;
  };
  const writer = key("e2e-writer", "write");
  const reader = key("e2e-reader", "read");
  const base = await startServer(dbPath, { DEVSTREAM_AUTH_ENABLED: "true" });
  server.proc.removeAllListeners("exit");
  server.proc.on("exit", (code, signal) => {
    server.exit = { code, signal };
  });
  const mcpUrl = new URL("/mcp", base);
  const http = (k) => new StreamableHTTPClientTransport(mcpUrl, { requestInit: { headers: k ? { Authorization: `Bearer ${k}` } : {} } });

  let refused = null;
  try {
    await connect("auth-none", http(null));
  } catch (e) {
    refused = e;
  }
  check(refused && /401/.test(String(refused.message ?? refused)), `auth: connecting without a key should fail with 401, got ${refused ? refused.message : "a connection"}`);

  const w = await connect("auth-writer", http(writer));
  await checkListTools("auth-writer", w.client);
  await good("auth-writer", w.client, "devstream_store_memory", { content: "stored with a write key", content_type: "context", project: "e2e-auth" });
  const r = await connect("auth-reader", http(reader));
  await good("auth-reader", r.client, "devstream_search_memory", { query: "write key", project: "e2e-auth" });
  await bad("auth-reader", r.client, "devstream_store_memory", { content: "not allowed", content_type: "context", project: "e2e-auth" }, ["write"]);

  const relay = new StdioClientTransport({
    command: binary,
    args: ["mcp", "--project", "e2e-auth"],
    env: childEnv({ DEVSTREAM_URL: base, DEVSTREAM_API_KEY: writer }),
    cwd: tmp,
    stderr: "pipe",
  });
  const entry = await connect("auth-relay", relay);
  const found = await good("auth-relay", entry.client, "devstream_search_memory", { query: "stored with a write key" });
  check(JSON.stringify(found?.structuredContent ?? {}).includes("stored with a write key"), "auth-relay: the relay with DEVSTREAM_API_KEY should see the project's memory");
  await closeStdio(entry);
  for (const c of [w, r]) await withTimeout(c.client.close(), EXIT_TIMEOUT_MS, "auth client close").catch((e) => check(false, e.message));
}

const started = Date.now();
let exitCode = 0;
try {
  await stdioPart();
  console.log(`ok   stdio (${Date.now() - started} ms)`);
  const base = await startServer(join(tmp, "e2e2.db"));
  server.base = base;
  server.proc.removeAllListeners("exit");
  server.proc.on("exit", (code, signal) => {
    server.exit = { code, signal };
  });
  console.log(`     server at ${base}`);
  let t = Date.now();
  await httpPart(base);
  console.log(`ok   http (${Date.now() - t} ms)`);
  t = Date.now();
  await relayPart(base);
  console.log(`ok   relay (${Date.now() - t} ms)`);
  check(!server.exit, `devstream serve died during the test: ${JSON.stringify(server.exit)}; stderr:\n${server.stderr.slice(-4000)}`);
  await stopServer();
  server.proc = null;
  server.exit = null;
  server.stderr = "";
  t = Date.now();
  await authPart(join(tmp, "e2e2.db"));
  console.log(`ok   auth (${Date.now() - t} ms)`);
  check(!server.exit, `devstream serve (auth) died during the test: ${JSON.stringify(server.exit)}`);
} catch (e) {
  check(false, `aborted: ${e.stack ?? e.message}`);
  for (const c of clients) if (c.stderr) console.log(`--- ${c.label} stderr (tail)\n${c.stderr.slice(-3000)}`);
  if (server.stderr) console.log(`--- serve stderr (tail)\n${server.stderr.slice(-3000)}`);
} finally {
  for (const c of clients) await c.client.close().catch(() => {});
  await stopServer().catch((e) => check(false, `stopping the server: ${e.message}`));
  clearTimeout(watchdog);
}
if (failures.length) {
  console.log(`\n${failures.length} failure(s):`);
  for (const f of failures) console.log(`  - ${f.split("\n")[0]}`);
  exitCode = 1;
}
console.log(`${checks} checks in ${Date.now() - started} ms, ${failures.length ? "MCP e2e FAILED" : "MCP e2e OK"}`);
process.exit(exitCode);
