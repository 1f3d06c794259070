/**
 * Kubelet flags kept in shell-style variables: `VAR="--a=1 --b"` in an environment file
 * (kubeadm-flags.env, /etc/default/kubelet) or `Environment='VAR=--a=1'` in a systemd drop-in.
 */
export type FlagsFile = { readonly kind: 'env'; readonly variable: string } | { readonly kind: 'systemd'; readonly variable: string };

interface Found {
  readonly index: number;
  readonly prefix: string;
  readonly quote: string;
  readonly value: string;
}

function find(lines: string[], f: FlagsFile): Found | undefined | 'ambiguous' {
  const re = f.kind === 'env' ? new RegExp(`^(\\s*(?:export\\s+)?${f.variable}=)(["']?)(.*)\\2\\s*$`) : new RegExp(`^(\\s*Environment=)(["']?)${f.variable}=(.*)\\2\\s*$`);
  const hits: Found[] = [];
  lines.forEach((line, index) => {
    const m = re.exec(line);
    if (m) hits.push({ index, prefix: f.kind === 'env' ? (m[1] as string) : `${m[1] as string}`, quote: m[2] as string, value: m[3] as string });
  });
  if (hits.length > 1) return 'ambiguous';
  return hits[0];
}

/** The flags in the variable, in order (`--name=value` or `--name value` become [name, value]). */
export function readFlags(text: string, f: FlagsFile): Array<[string, string]> | undefined {
  const found = find(text.split('\n'), f);
  if (found === undefined || found === 'ambiguous') return undefined;
  const words = found.value.trim().split(/\s+/).filter(Boolean);
  const out: Array<[string, string]> = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    const m = /^--([^=]+)(?:=(.*))?$/.exec(w);
    if (!m) continue;
    if (m[2] !== undefined) out.push([m[1] as string, m[2]]);
    else if (words[i + 1] !== undefined && !(words[i + 1] as string).startsWith('--')) out.push([m[1] as string, words[++i] as string]);
    else out.push([m[1] as string, 'true']);
  }
  return out;
}

/**
 * Sets flags in the variable (replacing a flag that is there, appending one that is not), and
 * creates the variable when `create` is given. Throws when the file is not what it should be.
 */
export function setFlags(text: string, f: FlagsFile, flags: Readonly<Record<string, string>>, create?: string): string {
  const lines = text.split('\n');
  const found = find(lines, f);
  if (found === 'ambiguous') throw new Error(`${f.variable} is set more than once`);
  if (found === undefined) {
    if (create === undefined) throw new Error(`${f.variable} is not set`);
    const value = Object.entries(flags)
      .map(([k, v]) => `--${k}=${v}`)
      .join(' ');
    const line = f.kind === 'env' ? `${f.variable}="${value}"` : `Environment='${f.variable}=${value}'`;
    return create + (create.endsWith('\n') || create === '' ? '' : '\n') + `${line}\n`;
  }
  let words = found.value.trim().split(/\s+/).filter(Boolean);
  for (const [k, v] of Object.entries(flags)) {
    const next: string[] = [];
    for (let i = 0; i < words.length; i++) {
      const w = words[i] as string;
      if (w === `--${k}` && words[i + 1] !== undefined && !(words[i + 1] as string).startsWith('--')) {
        i++;
        continue;
      }
      if (w === `--${k}` || w.startsWith(`--${k}=`)) continue;
      next.push(w);
    }
    next.push(`--${k}=${v}`);
    words = next;
  }
  const q = found.quote || '"';
  lines[found.index] = f.kind === 'env' ? `${found.prefix}${q}${words.join(' ')}${q}` : `${found.prefix}${q}${f.variable}=${words.join(' ')}${q}`;
  return lines.join('\n');
}
