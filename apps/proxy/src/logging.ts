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
