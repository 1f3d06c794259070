import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import { ProxyError } from '../codes.js';

/** The JWS algorithms the token service signs and verifies with. */
export type TokenAlgorithm = 'ES256' | 'RS256';

/** One verification key, with the `kid` (RFC 7638 thumbprint) tokens name it by. */
export interface VerificationKey {
  readonly kid: string;
  readonly alg: TokenAlgorithm;
  readonly key: KeyObject;
  readonly jwk: JWK;
}

/** The one active signing key. */
export interface SigningKey extends VerificationKey {
  readonly privateKey: KeyObject;
}

function algorithmOf(key: KeyObject, source: string): TokenAlgorithm {
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) return 'RS256';
  throw new ProxyError('RP_ERR_KEY_INVALID', `${source}: only EC P-256 (ES256) and RSA >= 2048 bits (RS256) keys are supported`);
}

async function describe(pub: KeyObject, source: string): Promise<VerificationKey> {
  const alg = algorithmOf(pub, source);
  const jwk = await exportJWK(pub);
  const kid = await calculateJwkThumbprint(jwk, 'sha256');
  return Object.freeze({ kid, alg, key: pub, jwk: Object.freeze({ ...jwk, kid, alg, use: 'sig' }) });
}

/**
 * The token service's keys: one private key signs, every listed key (the signer's and older or
 * newer public keys) verifies, so keys can rotate without downtime: publish the next key for
 * verification first, switch the signer, then drop the old key once its tokens have expired.
 */
export class KeySet {
  private constructor(
    readonly signer: SigningKey,
    readonly verifiers: ReadonlyMap<string, VerificationKey>,
  ) {}

  /** Builds a key set from a PEM private key and any number of extra PEM public (or private) keys. */
  static async fromPem(signingPem: string, extraPems: readonly string[] = []): Promise<KeySet> {
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(signingPem);
    } catch (cause) {
      throw new ProxyError('RP_ERR_KEY_INVALID', 'signing key: not a PEM private key', { cause });
    }
    const signer = { ...(await describe(createPublicKey(privateKey), 'signing key')), privateKey };
    const verifiers = new Map<string, VerificationKey>([[signer.kid, signer]]);
    for (const [i, pem] of extraPems.entries()) {
      let pub: KeyObject;
      try {
        pub = createPublicKey(pem);
      } catch (cause) {
        throw new ProxyError('RP_ERR_KEY_INVALID', `verification key ${i}: not a PEM public or private key`, { cause });
      }
      const v = await describe(pub, `verification key ${i}`);
      verifiers.set(v.kid, v);
    }
    return new KeySet(Object.freeze(signer), verifiers);
  }

  /** A fresh key that lives only in memory: tokens die with the process and replicas cannot share it. */
  static async ephemeral(alg: TokenAlgorithm = 'ES256'): Promise<KeySet> {
    const { privateKey } = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
    return KeySet.fromPem(privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
  }

  /** The JWKS document (RFC 7517) of every verification key. */
  jwks(): { keys: JWK[] } {
    return { keys: [...this.verifiers.values()].map((v) => v.jwk) };
  }
}
