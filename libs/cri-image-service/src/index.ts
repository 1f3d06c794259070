export * from './gen/runtime/v1/api.js';
