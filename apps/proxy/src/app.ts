import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { RegistryError } from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';
import { Call, type RequestNotes, type TrustFn } from './call.js';
import { sendContinue } from './expect.js';
import { HOST_REQUIRED, hasOneHost } from './host.js';
import { observeRequest, requestId } from './request-log.js';
import { clientGone, fromHttpError, sendError } from './respond.js';
import { registryHandler } from './routes/registry.js';
import { tokenHandler } from './routes/token.js';
import { loginRouter } from './login/routes.js';
import { externalBase } from './external-base.js';
import type { Runtime } from './runtime.js';
import { PlainLines } from './logging.js';

/** The proxy's HTTP application: the request listener for its node:http(s) server. */
export interface App extends RequestListener {
  /** The Express application that serves everything but /v2 (token, JWKS, health, metrics, login). */
  readonly express: express.Express;
}

/** A request for one of the endpoints served outside Express: which, the path below it, and the query. */
export interface Target {
  readonly api: 'v2' | 'token';
  /** Below the endpoint's prefix: '' or '/...', still percent-encoded. */
  readonly path: string;
  /** The query without its '?', '' when there is none. */
  readonly search: string;
}

/**
 * The endpoint a request target names when it is /v2 or /token, else undefined. Origin-form
 * (`/v2/...`) is the norm; absolute-form (`http://host/v2/...`, which RFC 9112 §3.2.2 says a
 * server must accept) is read too. Paths match case-sensitively, as distribution's router does.
 */
export function apiTarget(url: string): Target | undefined {
  let target = url;
  if (target.charCodeAt(0) !== 47 /* / */) {
    if (!/^https?:\/\//i.test(target)) return undefined;
    const slash = target.indexOf('/', target.indexOf('//') + 2);
    target = slash < 0 ? '/' : target.slice(slash);
  }
  const api = target.startsWith('/v2') ? 'v2' : target.startsWith('/token') ? 'token' : undefined;
  if (api === undefined) return undefined;
  const q = target.indexOf('?');
  const path = target.slice(api.length + 1, q < 0 ? undefined : q);
  if (path !== '' && path.charCodeAt(0) !== 47) return undefined; // /v2foo is not the API
  return { api, path, search: q < 0 ? '' : target.slice(q + 1) };
}

/** The proxy's HTTP application: /v2 API, token endpoint, JWKS, health and metrics. */
export function createApp(runtime: Runtime, metrics: Metrics, logger: Logger): App {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', 'simple');
  // X-Forwarded-Proto/-Host count only from the configured reverse proxies (Express's proxy-addr).
  app.set('trust proxy', runtime.config.trustedProxies.length > 0 ? [...runtime.config.trustedProxies] : false);
  // The request line has a fixed, flat shape: written without the redaction pass (./logging.ts).
  const lines = new PlainLines(logger);

  // One log line and count per request (./request-log.ts); the routes note what they learn in res.locals.
  app.use((req: Request, res: Response, next: NextFunction) => {
    const id = requestId(req);
    res.locals['req_id'] = id;
    observeRequest(req, res, res.locals as RequestNotes, id, metrics, lines);
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok');
  });
  app.get('/readyz', (_req, res) => {
    res.type('text/plain').send('ready');
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  const jwks = (_req: Request, res: Response) => {
    res.locals['route'] = 'jwks';
    res.set('Cache-Control', 'public, max-age=300').json(runtime.keys.jwks());
  };
  app.get('/jwks', jwks);
  app.get('/.well-known/jwks.json', jwks);
  // /v2 sends the 100 once the request is authorized, /token when it reads its form (both
  // outside Express); here a waiting client may send its body at once.
  app.use((req: Request, res: Response, next: NextFunction) => {
    sendContinue(req, res);
    next();
  });
  const login = runtime.login;
  if (login) {
    app.use(
      '/login',
      loginRouter({
        provider: login.provider,
        secrets: login.secrets,
        sealer: login.sealer,
        base: (req) => externalBase(runtime, req),
        ...(login.config.redirectUrl ? { redirectUrl: login.config.redirectUrl } : {}),
        sessionTtlSeconds: login.config.sessionTtlSeconds,
        operatorGroups: login.config.operatorGroups,
        logger,
      }),
    );
  }

  app.use((req: Request, res: Response) => {
    sendError(req, res, new RegistryError('NAME_UNKNOWN', { message: 'not found' }), req.method === 'HEAD');
  });
  // Malformed bodies and anything unexpected: a registry error, never a stack trace.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const head = req.method === 'HEAD';
    if (clientGone(req, res)) return; // the client left: nobody to answer
    const known = err instanceof RegistryError ? err : fromHttpError(err);
    if (known) {
      sendError(req, res, known, head);
      return;
    }
    logger.error({ err, req_id: res.locals['req_id'] }, 'unhandled error');
    if (res.headersSent) res.destroy();
    else sendError(req, res, new RegistryError('UNKNOWN'), head);
  });

  // The registry API and the token endpoint run outside Express. Nearly every request is /v2
  // or /token, and Express's per-request work (prototype swaps on req and res, the router's
  // layer walk, its helpers) was a fifth of the CPU an uncoalesced manifest HEAD cost and more
  // of a token's (docs/benchmarks.md, the hot path). This one place picks them off by path;
  // Call gives the handlers what they used of Express (host, scheme and client address from
  // the same `trust proxy` function), and the log line, the Host check and the error writer
  // are the same functions Express's routes use.
  const trust = app.get('trust proxy fn') as TrustFn;
  const handlers = { v2: registryHandler(runtime, metrics, logger), token: tokenHandler(runtime, metrics, logger) };
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    const target = apiTarget(req.url ?? '');
    if (target === undefined) {
      app(req, res);
      return;
    }
    const call = new Call(req, res, target.path, target.search, trust);
    const id = requestId(req);
    observeRequest(req, res, call.notes, id, metrics, lines);
    if (!hasOneHost(req, call.host)) {
      sendError(req, res, new RegistryError('REQUEST_INVALID', { message: HOST_REQUIRED }), req.method === 'HEAD');
      return;
    }
    // Each answers its own failures; this catches only a failure of that answer itself, so
    // that no request can leave a rejected promise behind (Node exits on one).
    handlers[target.api](call, id).catch((err: unknown) => {
      logger.error({ err, req_id: id }, 'unhandled error');
      res.destroy();
    });
  };
  return Object.assign(listener, { express: app });
}
