module.exports = { ...require('../../jest.preset.cjs'), displayName: 'auth-oidc', rootDir: __dirname };
