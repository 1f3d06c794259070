import { pino, type DestinationStream, type Logger } from 'pino';

/** JSON lines; anything that looks like a secret is redacted should it ever be logged. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const paths = ['password', 'auth', 'registryToken', 'identityToken', '*.password', '*.auth', '*.registryToken', '*.identityToken'];
  return pino({ level, base: { app: 'kubelet-image-service' }, redact: { paths, censor: '[redacted]' } }, destination);
}
