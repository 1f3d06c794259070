export { claimList, claimText, readClaim } from './claims.js';
export { OidcStrategy, type OidcStrategyOptions } from './strategy.js';
