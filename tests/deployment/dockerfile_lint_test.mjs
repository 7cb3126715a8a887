// node dockerfile_lint_test.mjs REPO
//
// Lints deployment/docker/Dockerfile with dockerfile-utils (tests/node's
// devDependency: `make test-deps` installs it) and fails on any error or
// warning, then checks what the deployment relies on:
//   - stages toolchain/build/development/production/nginx; every base image
//     is Debian 12 (debian:12, debian:12-slim or a bookworm tag), never latest;
//   - build: installs deps/debian-packages.txt, builds the devstream target in
//     Release, strips it and runs it once; no -march=native;
//   - development: from the build stage, the sources in /src;
//   - production: debian:12-slim, installs exactly deps/debian-runtime-packages.txt,
//     cleans the apt lists, copies the binary from the build stage and the
//     settings files to /etc/devstream/, runs as the non-root user devstream,
//     VOLUME /data, EXPOSE 8000, HEALTHCHECK via `devstream health`,
//     ENTRYPOINT devstream, DEVSTREAM_SERVICE_MODE set, no Python;
//   - nginx: renders the template with devstream-render-nginx, then nginx in
//     the foreground;
//   - every COPY source exists in the repository and survives /.dockerignore,
//     which keeps build trees, .git, node_modules, databases and secrets out.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const repo = path.resolve(process.argv[2] ?? '.');
const dockerfilePath = path.join(repo, 'deployment/docker/Dockerfile');
const failures = [];
let checks = 0;
function check(ok, what) {
  checks++;
  if (!ok) failures.push(what);
  return ok;
}

// ---------------------------------------------------------------- the linter
const cli = path.join(repo, 'tests/node/node_modules/dockerfile-utils/bin/dockerfile-utils');
if (!fs.existsSync(cli)) {
  console.error(`FAIL: ${cli} is missing: run make test-deps (npm ci in tests/node installs dockerfile-utils)`);
  process.exit(1);
}
const lint = spawnSync(process.execPath, [cli, 'lint', '--json', dockerfilePath], { encoding: 'utf8' });
let diagnostics;
try {
  diagnostics = JSON.parse(lint.stdout);
} catch {
  diagnostics = null;
}
if (check(Array.isArray(diagnostics), `dockerfile-utils printed no JSON: ${lint.stdout}${lint.stderr}`)) {
  for (const d of diagnostics) {
    failures.push(`dockerfile-utils ${d.severity} at line ${d.range.start.line + 1}: ${d.message}`);
  }
  check(lint.status === 0 || diagnostics.length > 0, `dockerfile-utils exited ${lint.status}`);
  console.log(`dockerfile-utils lint: ${diagnostics.length} problem(s)`);
}

