module.exports = { ...require('../../jest.preset.cjs'), displayName: 'auth-static', rootDir: __dirname };
