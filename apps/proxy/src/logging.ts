import { pino, type DestinationStream, type Logger } from 'pino';

/** Paths pino removes from every log line, should any of them ever be logged by mistake. */
export const REDACT_PATHS = [
  'authorization',
  'password',
  'token',
  'refresh_token',
  'access_token',
  '*.authorization',
  '*.password',
  '*.token',
  '*.refresh_token',
  '*.access_token',
  'headers.authorization',
  '*.headers.authorization',
  'headers.cookie',
  '*.headers.cookie',
];

/** The root logger: JSON lines, secrets redacted. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, base: { app: 'registry-proxy' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination);
}

/**
 * The proxy's log output: file descriptor 1 through sonic-boom, asynchronous, flushed on exit,
 * as pino's own default, with each line handed over as bytes (sonic-boom's buffer mode) rather
 * than as text. In text mode, sonic-boom measures the UTF-8 length of every line and, while a
 * write is in flight, of all the text queued behind it, re-joining that text each time: at
 * thousands of lines a second, with a write always in flight, that re-measuring was about a
 * twelfth of a token request's instructions, growing with the queue. Here each line is encoded
 * once (Buffer.from) and a queued batch is joined once, when it is written. Same bytes, same
 * order, same fd.
 */
export function stdoutLines(fd = 1): DestinationStream & { flush(cb?: (err?: Error) => unknown): void } {
  const out = pino.destination({ dest: fd, sync: false, contentMode: 'buffer' });
  return {
    // Buffer mode takes bytes; sonic-boom's type says string.
    write: (line: string) => out.write(Buffer.from(line) as unknown as string),
    flush: (cb) => out.flush(cb),
  };
}

/**
 * The top-level keys {@link REDACT_PATHS} censor on a line made only of {@link LineValue}s:
 * each path's first segment, and for a `*.` path, every key whose value has that property
 * (which no string, number, boolean or array of strings has).
 */
type RedactedKey = 'authorization' | 'password' | 'token' | 'refresh_token' | 'access_token' | 'headers';

/** A value on a {@link PlainLines} line: none of them has a property a redaction path names. */
export type LineValue = string | number | boolean | undefined | readonly string[];

/** The fields of a {@link PlainLines} line: flat, and no key that {@link REDACT_PATHS} would censor. */
export type LineFields = { readonly [key: string]: LineValue } & { readonly [K in RedactedKey]?: never };

/**
 * The writer of the lines written for every request (the request line, the token audit line):
 * the same logger and output, without pino's redaction pass. That pass runs each of the 14
 * paths over every field of every line (re-parsing each path each time); on a token request
 * it was two thirds of the cost of its two log lines, and a tenth of the request's CPU. Here it
 * cannot change a byte: {@link LineFields} admits no key a path starts with and no value with
 * a property, so every path misses, which apps/proxy/src/logging.test.ts checks against the
 * redacting logger. Lines with other shapes (errors, objects) go through the redacting logger.
 */
export class PlainLines {
  private readonly out: Logger;

  constructor(logger: Logger) {
    this.out = logger.child({}, { redact: [] });
  }

  /** Whether a line at `level` would be written (the caller builds none otherwise). */
  enabled(level: 'info' | 'warn'): boolean {
    return this.out.isLevelEnabled(level);
  }

  info(fields: LineFields, msg: string): void {
    this.out.info(fields, msg);
  }

  warn(fields: LineFields, msg: string): void {
    this.out.warn(fields, msg);
  }
}
