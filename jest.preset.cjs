// Shared Jest settings. TypeScript and the ESM-only dependencies (jose and friends) are
// compiled to CommonJS by swc, so Jest runs without --experimental-vm-modules.
const path = require('node:path');
const esmOnly = ['jose', 'openid-client', 'oauth4webapi', 'pkijs', 'asn1js', 'bytestreamjs', '@noble', '@peculiar', '@kubernetes', 'jsonpath-plus', 'kubernetes-models', '@kubernetes-models'];
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.(t|j|mj)s$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }] },
  transformIgnorePatterns: [`/node_modules/(?!(${esmOnly.join('|')})/)`],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json'],
  moduleNameMapper: {
    '^@registry-proxy/([a-z-]+)$': path.join(__dirname, 'libs/$1/src/index.ts'),
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testMatch: ['**/*.test.ts'],
};
