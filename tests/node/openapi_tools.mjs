// Helpers shared by validate_openapi.mjs and conformance.mjs: load the OpenAPI
// document, resolve its local $refs, and compile the JSON Schemas it contains
// with Ajv (draft 2020-12, the dialect of OpenAPI 3.1) so that
// "#/components/schemas/X" references resolve to the document's components.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

// Fails with a clear message when `npm ci` has not been run in tests/node.
export function requireDeps() {
  try {
    const Ajv2020 = require("ajv/dist/2020").default;
    const addFormats = require("ajv-formats").default ?? require("ajv-formats");
    return { Ajv2020, addFormats };
  } catch (e) {
    fail(
      `missing npm packages in ${new URL(".", import.meta.url).pathname} (${e.message.split("\n")[0]}).\n` +
        "Install them with `make test-deps` or `cd tests/node && npm ci`.",
    );
  }
}

export function fail(message) {
  process.stderr.write(`FAIL: ${message}\n`);
  process.exit(1);
}

export function loadDocument(file) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    fail(`cannot read ${file}: ${e.message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    fail(`${file} is not valid JSON: ${e.message}`);
  }
}

// The value a local reference ("#/a/b") points to, or undefined.
export function resolvePointer(doc, ref) {
  if (!ref.startsWith("#/")) return undefined;
  let node = doc;
  for (const raw of ref.slice(2).split("/")) {
    const key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
    if (node === null || typeof node !== "object" || !(key in node)) return undefined;
    node = node[key];
  }
  return node;
}

// Follows a chain of Reference Objects (parameters, responses, headers...).
export function deref(doc, obj) {
  const seen = new Set();
  while (obj && typeof obj === "object" && typeof obj.$ref === "string") {
    if (seen.has(obj.$ref)) throw new Error(`reference loop at ${obj.$ref}`);
    seen.add(obj.$ref);
    const next = resolvePointer(doc, obj.$ref);
    if (next === undefined) throw new Error(`unresolvable $ref ${obj.$ref}`);
    obj = next;
  }
  return obj;
}

// Every {$ref} string in `node`, with the JSON pointer where it occurs.
export function collectRefs(node, where = "#", out = []) {
  if (Array.isArray(node)) {
    node.forEach((v, i) => collectRefs(v, `${where}/${i}`, out));
  } else if (node && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      const here = `${where}/${k.replace(/~/g, "~0").replace(/\//g, "~1")}`;
      if (k === "$ref" && typeof v === "string") out.push({ ref: v, where });
      else collectRefs(v, here, out);
    }
  }
  return out;
}

const BASE = "https://devstream.invalid/openapi/components/schemas/";
const SCHEMA_REF = /^#\/components\/schemas\/([^/]+)$/;

// Rewrites "#/components/schemas/X" into the absolute id under which X is
// registered with Ajv; any other reference inside a schema is an error.
function rewriteRefs(node, where) {
  if (Array.isArray(node)) return node.map((v, i) => rewriteRefs(v, `${where}/${i}`));
  if (node && typeof node === "object") {
    const out = {};
    for (const [k, v] of Object.entries(node)) {
      if (k === "$ref" && typeof v === "string") {
        const m = SCHEMA_REF.exec(v);
        if (!m) throw new Error(`${where}: schema $ref ${v} does not name a component schema`);
        out.$ref = BASE + m[1];
      } else {
        out[k] = rewriteRefs(v, `${where}/${k}`);
      }
    }
    return out;
  }
  return node;
}

// An Ajv instance holding every component schema; compile(schema, where)
// compiles any schema of the document (refs resolved into components).
export function makeSchemaCompiler(doc, { strict = true } = {}) {
  const { Ajv2020, addFormats } = requireDeps();
  const ajv = new Ajv2020({
    strict,
    strictTypes: false, // OpenAPI schemas often refine a $ref'd object without repeating "type"
    allowUnionTypes: true, // nullable members are ["string", "null"]
    allErrors: true,
    validateFormats: true,
  });
  addFormats(ajv);
  const schemas = doc.components?.schemas ?? {};
  for (const [name, schema] of Object.entries(schemas)) {
    ajv.addSchema(rewriteRefs(schema, `#/components/schemas/${name}`), BASE + name);
  }
  const cache = new Map();
  return {
    ajv,
    compile(schema, where) {
      if (cache.has(schema)) return cache.get(schema);
      const fn = ajv.compile(rewriteRefs(schema, where));
      cache.set(schema, fn);
      return fn;
    },
    errorsText(errors) {
      return (errors ?? [])
        .map((e) => {
          const extra = e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : "";
          return `${e.instancePath || "/"} ${e.message}${extra}`;
        })
        .join("; ");
    },
  };
}

export const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

// [{path, method, op}] for every operation of the document.
export function operations(doc) {
  const out = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of HTTP_METHODS) {
      if (item[method]) out.push({ path, method, op: item[method], item });
    }
  }
  return out;
}
