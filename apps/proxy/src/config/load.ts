import { readFileSync } from 'node:fs';
import { ProxyError } from '@registry-proxy/registry-core';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ConfigSchema, type Config } from './schema.js';

function formatIssues(issues: z.core.$ZodIssue[], source: string): string {
  const at = (path: readonly PropertyKey[]) => (path.length > 0 ? path.map(String).join('.') : '(top level)');
  return issues.flatMap((i) => (i.code === 'unrecognized_keys' ? i.keys.map((k) => `${source}: ${at([...i.path, k])}: unknown key`) : [`${source}: ${at(i.path)}: ${i.message}`])).join('\n');
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** Parses and validates configuration text; the error message names every bad key. */
export function parseConfig(text: string, source: string): Config {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true });
  } catch (cause) {
    throw new ProxyError('RP_ERR_CONFIG_INVALID', `${source}: not valid YAML: ${(cause as Error).message}`, { cause });
  }
  const result = ConfigSchema.safeParse(raw ?? {});
  if (!result.success) throw new ProxyError('RP_ERR_CONFIG_INVALID', `invalid configuration\n${formatIssues(result.error.issues, source)}`);
  return deepFreeze(result.data);
}

/** Reads and validates a configuration file. */
export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ProxyError('RP_ERR_CONFIG_READ', `cannot read configuration file ${path}: ${(cause as NodeJS.ErrnoException).code ?? cause}`, { cause });
  }
  return parseConfig(text, path);
}

/** Secrets are resolved by registry-core's resolveSecret; re-exported for the proxy's modules. */
export { resolveSecret } from '@registry-proxy/registry-core';

/** Reads a file that the configuration names (an htpasswd file), naming the key on failure. */
export function readConfiguredFile(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ProxyError('RP_ERR_CONFIG_READ', `${key}: cannot read ${path}: ${(cause as NodeJS.ErrnoException).code ?? cause}`, { cause });
  }
}
