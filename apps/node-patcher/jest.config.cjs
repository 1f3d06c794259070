module.exports = { ...require('../../jest.preset.cjs'), displayName: 'node-patcher', rootDir: __dirname };
