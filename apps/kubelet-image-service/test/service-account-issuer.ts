import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';

/**
 * What kube-apiserver serves with --service-account-issuer (a stand-in: no API server runs
 * here): OIDC discovery and the JWKS, and projected service-account tokens as kubelet gets them
 * for a credential provider (TokenRequest with the provider's audience, bound to the pod), with
 * the `kubernetes.io` claims kube-apiserver writes.
 */
export interface TestServiceAccountIssuer {
  readonly issuer: string;
  /** A token for a pod in `namespace` running as service account `name`. */
  token(p: { namespace: string; serviceAccount: string; pod: string; audience: string; ttlSeconds?: number }): Promise<string>;
  /** The same claims signed by a key the issuer does not publish. */
  forged(p: { namespace: string; serviceAccount: string; audience: string }): Promise<string>;
  close(): Promise<void>;
}

export async function startServiceAccountIssuer(): Promise<TestServiceAccountIssuer> {
  const kp = await generateKeyPair('RS256', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(kp.publicKey)), kid: 'sa-key-1', alg: 'RS256', use: 'sig' };
  let issuer = '';
  const server: Server = createServer((req, res) => {
    if (req.url === '/.well-known/openid-configuration') {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({ issuer, jwks_uri: `${issuer}/openid/v1/jwks`, response_types_supported: ['id_token'], subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256'] }),
      );
    } else if (req.url === '/openid/v1/jwks') {
      res.setHeader('content-type', 'application/jwk-set+json');
      res.end(JSON.stringify({ keys: [jwk] }));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const sign = async (key: Parameters<SignJWT['sign']>[0], p: { namespace: string; serviceAccount: string; pod?: string; audience: string; ttlSeconds?: number }) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({
      'kubernetes.io': {
        namespace: p.namespace,
        serviceaccount: { name: p.serviceAccount, uid: `uid-${p.namespace}-${p.serviceAccount}` },
        ...(p.pod ? { pod: { name: p.pod, uid: `uid-${p.pod}` }, node: { name: 'node-1', uid: 'uid-node-1' } } : {}),
      },
    })
      .setProtectedHeader({ alg: 'RS256', kid: 'sa-key-1' })
      .setIssuer(issuer)
      .setSubject(`system:serviceaccount:${p.namespace}:${p.serviceAccount}`)
      .setAudience(p.audience)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + (p.ttlSeconds ?? 3600))
      .sign(key);
  };
  return {
    issuer,
    token: (p) => sign(kp.privateKey, p),
    async forged(p) {
      const other = await generateKeyPair('RS256');
      return sign(other.privateKey, p);
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}
