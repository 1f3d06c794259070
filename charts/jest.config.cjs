module.exports = { ...require('../jest.preset.cjs'), displayName: 'charts', rootDir: __dirname };
