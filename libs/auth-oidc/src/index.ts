export * from './claims.js';
export * from './strategy.js';
