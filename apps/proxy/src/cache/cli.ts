import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { createCredentialProvider } from '@registry-proxy/registry-core';
import { loadConfigFile, resolveSecret } from '../config/load.js';
import { FilesystemStore } from './filesystem-store.js';
import { linkOfKey } from './registry-records.js';
import { registryStore, type RegistryStoreConfig } from './setup.js';
import type { ObjectInfo } from './store.js';

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

/** One store of the configuration, as the commands need it, whatever kind it is. */
interface CliStore {
  readonly name: string;
  readonly upstreams: string[];
  /** Whether `links` is cheap enough to print with every listing (a registry store reads one record per link). */
  readonly cheapLinks: boolean;
  list(): AsyncIterable<ObjectInfo>;
  /** Every repository (as `upstream/name`) that links each digest. */
  links(): Promise<Map<string, Set<string>>>;
  /** The digest of the stored bytes (undefined: gone meanwhile). */
  hash(digest: string): Promise<string | undefined>;
  /** Whether the store still lists the object (its file, its record): an object removed since it was listed (the proxy evicted it) is not corrupt. */
  listed(digest: string): Promise<boolean>;
  remove(digest: string): Promise<void>;
  /** Removes a repository's links and tag records, for these upstreams. */
  dropRepository(upstreams: readonly string[], repository: string): Promise<void>;
  close(): Promise<void>;
}

function filesystemCli(path: string, maxBytes: number, upstreams: string[]): CliStore {
  let opened: Promise<FilesystemStore> | undefined;
  const store = () => (opened ??= FilesystemStore.open(path, maxBytes));
  return {
    name: path,
    upstreams,
    cheapLinks: true,
    async *list() {
      yield* (await store()).list();
    },
    links: () => linksByDigest(path),
    hash: async (d) => sha256File((await store()).objectPath(d)).catch(() => undefined),
    listed: async (d) =>
      stat((await store()).objectPath(d)).then(
        () => true,
        () => false,
      ),
    remove: async (d) => (await store()).remove(d),
    dropRepository: async (ups, repository) => {
      for (const u of ups) await rm(join(path, 'repositories', u, repository), { recursive: true, force: true });
    },
    close: async () => undefined,
  };
}

function registryCli(c: RegistryStoreConfig, key: string, upstreams: string[]): CliStore {
  const store = registryStore(c, createCredentialProvider(c.credentials, key, resolveSecret), {
    onUploadFailed: () => undefined,
  });
  const links = async () => {
    const out = new Map<string, Set<string>>();
    for await (const r of store.records.keyedRecords()) {
      const l = linkOfKey(r.key);
      if (!l) continue;
      if (!out.has(l.digest)) out.set(l.digest, new Set());
      out.get(l.digest)?.add(`${l.upstream}/${l.repository}`);
    }
    return out;
  };
  return {
    name: `${c.url}/${c.repository}`,
    upstreams,
    cheapLinks: false,
    list: () => store.list(),
    links,
    hash: (d) => store.hash(d),
    listed: async (d) => (await store.records.getObject(d)) !== undefined,
    remove: (d) => store.remove(d),
    dropRepository: async (ups, repository) => {
      const doomed: string[] = [];
      for await (const r of store.records.keyedRecords()) {
        const [what, upstream, repo] = r.key;
        if ((what === 'link' || what === 'tag') && upstream !== undefined && ups.includes(upstream) && repo === repository) doomed.push(r.manifest);
      }
      for (const m of doomed) await store.records.deleteManifest(m);
    },
    close: () => store.close(),
  };
}

