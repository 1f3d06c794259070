module.exports = { ...require('../../jest.preset.cjs'), displayName: 'auth-iid', rootDir: __dirname };
