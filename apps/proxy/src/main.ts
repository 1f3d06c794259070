#!/usr/bin/env node
import { Command } from 'commander';
import { destination } from 'pino';
import { ProxyError } from '@registry-proxy/registry-core';
import { DEFAULT_CONFIG_YAML } from './config/default.js';
import { loadConfigFile, parseConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { createLogger, stdoutLines } from './logging.js';
import { createRuntime } from './runtime.js';
import { startProxy } from './server.js';
import { revokeSubject, StateRevocations } from './state/revocations.js';
import { createSharedState } from './state/shared.js';

const program = new Command()
  .name('registry-proxy')
  .description('An authenticating proxy for container registries (Registry v2 / OCI distribution).')
  .option('-c, --config <file>', 'YAML configuration file (env REGISTRY_PROXY_CONFIG); without one the embedded default is used')
  .option('--check-config', 'validate the configuration (and the files, keys and secrets it names), then exit')
  .option('--print-default-config', 'print the embedded default configuration and exit')
  .option('--revoke-subject <subject>', "refuse the refresh tokens this account holds now, on every replica sharing the configuration's state.redis, then exit")
  .showHelpAfterError();

async function main(): Promise<number> {
  // `registry-proxy cache list|verify|purge ...` manages the cache stores (src/cache/cli.ts).
  if (process.argv[2] === 'cache') return (await import('./cache/cli.js')).runCacheCli(process.argv.slice(3));
  program.parse();
  const opts = program.opts<{ config?: string; checkConfig?: boolean; printDefaultConfig?: boolean; revokeSubject?: string }>();
  if (opts.printDefaultConfig) {
    process.stdout.write(DEFAULT_CONFIG_YAML);
    return 0;
  }
  const file = opts.config ?? process.env['REGISTRY_PROXY_CONFIG'];
  let config: Config;
  try {
    config = file ? loadConfigFile(file) : parseConfig(DEFAULT_CONFIG_YAML, 'embedded default');
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  if (opts.revokeSubject !== undefined) return revoke(config, opts.revokeSubject);
  // With --check-config, stdout carries only the verdict; warnings go to stderr.
  const logger = opts.checkConfig ? createLogger('warn', destination(2)) : createLogger(config.log.level, stdoutLines());
  if (!file) logger.warn('no configuration file: using the embedded default (Docker Hub, user demo/demo, pull only); see --print-default-config');
  // glibc reads this before any JavaScript runs, so it can only be a hint here (docs/benchmarks.md).
  if (!opts.checkConfig && process.platform === 'linux' && process.env['MALLOC_TRIM_THRESHOLD_'] === undefined) {
    logger.info('MALLOC_TRIM_THRESHOLD_ is not set: pushes of large layers cost about twice the CPU (the image and `npm start` set 67108864)');
  }
  if (opts.checkConfig) {
    try {
      const runtime = await createRuntime(config, logger);
      await runtime.close();
    } catch (err) {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      return 2;
    }
    process.stdout.write(`configuration OK (${file ?? 'embedded default'})\n`);
    return 0;
  }
  let proxy;
  try {
    proxy = await startProxy(config, logger);
  } catch (err) {
    if (err instanceof ProxyError) logger.fatal(err.message);
    else logger.fatal({ err }, 'cannot start');
    return 1;
  }
  const running = proxy;
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      running.close().then(resolve, (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        resolve();
      });
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  return 0;
}

/** --revoke-subject: writes the revocation record to the shared store the replicas read. */
async function revoke(config: Config, subject: string): Promise<number> {
  if (config.state.redis === undefined) {
    process.stderr.write('--revoke-subject needs state.redis: with in-memory state each replica keeps its own records, out of reach of this command\n');
    return 2;
  }
  let state;
  try {
    state = await createSharedState(config.state, createLogger('warn', destination(2)));
    await revokeSubject(new StateRevocations(state.store, config.tokens.refreshTtlSeconds), subject);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    await state?.close();
  }
  process.stdout.write(`refresh tokens of ${JSON.stringify(subject)} issued until now are refused\n`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`fatal: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  },
);