// ---------------------------------------------------------------- parsing
// Logical instructions: continuation lines joined, comment lines dropped.
function parseDockerfile(text) {
  const out = [];
  let buf = '';
  let startLine = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (buf === '' && /^\s*(#.*)?$/.test(line)) return;
    if (buf !== '' && /^\s*#/.test(line)) return; // comment inside a continuation
    if (buf === '') startLine = i + 1;
    if (/\\\s*$/.test(line)) {
      buf += line.replace(/\\\s*$/, ' ');
      return;
    }
    buf += line;
    const m = buf.trim().match(/^(\S+)\s*([\s\S]*)$/);
    out.push({ keyword: m[1].toUpperCase(), args: m[2].trim(), line: startLine });
    buf = '';
  });
  if (buf !== '') failures.push('the Dockerfile ends inside a continuation line');
  return out;
}
const instructions = parseDockerfile(fs.readFileSync(dockerfilePath, 'utf8'));
const stages = [];
for (const ins of instructions) {
  if (ins.keyword === 'FROM') {
    const m = ins.args.match(/^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i);
    check(m, `line ${ins.line}: cannot read FROM ${ins.args}`);
    stages.push({ base: m ? m[1] : '', name: m && m[2] ? m[2].toLowerCase() : null, ins: [], line: ins.line });
  } else if (stages.length > 0) {
    stages.at(-1).ins.push(ins);
  } else {
    check(ins.keyword === 'ARG', `line ${ins.line}: ${ins.keyword} before the first FROM`);
  }
}
const stage = (name) => stages.find((s) => s.name === name);
const all = (s, kw) => (s ? s.ins.filter((i) => i.keyword === kw) : []);
const last = (s, kw) => all(s, kw).at(-1);
const text = (s) => (s ? s.ins.map((i) => `${i.keyword} ${i.args}`).join('\n') : '');
// Exec-form arguments (JSON array), else null.
function execForm(args) {
  try {
    const v = JSON.parse(args);
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- stages and bases
for (const name of ['toolchain', 'build', 'development', 'production', 'nginx']) {
  check(stage(name), `no stage named ${name} (FROM … AS ${name})`);
}
const names = new Set();
for (const s of stages) {
  if (s.name) {
    check(!names.has(s.name), `stage ${s.name} defined twice`);
    names.add(s.name);
  }
  const base = s.base.toLowerCase();
  if (names.has(base) && base !== s.name) continue; // FROM an earlier stage
  check(
    /^(docker\.io\/(library\/)?)?debian:(12|bookworm)(-slim)?(-\d{8})?(@sha256:[0-9a-f]{64})?$/.test(base),
    `line ${s.line}: base image ${s.base} is not a Debian 12 (bookworm) tag`,
  );
}
const production = stage('production');
const build = stage('build');
const development = stage('development');
const toolchain = stage('toolchain');
const nginx = stage('nginx');
check(production && /^(docker\.io\/(library\/)?)?debian:(12|bookworm)-slim\b/.test(production.base),
  `production is FROM ${production?.base}, not debian:12-slim`);
check(nginx && /^(docker\.io\/(library\/)?)?debian:(12|bookworm)-slim\b/.test(nginx.base),
  `nginx is FROM ${nginx?.base}, not debian:12-slim`);
check(development && ['build', 'toolchain'].includes(development.base.toLowerCase()),
  `development must build on the toolchain (FROM build or toolchain), not ${development?.base}`);
check(build && ['toolchain'].includes(build.base.toLowerCase()) || /debian:(12|bookworm)\b/.test(build?.base ?? ''),
  'build must start from the toolchain stage or debian:12');

// ---------------------------------------------------------------- apt hygiene
for (const s of stages) {
  for (const run of all(s, 'RUN')) {
    if (/apt-get\s+(update|install)|install\.sh/.test(run.args)) {
      check(/rm -rf \/var\/lib\/apt\/lists/.test(run.args),
        `line ${run.line} (${s.name}): installs packages without rm -rf /var/lib/apt/lists/* in the same RUN`);
    }
    if (/apt-get\s+install/.test(run.args)) {
      check(/--no-install-recommends/.test(run.args), `line ${run.line} (${s.name}): apt-get install without --no-install-recommends`);
    }
  }
}
check(!stages.some((s) => /-march=native/.test(text(s))), 'the Dockerfile builds with -march=native (the image must run on any x86-64)');

// ---------------------------------------------------------------- toolchain and build
const toolchainText = text(toolchain) + '\n' + text(build);
check(/install\.sh\s+\S*deps\/debian-packages\.txt/.test(toolchainText),
  'the toolchain does not run install.sh with deps/debian-packages.txt');
check(/cmake\s[^\n]*-DCMAKE_BUILD_TYPE=Release/.test(text(build)), 'build does not configure a Release build');
check(/cmake --build\s[^\n]*--target devstream/.test(text(build)), 'build does not build the devstream target');
check(/\bstrip\b[^\n]*devstream/.test(text(build)), 'build does not strip the binary');
check(/devstream (version|--version|--help)/.test(text(build)), 'build does not run the binary once (smoke check)');
check(all(development, 'COPY').some((c) => /^\.\s+\/src\/?$/.test(c.args)) && /\/src/.test(text(development)),
  'development does not hold the sources in /src (COPY . /src)');

// ---------------------------------------------------------------- production
const prodText = text(production);
check(!/python/i.test(prodText), 'production mentions python: the image must not need it');
check(/install\.sh\s+\S*deps\/debian-runtime-packages\.txt/.test(prodText),
  'production does not install deps/debian-runtime-packages.txt with install.sh');
check(!/apt-get\s+install/.test(prodText), 'production installs packages besides deps/debian-runtime-packages.txt');
check(all(production, 'COPY').some((c) => /--from=build\b/.test(c.args) && /\/usr\/local\/bin\/devstream$/.test(c.args)),
  'production does not COPY --from=build the binary to /usr/local/bin/devstream');
check(all(production, 'COPY').some((c) => /^deployment\/environments\/?\s+\/etc\/devstream\/?$/.test(c.args)),
  'production does not copy deployment/environments/ to /etc/devstream/');
const user = last(production, 'USER');
check(user && /^devstream(:devstream)?$/.test(user.args), `production's last USER is ${user?.args ?? 'missing'}, not devstream`);
check(/(useradd|adduser)\b[^\n]*\bdevstream\b/.test(prodText), 'production does not create the user devstream');
check(!/^(root|0)(:|$)/.test(user?.args ?? 'root'), 'production runs as root');
check(all(production, 'VOLUME').some((v) => (execForm(v.args) ?? v.args.split(/\s+/)).includes('/data')), 'production has no VOLUME /data');
check(all(production, 'EXPOSE').some((e) => e.args.split(/\s+/).some((p) => /^8000(\/tcp)?$/.test(p))), 'production does not EXPOSE 8000');
const hc = last(production, 'HEALTHCHECK');
check(hc && /\bCMD\b/.test(hc.args) && /devstream"?,?\s*"?health\b/.test(hc.args), 'production HEALTHCHECK does not run devstream health');
check(hc && !/curl|wget|python/.test(hc.args), 'production HEALTHCHECK uses curl, wget or python');
const entry = last(production, 'ENTRYPOINT');
const entryArgs = entry ? execForm(entry.args) : null;
check(entryArgs && entryArgs.length === 1 && /(^|\/)devstream$/.test(entryArgs[0]),
  `production ENTRYPOINT is ${entry?.args ?? 'missing'}, not ["devstream"]`);
const cmd = last(production, 'CMD');
check(cmd && execForm(cmd.args)?.[0] === 'serve', 'production CMD is not ["serve"]');
const envText = all(production, 'ENV').map((e) => e.args).join(' ');
for (const [k, v] of [['DEVSTREAM_ENV', 'production'], ['DEVSTREAM_SERVICE_MODE', null], ['DEVSTREAM_HOST', '0.0.0.0'],
  ['DEVSTREAM_PORT', '8000'], ['DEVSTREAM_DATABASE_PATH', '/data/devstream.db']]) {
  const m = envText.match(new RegExp(`\\b${k}=(\\S+)`));
  check(m && (v === null || m[1] === v), `production ENV ${k}${v ? `=${v}` : ''} missing`);
}
check(!/SECRET/.test(envText), 'production ENV sets a secret: secrets come from the environment at run time');

// ---------------------------------------------------------------- nginx
const nginxText = text(nginx);
check(/apt-get install[^\n]*\bnginx\b/.test(nginxText), 'nginx stage does not install nginx');
check(/deployment\/nginx\/nginx\.conf\s+\/etc\/nginx\/devstream\/nginx\.conf\.template/.test(nginxText),
  'nginx stage does not copy the template to /etc/nginx/devstream/nginx.conf.template');
check(/deployment\/nginx\/render\.sh\s+\/usr\/local\/bin\/devstream-render-nginx/.test(nginxText),
  'nginx stage does not install render.sh as /usr/local/bin/devstream-render-nginx');
check(/NGINX_TEMPLATE=\/etc\/nginx\/devstream\/nginx\.conf\.template/.test(nginxText),
  'nginx stage does not point NGINX_TEMPLATE at the template');
const nginxEntry = last(nginx, 'ENTRYPOINT');
check(nginxEntry && /devstream-render-nginx \/etc\/nginx\/nginx\.conf && exec nginx -g 'daemon off;'/.test(nginxEntry.args),
  'nginx ENTRYPOINT does not render /etc/nginx/nginx.conf and exec nginx in the foreground');
check(!/python/i.test(nginxText), 'the nginx stage mentions python');

// ---------------------------------------------------------------- COPY sources and .dockerignore
const ignorePath = path.join(repo, '.dockerignore');
const ignoreRules = check(fs.existsSync(ignorePath), '.dockerignore is missing at the repository root')
  ? fs.readFileSync(ignorePath, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = path.posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, '')).replace(/\/$/, '');
      const re = pattern.split('/').map((seg) => (seg === '**' ? '(?:.*)' : seg.replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]'))).join('/').replace(/\(\?:\.\*\)\//g, '(?:.*/)?');
      return { negate, re: new RegExp(`^${re}$`) };
    })
  : [];
// Docker's rule: the last matching pattern wins; a path is excluded when it
// or one of its parent directories is.
function ignored(rel) {
  const parts = rel.split('/');
  let excluded = false;
  for (let i = 1; i <= parts.length; i++) {
    const p = parts.slice(0, i).join('/');
    for (const r of ignoreRules) if (r.re.test(p)) excluded = !r.negate;
    if (excluded && i < parts.length) return true;
  }
  return excluded;
}
for (const must of ['.git/HEAD', 'build/release/devstream', 'build/asan/CMakeCache.txt', 'tests/node/node_modules/ajv/package.json',
  'bench/node/node_modules/x', 'data/devstream.db', 'devstream.db', 'tests/x/devstream.db-wal', 'deployment/docker/.env',
  'deployment/docker/tls/privkey.pem']) {
  check(ignored(must), `.dockerignore lets ${must} into the build context`);
}
for (const s of stages) {
  for (const c of [...all(s, 'COPY'), ...all(s, 'ADD')]) {
    if (/--from=/.test(c.args)) continue;
    const words = (execForm(c.args) ?? c.args.split(/\s+/)).filter((w) => !w.startsWith('--'));
    for (const src of words.slice(0, -1)) {
      if (src === '.') continue;
      const rel = path.posix.normalize(src).replace(/\/$/, '');
      check(fs.existsSync(path.join(repo, rel)), `line ${c.line}: COPY source ${src} does not exist in the repository`);
      check(!ignored(rel), `line ${c.line}: COPY source ${src} is excluded by .dockerignore`);
    }
  }
}
for (const needed of ['deps/install.sh', 'deps/debian-packages.txt', 'deps/debian-runtime-packages.txt', 'CMakeLists.txt',
  'src/CMakeLists.txt', 'src/api/openapi.json', 'cmake/embed_text.cmake']) {
  check(!ignored(needed), `.dockerignore excludes ${needed}, which the build needs`);
}

// ---------------------------------------------------------------- verdict
for (const f of failures) console.log(`FAIL: ${f}`);
console.log(`Dockerfile: ${checks - failures.length} passed, ${failures.length} failed`);
process.exit(failures.length === 0 ? 0 : 1);
