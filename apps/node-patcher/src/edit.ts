import { isDeepStrictEqual } from 'node:util';
import { parse as parseYaml } from 'yaml';

/**
 * Sets one top-level string field of a kubelet configuration with the smallest textual edit, so
 * every other byte of the file stays as the provider wrote it (a re-serialisation re-indents YAML
 * lists, `clusterDNS:\n- x` becoming `  - x`, and reflows JSON). The result is parsed back and
 * must equal the original with just that field set; otherwise the edit is refused.
 */
export function setTopLevelField(text: string, format: 'yaml' | 'json', field: string, value: string): string {
  const before = (format === 'json' ? JSON.parse(text) : parseYaml(text)) as Record<string, unknown>;
  const after = format === 'json' ? editJson(text, field, value) : editYaml(text, field, value);
  const parsed = (format === 'json' ? JSON.parse(after) : parseYaml(after)) as Record<string, unknown>;
  if (!isDeepStrictEqual(parsed, { ...before, [field]: value })) throw new Error(`cannot set ${field} without changing other settings`);
  return after;
}

function editYaml(text: string, field: string, value: string): string {
  const quoted = JSON.stringify(value); // a JSON string is a valid YAML double-quoted scalar
  const lines = text.split('\n');
  const at = lines.flatMap((l, i) => (new RegExp(`^${field}\\s*:`).test(l) ? [i] : []));
  if (at.length > 1) throw new Error(`${field} is set more than once`);
  if (at.length === 1) {
    const i = at[0] as number;
    const next = lines[i + 1];
    // Only a one-line scalar is replaced in place; a block value would leave its lines behind.
    if (next !== undefined && /^\s+\S/.test(next) && !/^\S/.test(next)) throw new Error(`${field} has a block value`);
    lines[i] = `${field}: ${quoted}`;
    return lines.join('\n');
  }
  return `${text}${text.endsWith('\n') || text === '' ? '' : '\n'}${field}: ${quoted}\n`;
}

function editJson(text: string, field: string, value: string): string {
  const key = JSON.stringify(field);
  const existing = new RegExp(`(${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*:\\s*)"(?:[^"\\\\]|\\\\.)*"`, 'g');
  const hits = text.match(existing) ?? [];
  if (hits.length === 1) return text.replace(existing, `$1${JSON.stringify(value)}`);
  // A new first member, indented like the file's first member.
  const m = /^(\s*\{)(\s*)(\S)/.exec(text);
  if (!m) throw new Error('not a JSON object');
  const [, open, gap, first] = m as unknown as [string, string, string, string];
  const member = `${key}: ${JSON.stringify(value)}`;
  if (first === '}') return text.replace(/^(\s*)\{\s*\}/, `$1{ ${member} }`);
  return `${open}${gap}${member},${gap}${text.slice((open + gap).length)}`;
}
