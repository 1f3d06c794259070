import { escapeDnValue, escapeFilterValue, fillTemplate } from './escape.js';

describe('LDAP escaping', () => {
  it('escapes filter values per RFC 4515', () => {
    expect(escapeFilterValue('a*b(c)d\\e\0f')).toBe('a\\2ab\\28c\\29d\\5ce\\00f');
    expect(escapeFilterValue('plain.user-1@example.org')).toBe('plain.user-1@example.org');
    expect(escapeFilterValue('Jörg')).toBe('Jörg');
  });
  it('escapes DN values per RFC 4514', () => {
    expect(escapeDnValue('a,b+c"d\\e<f>g;h=i')).toBe('a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h\\=i');
    expect(escapeDnValue(' lead')).toBe('\\ lead');
    expect(escapeDnValue('#hash')).toBe('\\#hash');
    expect(escapeDnValue('trail ')).toBe('trail\\ ');
    expect(escapeDnValue('nul\0')).toBe('nul\\00');
  });
  it('fills templates with escaped values and refuses unknown placeholders', () => {
    expect(fillTemplate('(&(uid={{username}})(memberOf={{dn}}))', { username: '*', dn: 'cn=x' }, escapeFilterValue)).toBe('(&(uid=\\2a)(memberOf=cn=x))');
    expect(() => fillTemplate('({{nope}})', {}, escapeFilterValue)).toThrow('unknown placeholder {{nope}}');
  });
});
