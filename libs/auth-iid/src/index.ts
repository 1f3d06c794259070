export * from './aws.js';
export * from './gcp.js';
export * from './azure.js';
export * from './strategy.js';
export * from './providers.js';
