export * from './escape.js';
export * from './strategy.js';
