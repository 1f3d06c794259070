module.exports = { ...require('../../jest.preset.cjs'), displayName: 'kubelet-image-service', rootDir: __dirname };
