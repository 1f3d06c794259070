import { waitFor } from './proc.js';

describe('waitFor', () => {
  it('returns once the check is truthy', async () => {
    let n = 0;
    await waitFor('the third check', async () => ++n >= 3, 2_000);
    expect(n).toBe(3);
  });

  it('fails after its time even when a check never settles, naming what it waited for', async () => {
    const t0 = Date.now();
    await expect(waitFor('a frozen server', () => new Promise(() => undefined), 300)).rejects.toThrow('timed out waiting for a frozen server: Error: the last check did not settle');
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('says what the last failing check threw', async () => {
    await expect(
      waitFor(
        'a port',
        async () => {
          throw new Error('ECONNREFUSED');
        },
        200,
      ),
    ).rejects.toThrow('timed out waiting for a port: Error: ECONNREFUSED');
  });
});
