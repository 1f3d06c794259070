// The full run of tools/test.mjs (`npm test`) uses this config: every project, as jest.config.cjs,
// plus a branch-coverage floor on the upstream wire files (HTTP/1 client, connection, head and
// framing parser, body decoding, buffer pool, outbound proxy). Only these files are instrumented,
// so the coverage costs the run little. Each file must keep 95% of its branches covered.
const wire = 'libs/registry-core/src/upstream/{connection,response-reader,request-writer,http1,head,body,buffer-pool,outbound-proxy}.ts';
module.exports = {
  ...require('./jest.config.cjs'),
  collectCoverageFrom: [wire],
  coverageThreshold: { [`./${wire}`]: { branches: 95 } },
  coverageReporters: ['text-summary'],
  coverageDirectory: '<rootDir>/tmp/coverage',
};
