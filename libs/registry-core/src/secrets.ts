import { readFileSync } from 'node:fs';
import { ProxyError } from './codes.js';

/** A secret in configuration: inline, from an environment variable, or from a file (a mounted Kubernetes Secret). */
export type SecretRef = string | { readonly env: string } | { readonly file: string };

/** Resolves a secret; `key` names it in errors, which never contain the value. A file's trailing newline is dropped. */
export function resolveSecret(ref: SecretRef, key: string, env: NodeJS.ProcessEnv = process.env): string {
  if (typeof ref === 'string') return ref;
  if ('env' in ref) {
    const v = env[ref.env];
    if (v === undefined || v === '') throw new ProxyError('RP_ERR_CONFIG_READ', `${key}: environment variable ${ref.env} is not set`);
    return v;
  }
  try {
    return readFileSync(ref.file, 'utf8').replace(/\r?\n$/, '');
  } catch (cause) {
    throw new ProxyError('RP_ERR_CONFIG_READ', `${key}: cannot read ${ref.file}: ${(cause as NodeJS.ErrnoException).code ?? cause}`, { cause });
  }
}
