// Renders the small subset of Helm's template language the charts in charts/ use, so that tests
// can check the objects they produce (helm itself cannot run on these machines):
//   {{ .Values.a.b }}  {{ .Release.Name }}  {{ .Release.Namespace }}  {{ .Chart.Name }}
//   {{ .Chart.AppVersion }}  {{ include "name" . }}  {{ define "name" }}...{{ end }}
//   {{ if X }}...{{ else }}...{{ end }}  (X: a value, `not X`, `and X Y`, `or X Y`)
//   pipes: | quote  | toYaml  | nindent N  | indent N  | default V  | b64enc  | toJson
// `{{-` and `-}}` trim whitespace as in Go templates. Anything else is an error, on purpose.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';

function lookup(ctx, path) {
  if (path === '.') return ctx;
  let v = ctx;
  for (const p of path.replace(/^\./, '').split('.')) {
    if (v === undefined || v === null) return undefined;
    v = v[p];
  }
  return v;
}

function tokenize(src) {
  const out = [];
  const re = /\{\{(-?)\s*([\s\S]*?)\s*(-?)\}\}/g;
  let last = 0;
  let m;
  while ((m = re.exec(src))) {
    out.push({ text: src.slice(last, m.index) });
    out.push({ tag: m[2], trimLeft: m[1] === '-', trimRight: m[3] === '-' });
    last = re.lastIndex;
  }
  out.push({ text: src.slice(last) });
  for (let i = 0; i < out.length; i++) {
    const t = out[i];
    if (t.tag === undefined) continue;
    if (t.trimLeft && out[i - 1]) out[i - 1].text = out[i - 1].text.replace(/\s+$/, '');
    if (t.trimRight && out[i + 1]) out[i + 1].text = out[i + 1].text.replace(/^\s+/, '');
  }
  return out;
}

function parseBlocks(tokens, i, stopAt) {
  const nodes = [];
  while (i < tokens.length) {
    const t = tokens[i];
    if (t.tag === undefined) {
      nodes.push({ text: t.text });
      i++;
      continue;
    }
    const word = t.tag.split(/\s+/)[0];
    if (stopAt.includes(word)) return { nodes, i };
    if (word === 'if' || word === 'define') {
      const body = parseBlocks(tokens, i + 1, ['else', 'end']);
      let elseNodes = [];
      let j = body.i;
      if (tokens[j].tag.split(/\s+/)[0] === 'else') {
        const e = parseBlocks(tokens, j + 1, ['end']);
        elseNodes = e.nodes;
        j = e.i;
      }
      nodes.push(word === 'if' ? { if: t.tag.slice(3).trim(), then: body.nodes, else: elseNodes } : { define: /"([^"]+)"/.exec(t.tag)[1], body: body.nodes });
      i = j + 1;
      continue;
    }
    if (word === 'end' || word === 'else') throw new Error(`unexpected {{ ${t.tag} }}`);
    nodes.push({ expr: t.tag });
    i++;
  }
  if (stopAt.length) throw new Error(`missing {{ end }}`);
  return { nodes, i };
}

export function renderChart(chartDir, values, release = { Name: 'rel', Namespace: 'default' }) {
  const chart = parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8'));
  const defaults = parse(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) ?? {};
  const merge = (a, b) => {
    if (typeof a !== 'object' || a === null || Array.isArray(a) || typeof b !== 'object' || b === null || Array.isArray(b)) return b === undefined ? a : b;
    const out = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = merge(a[k], v);
    return out;
  };
  const ctx = { Values: merge(defaults, values), Release: release, Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion } };
  const defines = {};
  const files = readdirSync(join(chartDir, 'templates')).sort();
  const parsed = files.map((f) => ({ f, nodes: parseBlocks(tokenize(readFileSync(join(chartDir, 'templates', f), 'utf8')), 0, []).nodes }));
  for (const { nodes } of parsed) for (const n of nodes) if (n.define) defines[n.define] = n.body;

  const value = (word, scope) => {
    if (word.startsWith('"')) return JSON.parse(word);
    if (/^-?\d+$/.test(word)) return Number(word);
    if (word === 'true' || word === 'false') return word === 'true';
    if (word.startsWith('.')) return lookup(scope, word);
    throw new Error(`unsupported word ${word}`);
  };
  const truthy = (v) =>
    !(v === undefined || v === null || v === false || v === '' || v === 0 || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0));
  const evalCond = (c, scope) => {
    const w = c.match(/"[^"]*"|\S+/g);
    if (w[0] === 'not') return !truthy(value(w[1], scope));
    if (w[0] === 'and') return w.slice(1).every((x) => truthy(value(x, scope)));
    if (w[0] === 'or') return w.slice(1).some((x) => truthy(value(x, scope)));
    if (w[0] === 'eq') return value(w[1], scope) === value(w[2], scope);
    return truthy(value(w[0], scope));
  };
  const evalExpr = (e, scope) => {
    const stages = e.split('|').map((s) => s.trim());
    const head = stages[0].match(/"[^"]*"|\S+/g);
    let v =
      head[0] === 'include'
        ? renderNodes(
            defines[JSON.parse(head[1])] ??
              (() => {
                throw new Error(`no define ${head[1]}`);
              })(),
            scope,
          )
        : value(head[0], scope);
    for (const s of stages.slice(1)) {
      const [fn, arg] = s.match(/"[^"]*"|\S+/g);
      if (fn === 'quote') v = JSON.stringify(v === undefined || v === null ? '' : String(v));
      else if (fn === 'toYaml') v = v === undefined || v === null ? '' : stringify(v).trimEnd();
      else if (fn === 'toJson') v = JSON.stringify(v);
      else if (fn === 'b64enc') v = Buffer.from(String(v)).toString('base64');
      else if (fn === 'default') v = truthy(v) ? v : value(arg, scope);
      else if (fn === 'nindent' || fn === 'indent')
        v =
          (fn === 'nindent' ? '\n' : '') +
          String(v)
            .split('\n')
            .map((l) => ' '.repeat(Number(arg)) + l)
            .join('\n');
      else throw new Error(`unsupported function ${fn}`);
    }
    if (v === undefined || v === null) return '';
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  };
  const renderNodes = (nodes, scope) =>
    nodes
      .map((n) => {
        if (n.text !== undefined) return n.text;
        if (n.define) return '';
        if (n.if !== undefined) return renderNodes(evalCond(n.if, scope) ? n.then : n.else, scope);
        return evalExpr(n.expr, scope);
      })
      .join('');
  const docs = [];
  for (const { f, nodes } of parsed) {
    if (f.startsWith('_')) continue;
    const text = renderNodes(nodes, ctx);
    for (const part of text.split(/^---\s*$/m)) {
      if (part.trim() === '') continue;
      const obj = parse(part);
      if (obj) docs.push({ file: f, obj });
    }
  }
  return docs;
}
