import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freezeProcess } from './proc.js';

/** A real OpenLDAP slapd on loopback with users, groups and StartTLS (a test CA). */
export interface TestSlapd {
  readonly url: string;
  readonly caPem: string;
  readonly adminDN: string;
  readonly adminPassword: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** SIGSTOP / SIGCONT: a directory that accepts connections and never answers. */
  freeze(): void;
  thaw(): void;
}

export const BASE = 'dc=example,dc=org';
export const PASSWORDS = { alice: 'alice-ldap-pw', bob: 'bob-ldap-pw', 'o*(weird)': 'weird-pw' } as const;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return p;
}

export async function startSlapd(): Promise<TestSlapd> {
  const dir = mkdtempSync(join(tmpdir(), 'rp-slapd-'));
  mkdirSync(join(dir, 'db'));
  const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  sh('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=slapd test CA']);
  writeFileSync(join(dir, 'srv.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  sh('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=localhost']);
  sh('openssl', ['x509', '-req', '-in', 'srv.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.crt', '-days', '1', '-extfile', 'srv.ext']);
  const adminPassword = 'admin-secret';
  const hash = (pw: string) => sh('slappasswd', ['-s', pw]).trim();
  writeFileSync(
    join(dir, 'slapd.conf'),
    `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile ${dir}/slapd.pid
TLSCACertificateFile ${dir}/ca.crt
TLSCertificateFile ${dir}/srv.crt
TLSCertificateKeyFile ${dir}/srv.key
access to attrs=userPassword by anonymous auth by * none
access to * by * read
database mdb
maxsize 104857600
suffix "${BASE}"
rootdn "cn=admin,${BASE}"
rootpw ${hash(adminPassword)}
directory ${dir}/db
`,
  );
  const person = (uid: string, pw: string) => `dn: uid=${uid.replace(/([,+"\\<>;=])/g, '\\$1')},ou=people,${BASE}
objectClass: inetOrgPerson
uid: ${uid}
cn: ${uid}
sn: ${uid}
userPassword: ${hash(pw)}
`;
  writeFileSync(
    join(dir, 'data.ldif'),
    [
      `dn: ${BASE}\nobjectClass: dcObject\nobjectClass: organization\no: example\ndc: example\n`,
      `dn: ou=people,${BASE}\nobjectClass: organizationalUnit\nou: people\n`,
      `dn: ou=groups,${BASE}\nobjectClass: organizationalUnit\nou: groups\n`,
      ...Object.entries(PASSWORDS).map(([u, p]) => person(u, p)),
      `dn: cn=registry-admins,ou=groups,${BASE}\nobjectClass: groupOfNames\ncn: registry-admins\nmember: uid=alice,ou=people,${BASE}\n`,
      `dn: cn=devs,ou=groups,${BASE}\nobjectClass: groupOfNames\ncn: devs\nmember: uid=alice,ou=people,${BASE}\nmember: uid=bob,ou=people,${BASE}\n`,
    ].join('\n'),
  );
  sh('slapadd', ['-f', join(dir, 'slapd.conf'), '-l', join(dir, 'data.ldif')]);
  const port = await freePort();
  const url = `ldap://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const start = async () => {
    // -d 0: stay in the foreground, so the test owns the process.
    child = spawn('slapd', ['-f', join(dir, 'slapd.conf'), '-h', `${url}/`, '-d', '0'], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      try {
        execFileSync('ldapsearch', ['-x', '-H', url, '-b', BASE, '-s', 'base', '-LLL', 'dn'], { stdio: 'ignore' });
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new Error('slapd did not start');
  };
  await start();
  return {
    url,
    caPem: execFileSync('cat', [join(dir, 'ca.crt')]).toString(),
    adminDN: `cn=admin,${BASE}`,
    adminPassword,
    start,
    async stop() {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null) return;
      c.kill('SIGCONT');
      await new Promise<void>((r) => {
        c.once('exit', () => r());
        c.kill('SIGTERM');
      });
    },
    freeze: () => void (child?.pid && freezeProcess(child.pid)),
    thaw: () => void child?.kill('SIGCONT'),
  };
}
