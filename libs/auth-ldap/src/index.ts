export { LdapStrategy, type LdapStrategyOptions } from './strategy.js';
