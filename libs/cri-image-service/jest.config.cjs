module.exports = { ...require('../../jest.preset.cjs'), displayName: 'cri-image-service', rootDir: __dirname };
