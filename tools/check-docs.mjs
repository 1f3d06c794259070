#!/usr/bin/env node
// Keeps two pieces of documentation honest against the tree:
// 1. Each published lib's public API: the names its src/index.ts exports (explicit exports
//    only; `export *` would publish internals nobody chose) must be exactly the names its
//    README's "## API" section lists as `- \`Name\``. `--write` rewrites those sections from the
//    index and each declaration's first TSDoc sentence.
// 2. The repository README's "Develop it" section names every app, lib, chart and test folder
//    on disk, and nothing that is not there.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

const root = join(import.meta.dirname, '..');
const write = process.argv.includes('--write');
const problems = [];

/** `export { a, type B } from './x.js'` lines of an index: [{ name, type, spec }]. */
function indexExports(lib) {
  const text = readFileSync(join(root, 'libs', lib, 'src/index.ts'), 'utf8');
  if (/^export \*/m.test(text)) problems.push(`libs/${lib}/src/index.ts: uses export *; list the public names`);
  const out = [];
  for (const m of text.matchAll(/^export (type )?\{([^}]*)\} from '([^']+)';$/gm)) {
    for (const part of m[2]
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)) {
      const name = part
        .replace(/^type\s+/, '')
        .split(/\s+as\s+/)
        .pop();
      out.push({ name, type: Boolean(m[1]) || part.startsWith('type '), spec: m[3] });
    }
  }
  return out;
}

/** The first sentence of the TSDoc on `name` in the module `spec` of `lib`. */
function summary(lib, spec, name) {
  const file = join(root, 'libs', lib, 'src', spec.replace(/\.js$/, '.ts'));
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  for (const st of sf.statements) {
    const names = ts.isVariableStatement(st) ? st.declarationList.declarations.map((d) => d.name.getText(sf)) : [st.name?.getText(sf)];
    if (!names.includes(name)) continue;
    const doc = ts.getJSDocCommentsAndTags(st).find(ts.isJSDoc);
    const comment = typeof doc?.comment === 'string' ? doc.comment : (doc?.comment ?? []).map((c) => c.text).join('');
    return (
      comment
        .replace(/\s+/g, ' ')
        .trim()
        .split(/(?<=\.)\s/)[0] ?? ''
    );
  }
  return '';
}

const API = /\n## API\n[\s\S]*?(?=\n## |$)/;
for (const lib of readdirSync(join(root, 'libs'))) {
  const pkg = JSON.parse(readFileSync(join(root, 'libs', lib, 'package.json'), 'utf8'));
  if (pkg.private) continue;
  const readmePath = join(root, 'libs', lib, 'README.md');
  let readme = readFileSync(readmePath, 'utf8');
  const exported = indexExports(lib);
  if (write) {
    const lines = exported
      .slice()
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((e) => {
        const s = summary(lib, e.spec, e.name);
        return `- \`${e.name}\`${e.type ? ' (type)' : ''}${s ? `: ${s}` : ''}`;
      });
    const section = `\n## API\n\nEverything \`${pkg.name}\` exports, and nothing else (tools/check-docs.mjs checks this list against\nsrc/index.ts):\n\n${lines.join('\n')}\n`;
    readme = API.test(readme) ? readme.replace(API, section) : `${readme.trimEnd()}\n${section}`;
    writeFileSync(readmePath, readme);
  }
  const section = API.exec(readme)?.[0];
  if (!section) {
    problems.push(`libs/${lib}/README.md: no "## API" section`);
    continue;
  }
  const documented = new Set([...section.matchAll(/^- `([A-Za-z_$][\w$]*)`/gm)].map((m) => m[1]));
  const names = new Set(exported.map((e) => e.name));
  for (const n of names) if (!documented.has(n)) problems.push(`libs/${lib}: exports ${n}, which README.md's API section does not list`);
  for (const n of documented) if (!names.has(n)) problems.push(`libs/${lib}: README.md's API section lists ${n}, which src/index.ts does not export`);
}

// The repository README: every project and test folder on disk is named in "Develop it".
const develop = /\n## Develop it\n([\s\S]*?)(?=\n## |$)/.exec(readFileSync(join(root, 'README.md'), 'utf8'))?.[1] ?? '';
const dirs = (d) =>
  readdirSync(join(root, d), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => `${d}/${e.name}`);
const projects = [...dirs('apps'), ...dirs('libs'), ...dirs('charts').filter((c) => existsSync(join(root, c, 'Chart.yaml')))];
for (const p of projects) {
  const short = p.startsWith('charts/') ? p.slice('charts/'.length) : p;
  if (!develop.includes(short)) problems.push(`README.md "Develop it": does not mention ${p}`);
}
const suitesOnDisk = [...dirs('apps'), 'charts'].map((d) => `${d}/test/`).filter((t) => existsSync(join(root, t)) && readdirSync(join(root, t)).some((f) => f.endsWith('.test.ts')));
const suitesListed =
  /end-to-end\s+suites \(([^)]*)\)/
    .exec(develop)?.[1]
    .match(/`([^`]+)`/g)
    ?.map((s) => s.slice(1, -1)) ?? [];
for (const s of suitesOnDisk) if (!suitesListed.includes(s)) problems.push(`README.md "Develop it": the end-to-end suites list lacks ${s}`);
for (const s of suitesListed) if (!suitesOnDisk.includes(s)) problems.push(`README.md "Develop it": lists the suite ${s}, which has no *.test.ts on disk`);

for (const p of problems) console.log(`FAIL ${p}`);
if (!problems.length) console.log('ok   lib READMEs list exactly what each index exports; README "Develop it" names every project and suite');
process.exit(problems.length ? 1 : 0);
