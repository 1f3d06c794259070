import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { loadConfigFile } from '../config/load.js';
import { FilesystemStore } from './filesystem-store.js';

/** `7d`, `12h`, `30m`, `45s` -> milliseconds. */
export function parseAge(s: string): number {
  const m = /^(\d+)([smhdw])$/.exec(s.trim());
  if (!m) throw new InvalidArgumentError('an age such as 45s, 30m, 12h, 7d or 2w');
  return Number(m[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86_400e3, w: 604_800e3 }[m[2] as 's' | 'm' | 'h' | 'd' | 'w'];
}

interface Filters {
  upstream?: string;
  repository?: string;
  olderThan?: number;
}

/** Every repository (as `upstream/name`) that links each digest. */
async function linksByDigest(root: string): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  const base = join(root, 'repositories');
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (!e.isDirectory()) continue;
      const p = join(dir, e.name);
      if (e.name === '_blobs' || e.name === '_manifests') {
        const repo = relative(base, dir).split(sep).join('/');
        for (const hex of await readdir(join(p, 'sha256')).catch(() => [] as string[])) {
          const d = `sha256:${hex}`;
          if (!out.has(d)) out.set(d, new Set());
          out.get(d)?.add(repo);
        }
      } else if (e.name !== '_tags') await walk(p);
    }
  };
  await walk(base);
  return out;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

/** The stores of the configuration's caching upstreams (one per directory), with the upstream names that use each. */
function storesOf(configFile: string, upstream?: string): Array<{ path: string; maxBytes: number; upstreams: string[] }> {
  const config = loadConfigFile(configFile);
  const byPath = new Map<string, { path: string; maxBytes: number; upstreams: string[] }>();
  for (const u of config.upstreams) {
    // A registry store is managed on the store registry itself (docs/configuration.md).
    if (!u.cache || u.cache.store.type !== 'filesystem' || (upstream !== undefined && u.name !== upstream)) continue;
    const s = byPath.get(u.cache.store.path) ?? { path: u.cache.store.path, maxBytes: u.cache.maxBytes, upstreams: [] };
    s.upstreams.push(u.name);
    byPath.set(s.path, s);
  }
  return [...byPath.values()];
}

function matches(repos: Set<string> | undefined, f: Filters, upstreams: string[]): boolean {
  if (f.repository === undefined) return true;
  const want = (f.upstream !== undefined ? [f.upstream] : upstreams).map((u) => `${u}/${f.repository}`);
  return want.some((w) => repos?.has(w));
}

/** Runs `registry-proxy cache ...`; resolves to the exit code. */
export async function runCacheCli(argv: readonly string[], out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  let code = 0;
  const program = new Command('registry-proxy cache').description('Inspect and manage the pull-through cache stores named in the configuration.').exitOverride().showHelpAfterError();
  const common = (c: Command) =>
    c
      .requiredOption('-c, --config <file>', 'the proxy configuration (its upstreams[].cache)')
      .option('--upstream <name>', 'only this upstream')
      .option('--repository <name>', 'only objects this repository links (its name upstream)')
      .option('--older-than <age>', 'only objects filled longer ago than this (45s, 30m, 12h, 7d, 2w)', parseAge);
  common(program.command('list').description('one line per object: digest, bytes, filled at, repositories')).action(async (o: Filters & { config: string }) => {
    for (const s of storesOf(o.config, o.upstream)) {
      const links = await linksByDigest(s.path);
      const store = await FilesystemStore.open(s.path, s.maxBytes);
      let n = 0;
      let bytes = 0;
      for await (const obj of store.list()) {
        if (o.olderThan !== undefined && Date.now() - obj.lastUsed < o.olderThan) continue;
        if (!matches(links.get(obj.digest), o, s.upstreams)) continue;
        n++;
        bytes += obj.size;
        out(`${obj.digest}\t${obj.size}\t${new Date(obj.lastUsed).toISOString()}\t${[...(links.get(obj.digest) ?? [])].sort().join(',')}`);
      }
      out(`# ${s.path}: ${n} objects, ${bytes} bytes`);
    }
  });
  common(program.command('verify').description('hash every object; corrupt ones are removed (exit code 1 when any was found)')).action(async (o: Filters & { config: string }) => {
    for (const s of storesOf(o.config, o.upstream)) {
      const links = await linksByDigest(s.path);
      const store = await FilesystemStore.open(s.path, s.maxBytes);
      let ok = 0;
      let bad = 0;
      for await (const obj of store.list()) {
        if (o.olderThan !== undefined && Date.now() - obj.lastUsed < o.olderThan) continue;
        if (!matches(links.get(obj.digest), o, s.upstreams)) continue;
        const got = await sha256File(store.objectPath(obj.digest));
        if (got === obj.digest) ok++;
        else {
          bad++;
          await store.remove(obj.digest);
          out(`corrupt\t${obj.digest}\t(has ${got}): removed`);
        }
      }
      out(`# ${s.path}: ${ok} good, ${bad} corrupt`);
      if (bad > 0) code = 1;
    }
  });
  common(program.command('purge').description('remove objects; with --repository also its tags and links, and objects no other repository links')).action(async (o: Filters & { config: string }) => {
    if (o.repository === undefined && o.olderThan === undefined) throw new InvalidArgumentError('purge needs --repository, --older-than or both');
    for (const s of storesOf(o.config, o.upstream)) {
      const store = await FilesystemStore.open(s.path, s.maxBytes);
      let removed = 0;
      let bytes = 0;
      let links = await linksByDigest(s.path);
      const selected = new Set<string>();
      for await (const obj of store.list()) {
        if (o.olderThan !== undefined && Date.now() - obj.lastUsed < o.olderThan) continue;
        if (!matches(links.get(obj.digest), o, s.upstreams)) continue;
        selected.add(obj.digest);
      }
      if (o.repository !== undefined && o.olderThan === undefined) {
        // The repository goes entirely; what other repositories still link stays.
        for (const u of o.upstream !== undefined ? [o.upstream] : s.upstreams) await rm(join(s.path, 'repositories', u, o.repository), { recursive: true, force: true });
        links = await linksByDigest(s.path);
        for (const d of [...selected]) if ((links.get(d)?.size ?? 0) > 0) selected.delete(d);
      }
      for (const d of selected) {
        const st = await stat(store.objectPath(d)).catch(() => undefined);
        await store.remove(d);
        removed++;
        bytes += st?.size ?? 0;
      }
      out(`# ${s.path}: removed ${removed} objects, ${bytes} bytes`);
    }
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message?: string };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help') return 0;
    if (e.exitCode !== undefined && e.code?.startsWith('commander.')) return e.exitCode === 0 ? 0 : 2;
    process.stderr.write(`${e.message ?? String(err)}\n`);
    return 2;
  }
  return code;
}
