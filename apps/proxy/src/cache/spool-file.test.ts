import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpoolFile } from './spool-file.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rp-spool-file-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('SpoolFile', () => {
  it('appends writes and writevs in order, counts them, and a reader sees them while it is written', async () => {
    const spool = await SpoolFile.create(join(dir, 'a'));
    await spool.write(Buffer.from('abc'));
    await spool.writev([Buffer.from('de'), Buffer.alloc(0), Buffer.from('fgh')]);
    expect(spool.written).toBe(8);
    const reader = await spool.openReader();
    const buf = Buffer.alloc(16);
    expect(await reader.read(buf, 2)).toBe(6);
    expect(buf.subarray(0, 6).toString()).toBe('cdefgh');
    await reader.close();
    await spool.close();
    await spool.close(); // once
    expect(readFileSync(spool.path, 'utf8')).toBe('abcdefgh');
  });

  it('never opens a file that exists (two fills cannot share one)', async () => {
    writeFileSync(join(dir, 'taken'), 'x');
    await expect(SpoolFile.create(join(dir, 'taken'))).rejects.toMatchObject({ code: 'EEXIST' });
    expect(readFileSync(join(dir, 'taken'), 'utf8')).toBe('x');
  });

  it('discard removes the file; a reader opened before keeps reading it', async () => {
    const spool = await SpoolFile.create(join(dir, 'b'));
    await spool.write(Buffer.alloc(4096, 7));
    const reader = await spool.openReader();
    await spool.discard();
    expect(existsSync(spool.path)).toBe(false);
    const buf = Buffer.alloc(4096);
    expect(await reader.read(buf, 0)).toBe(4096);
    expect(buf.every((b) => b === 7)).toBe(true);
    await reader.close();
    await spool.discard(); // again: nothing left, no error
  });
});
