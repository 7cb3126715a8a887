// Validates an OpenAPI 3.1 document: usage `node validate_openapi.mjs FILE`.
// 1. The document against the official OpenAPI 3.1 JSON Schema
//    (@seriousme/openapi-schema-validator, which also checks that $refs resolve).
// 2. Extra checks the meta-schema cannot express: every schema compiles with
//    Ajv 2020-12 in strict mode (catches misspelt keywords), operationIds are
//    unique, path template parameters and declared path parameters match,
//    every operation has a success response, problem responses use
//    application/problem+json.
// Exits 0 when valid, 1 with the list of errors otherwise.
import { createRequire } from "node:module";
import {
  collectRefs,
  deref,
  fail,
  loadDocument,
  makeSchemaCompiler,
  operations,
  requireDeps,
  resolvePointer,
} from "./openapi_tools.mjs";

const file = process.argv[2];
if (!file) fail("usage: node validate_openapi.mjs OPENAPI.json");

requireDeps();
const require = createRequire(import.meta.url);
let Validator;
try {
  ({ Validator } = await import(require.resolve("@seriousme/openapi-schema-validator")));
} catch (e) {
  fail(`missing @seriousme/openapi-schema-validator (${e.message.split("\n")[0]}); run \`make test-deps\` or \`cd tests/node && npm ci\``);
}

const doc = loadDocument(file);
const errors = [];

// ---- 1. the OpenAPI meta-schema ----
if (doc.openapi !== "3.1.0") errors.push(`openapi must be "3.1.0", got ${JSON.stringify(doc.openapi)}`);
const validator = new Validator();
const res = await validator.validate(structuredClone(doc));
if (!res.valid) {
  for (const e of [].concat(res.errors ?? [])) {
    if (typeof e === "string") errors.push(`meta-schema: ${e}`);
    else errors.push(`meta-schema: ${e.instancePath || "/"} ${e.message ?? ""} ${e.params ? JSON.stringify(e.params) : ""}`.trim());
  }
} else if (validator.version !== "3.1") {
  errors.push(`validator detected OpenAPI ${validator.version}, expected 3.1`);
}

// ---- 2. extra checks ----
for (const { ref, where } of collectRefs(doc)) {
  if (resolvePointer(doc, ref) === undefined) errors.push(`${where}: unresolvable $ref ${ref}`);
}

let compiler;
try {
  compiler = makeSchemaCompiler(doc, { strict: true });
} catch (e) {
  errors.push(`component schemas do not compile: ${e.message}`);
}

function checkSchema(schema, where) {
  if (!compiler || schema === undefined) return;
  try {
    compiler.compile(schema, where);
  } catch (e) {
    errors.push(`${where}: schema does not compile: ${e.message}`);
  }
}

for (const name of Object.keys(doc.components?.schemas ?? {})) {
  checkSchema({ $ref: `#/components/schemas/${name}` }, `#/components/schemas/${name}`);
}

const opIds = new Map();
for (const { path, method, op, item } of operations(doc)) {
  const where = `${method.toUpperCase()} ${path}`;
  if (!op.operationId) errors.push(`${where}: no operationId`);
  else if (opIds.has(op.operationId)) errors.push(`${where}: operationId ${op.operationId} also used by ${opIds.get(op.operationId)}`);
  else opIds.set(op.operationId, where);

  let params = [];
  try {
    params = [...(item.parameters ?? []), ...(op.parameters ?? [])].map((p) => deref(doc, p));
  } catch (e) {
    errors.push(`${where}: ${e.message}`);
  }
  const seen = new Set();
  for (const p of params) {
    const key = `${p.in}:${p.in === "header" ? p.name.toLowerCase() : p.name}`;
    if (seen.has(key)) errors.push(`${where}: parameter ${key} declared twice`);
    seen.add(key);
    checkSchema(p.schema, `${where} parameter ${key}`);
  }
  const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
  for (const name of templated) {
    const p = params.find((q) => q.in === "path" && q.name === name);
    if (!p) errors.push(`${where}: path parameter {${name}} is not declared`);
    else if (p.required !== true) errors.push(`${where}: path parameter {${name}} must be required`);
  }
  for (const p of params.filter((q) => q.in === "path")) {
    if (!templated.includes(p.name)) errors.push(`${where}: path parameter ${p.name} is not in the path`);
  }

  if (op.requestBody) {
    const body = deref(doc, op.requestBody);
    for (const [type, media] of Object.entries(body.content ?? {})) {
      checkSchema(media.schema, `${where} request ${type}`);
      const target = media.schema && deref(doc, media.schema);
      if (type === "application/json" && target?.type === "object" && target.additionalProperties !== false) {
        errors.push(`${where}: request body schema must set additionalProperties: false (the server rejects unknown fields)`);
      }
    }
  }

  const responses = op.responses ?? {};
  if (!Object.keys(responses).some((s) => /^2\d\d$/.test(s))) errors.push(`${where}: no 2xx response`);
  for (const [status, r0] of Object.entries(responses)) {
    let r;
    try {
      r = deref(doc, r0);
    } catch (e) {
      errors.push(`${where} ${status}: ${e.message}`);
      continue;
    }
    if (!r.headers?.["X-Request-Id"]) errors.push(`${where} ${status}: X-Request-Id header not documented`);
    if (status === "204" && r.content) errors.push(`${where} 204 must not have content`);
    for (const [type, media] of Object.entries(r.content ?? {})) {
      checkSchema(media.schema, `${where} ${status} ${type}`);
    }
    if (/^[45]\d\d$/.test(status) && !r.content?.["application/problem+json"]) {
      errors.push(`${where} ${status}: error responses must offer application/problem+json`);
    }
  }
}

if (errors.length) {
  process.stderr.write(`${file}: ${errors.length} error(s)\n`);
  for (const e of errors) process.stderr.write(`  - ${e}\n`);
  process.exit(1);
}
const ops = operations(doc).length;
console.log(`${file}: valid OpenAPI ${doc.openapi} (${Object.keys(doc.paths).length} paths, ${ops} operations, ${Object.keys(doc.components?.schemas ?? {}).length} schemas)`);
