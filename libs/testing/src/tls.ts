import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A test CA (openssl) that issues server certificates for loopback names. */
export interface TestCa {
  readonly dir: string;
  readonly caFile: string;
  readonly caPem: string;
  /** Issues a certificate for 127.0.0.1 and localhost (plus `names`); returns the PEM file paths. */
  issue(label: string, names?: string[]): { certFile: string; keyFile: string; certPem: string };
}

const openssl = (args: string[], cwd: string) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });

export function createTestCa(): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'rp-ca-'));
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=registry-proxy test CA'], dir);
  const caFile = join(dir, 'ca.crt');
  return {
    dir,
    caFile,
    caPem: readFileSync(caFile, 'utf8'),
    issue(label, names = []) {
      const san = ['IP:127.0.0.1', 'DNS:localhost', ...names.map((n) => `DNS:${n}`)].join(',');
      writeFileSync(join(dir, `${label}.ext`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${label}.key`, '-out', `${label}.csr`, '-subj', `/CN=${label}`], dir);
      openssl(['x509', '-req', '-in', `${label}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${label}.crt`, '-days', '1', '-extfile', `${label}.ext`], dir);
      return { certFile: join(dir, `${label}.crt`), keyFile: join(dir, `${label}.key`), certPem: readFileSync(join(dir, `${label}.crt`), 'utf8') };
    },
  };
}
