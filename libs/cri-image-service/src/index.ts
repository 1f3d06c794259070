export * from './gen/runtime/v1/api.js';
export * from './backend.js';
export * from './server.js';
export * from './docker-backend.js';
export * from './cri-backend.js';