/** The stores of the configuration's caching upstreams (one per directory or store repository), with the upstream names that use each. */
function storesOf(configFile: string, upstream?: string): CliStore[] {
  const config = loadConfigFile(configFile);
  const byWhere = new Map<string, { make: (ups: string[]) => CliStore; upstreams: string[] }>();
  for (const [i, u] of config.upstreams.entries()) {
    if (!u.cache || (upstream !== undefined && u.name !== upstream)) continue;
    const st = u.cache.store;
    const maxBytes = u.cache.maxBytes;
    const where = st.type === 'filesystem' ? st.path : `${st.url}/${st.repository}`;
    const s =
      byWhere.get(where) ??
      ({
        make: st.type === 'filesystem' ? (ups: string[]) => filesystemCli(st.path, maxBytes, ups) : (ups: string[]) => registryCli(st, `upstreams.${i}.cache.store.credentials`, ups),
        upstreams: [],
      } as { make: (ups: string[]) => CliStore; upstreams: string[] });
    s.upstreams.push(u.name);
    byWhere.set(where, s);
  }
  return [...byWhere.values()].map((s) => s.make(s.upstreams));
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
  const selected = async (s: CliStore, o: Filters, links: Map<string, Set<string>> | undefined): Promise<ObjectInfo[]> => {
    const out: ObjectInfo[] = [];
    for await (const obj of s.list()) {
      if (o.olderThan !== undefined && Date.now() - obj.lastUsed < o.olderThan) continue;
      if (links && !matches(links.get(obj.digest), o, s.upstreams)) continue;
      out.push(obj);
    }
    return out;
  };
  const each = async (o: Filters & { config: string }, run: (s: CliStore) => Promise<void>) => {
    for (const s of storesOf(o.config, o.upstream)) {
      try {
        await run(s);
      } catch (err) {
        throw new Error(`${s.name}: ${(err as Error).message}`, { cause: err });
      } finally {
        await s.close();
      }
    }
  };
  common(program.command('list').description('one line per object: digest, bytes, filled at, repositories (for a registry store: with --repository only)')).action(
    async (o: Filters & { config: string }) => {
      await each(o, async (s) => {
        const links = s.cheapLinks || o.repository !== undefined ? await s.links() : undefined;
        let n = 0;
        let bytes = 0;
        for (const obj of await selected(s, o, links)) {
          n++;
          bytes += obj.size;
          out(`${obj.digest}\t${obj.size}\t${new Date(obj.lastUsed).toISOString()}\t${[...(links?.get(obj.digest) ?? [])].sort().join(',')}`);
        }
        out(`# ${s.name}: ${n} objects, ${bytes} bytes`);
      });
    },
  );
  common(program.command('verify').description('hash every object; corrupt ones are removed (exit code 1 when any was found)')).action(async (o: Filters & { config: string }) => {
    await each(o, async (s) => {
      const links = o.repository === undefined ? undefined : await s.links();
      let ok = 0;
      let bad = 0;
      let gone = 0;
      for (const obj of await selected(s, o, links)) {
        const got = await s.hash(obj.digest);
        if (got === obj.digest) ok++;
        else if (got === undefined && !(await s.listed(obj.digest))) {
          // Removed since the listing (the proxy evicted it, another purge): nothing is wrong with it.
          gone++;
          out(`gone\t${obj.digest}\t(removed meanwhile)`);
        } else {
          bad++;
          await s.remove(obj.digest);
          out(`corrupt\t${obj.digest}\t(has ${got ?? 'no bytes'}): removed`);
        }
      }
      out(`# ${s.name}: ${ok} good, ${bad} corrupt${gone > 0 ? `, ${gone} removed meanwhile` : ''}`);
      if (bad > 0) code = 1;
    });
  });
  common(program.command('purge').description('remove objects; with --repository also its tags and links, and objects no other repository links')).action(async (o: Filters & { config: string }) => {
    if (o.repository === undefined && o.olderThan === undefined) throw new InvalidArgumentError('purge needs --repository, --older-than or both');
    await each(o, async (s) => {
      const links = o.repository === undefined ? undefined : await s.links();
      const chosen = await selected(s, o, links);
      let doomed = chosen;
      if (o.repository !== undefined && o.olderThan === undefined) {
        // The repository goes entirely; what other repositories still link stays.
        await s.dropRepository(o.upstream !== undefined ? [o.upstream] : s.upstreams, o.repository);
        const left = await s.links();
        doomed = chosen.filter((obj) => (left.get(obj.digest)?.size ?? 0) === 0);
      }
      let bytes = 0;
      for (const obj of doomed) {
        await s.remove(obj.digest);
        bytes += obj.size;
      }
      out(`# ${s.name}: removed ${doomed.length} objects, ${bytes} bytes`);
    });
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
