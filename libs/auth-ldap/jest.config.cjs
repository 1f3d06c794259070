module.exports = { ...require('../../jest.preset.cjs'), displayName: 'auth-ldap', rootDir: __dirname };
