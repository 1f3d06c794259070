#!/usr/bin/env node
import { Command } from 'commander';
import { loadConfig } from './config.js';
import { createLogger } from './logging.js';
import { startImageService } from './service.js';

const program = new Command()
  .name('kubelet-image-service')
  .description("A CRI image service for kubelet's --image-service-endpoint that adds registry credentials to every pull.")
  .requiredOption('-c, --config <file>', 'YAML configuration file')
  .showHelpAfterError();

async function main(): Promise<number> {
  program.parse();
  const { config: file } = program.opts<{ config: string }>();
  let config;
  try {
    config = loadConfig(file);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const logger = createLogger(config.log.level);
  let service;
  try {
    service = await startImageService(config, logger);
  } catch (err) {
    logger.fatal((err as Error).message);
    return 1;
  }
  const running = service;
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      void running.close().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exit(1);
  },
);
