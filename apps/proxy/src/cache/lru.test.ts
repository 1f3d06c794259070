import { Quota } from './lru.js';

describe('Quota', () => {
  it('picks the least recently used objects until the incoming bytes fit', () => {
    const q = new Quota(300);
    q.set('a', 100, 1);
    q.set('b', 100, 2);
    q.set('c', 100, 3);
    q.touch('a', 4); // a is now the most recent
    expect(q.victims(0)).toEqual([]);
    expect(q.victims(100)).toEqual(['b']);
    expect(q.victims(150)).toEqual(['b', 'c']);
  });

  it('never picks an object that is pinned (being read or filled), until it is unpinned', () => {
    const q = new Quota(200);
    q.set('old', 100, 1);
    q.set('new', 100, 2);
    const unpin = q.pin('old');
    const again = q.pin('old');
    expect(q.victims(100)).toEqual(['new']);
    unpin();
    expect(q.victims(100)).toEqual(['new']); // still read by the second reader
    again();
    expect(q.victims(100)).toEqual(['old']);
  });

  it('counts bytes as objects come and go', () => {
    const q = new Quota(1000);
    q.set('a', 10);
    q.set('a', 20); // replaced, not added twice
    q.set('b', 5);
    expect(q.bytes).toBe(25);
    q.delete('a');
    expect([q.bytes, q.count]).toEqual([5, 1]);
  });
});

describe('LRU ties', () => {
  it('regression: objects used within the same millisecond are evicted in the order they were used', () => {
    const q = new Quota(3000);
    q.set('a', 1000, 5);
    q.set('b', 1000, 5);
    q.set('c', 1000, 5);
    q.touch('a', 5);
    expect(q.victims(1000)).toEqual(['b']);
  });
});

describe('reservations', () => {
  it('room held by a fill under way counts against the quota until it is released', () => {
    const q = new Quota(300);
    q.set('a', 100, 1);
    q.set('b', 100, 2);
    expect(q.victims(100)).toEqual([]);
    const release = q.reserve(100);
    expect(q.victims(100)).toEqual(['a']);
    expect(q.bytes).toBe(200); // held room is not stored bytes
    release();
    release(); // once only
    expect(q.victims(100)).toEqual([]);
  });
});
