// tsvision's tensor engine: import * as torch from 'tsvision/torch'.
export * from './tensor';
export * from './creation';
export * from './functional';
export * from './autograd';
export * from './runtime';
export { tidy, keep, scope, Scope, scopeDepth } from './memory';
export { op, Op, Reduction } from './ops';
export { OpProfiler, profileOps, formatOpProfile } from './profiler';
export type { OpProfile, OpStat } from './profiler';
export type { ReductionName } from './ops';
export * from './serialization';
export { withOneDnnLayout, oneDnnLayoutActive, oneDnnFallbacks, toOneDnnLayout, isOneDnnLayout } from './onednn';
