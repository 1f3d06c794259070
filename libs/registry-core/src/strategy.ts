import { Strategy } from 'passport-strategy';
import type { IncomingMessage } from 'node:http';
import { formatChallenge } from './challenge.js';
import { parseBasicAuthorization, type AuthOutcome, type CredentialVerifier } from './identity.js';

/**
 * A Passport strategy over HTTP Basic credentials: subclasses implement {@link verify} and say
 * allow, deny or "not mine". In Passport terms allow is `success`, deny is `fail` (401 with a
 * Basic challenge), "not mine" is `pass` and a backend failure is `error`.
 */
export abstract class BasicCredentialStrategy extends Strategy implements CredentialVerifier {
  abstract readonly name: string;
  protected readonly realm: string;

  protected constructor(realm = 'registry-proxy') {
    super();
    this.realm = realm;
  }

  abstract verify(username: string, password: string): Promise<AuthOutcome>;

  override authenticate(req: IncomingMessage): void {
    const challenge = formatChallenge('Basic', { realm: this.realm });
    const creds = parseBasicAuthorization(req.headers.authorization);
    if (!creds) {
      this.fail(challenge, 401);
      return;
    }
    this.verify(creds.username, creds.password).then(
      (outcome) => {
        if (outcome.result === 'allow') this.success(outcome.identity);
        else if (outcome.result === 'deny') this.fail(challenge, 401);
        else this.pass();
      },
      (err: unknown) => this.error(err instanceof Error ? err : new Error(String(err))),
    );
  }
}
