module.exports = { ...require('../../jest.preset.cjs'), displayName: 'registry-core', rootDir: __dirname };
