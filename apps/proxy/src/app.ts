import { randomUUID } from 'node:crypto';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { RegistryError } from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';
import { sendContinue } from './expect.js';
import { requireOneHost } from './host.js';
import { clientGone, fromHttpError, sendError } from './respond.js';
import { registryHandler } from './routes/registry.js';
import { tokenRouter } from './routes/token.js';
import { loginRouter } from './login/routes.js';
import { externalBase } from './external-base.js';
import type { Runtime } from './runtime.js';

/** The proxy's HTTP application: /v2 API, token endpoint, JWKS, health and metrics. */
export function createApp(runtime: Runtime, metrics: Metrics, logger: Logger): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', 'simple');
  // X-Forwarded-Proto/-Host count only from the configured reverse proxies (Express's proxy-addr).
  app.set('trust proxy', runtime.config.trustedProxies.length > 0 ? [...runtime.config.trustedProxies] : false);

  // One log line per request with identity and repository, never headers or secrets.
  app.use((req: Request, res: Response, next: NextFunction) => {
    const started = process.hrtime.bigint();
    const id = (typeof req.headers['x-request-id'] === 'string' && req.headers['x-request-id'].slice(0, 64)) || randomUUID();
    res.locals['req_id'] = id;
    res.on('close', () => {
      const route = (res.locals['route'] as string | undefined) ?? 'other';
      metrics.requests.inc({ route, method: req.method, status: String(res.statusCode) });
      // The line is built only when it will be written (this runs for every request).
      if (!logger.isLevelEnabled('info')) return;
      logger.info(
        {
          req_id: id,
          method: req.method,
          path: req.originalUrl.split('?')[0]?.slice(0, 512),
          route,
          status: res.statusCode,
          ms: Number(process.hrtime.bigint() - started) / 1e6,
          subject: res.locals['subject'],
          repository: res.locals['repository'],
          upstream: res.locals['upstream'],
          aborted: !res.writableFinished,
        },
        'request',
      );
    });
    next();
  });

  // The registry API comes first: nearly every request is /v2, and each layer Express walks
  // past costs a path match per request (the hot path, docs/benchmarks.md). No layer below
  // this one matches /v2, so the order changes nothing else. Express 5 hands a handler's
  // rejected promise to the error middleware below; wrapping a handler in `void` would drop
  // it and leave Node to exit on the unhandled rejection.
  app.use('/v2', requireOneHost, registryHandler(runtime, metrics, logger));
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
  // Only /v2 (handled above, where the 100 is sent once the request is authorized) reads no body
  // before it authorizes; everywhere else a waiting client may send it.
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (!/^\/v2(?:\/|$)/.test(req.path)) sendContinue(req, res);
    next();
  });
  app.use('/token', requireOneHost);
  app.use('/token', tokenRouter(runtime, metrics, logger));
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
    sendError(req, res, new RegistryError('NAME_UNKNOWN', { status: 404, message: 'not found' }), req.method === 'HEAD');
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
  return app;
}
