export { StaticStrategy, type StaticStrategyOptions, type StaticUser } from './strategy.js';
export { isBcryptHash } from './htpasswd.js';
export { BcryptWorkers, type BcryptWorkersOptions } from './bcrypt-worker.js';
