import type { IncomingMessage, ServerResponse } from 'node:http';

/** Requests that said `Expect: 100-continue` and have not been told to send their body yet. */
const waiting = new WeakSet<IncomingMessage>();

/**
 * The server's `checkContinue` listener: without one, Node answers `100 Continue` at once, so a
 * client that the proxy then refuses uploads its whole body first. With it, the request goes
 * to the app as any other, and the 100 is sent by {@link sendContinue} once the request has been
 * authorized; a refusal is the final answer and the body is never asked for.
 */
export function deferContinue(handle: (req: IncomingMessage, res: ServerResponse) => void) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    waiting.add(req);
    handle(req, res);
  };
}

/** Tells a client waiting on `Expect: 100-continue` to send its body (once; no-op otherwise). */
export function sendContinue(req: IncomingMessage, res: ServerResponse): void {
  if (!waiting.delete(req)) return;
  if (!res.headersSent && !res.destroyed) res.writeContinue();
}
