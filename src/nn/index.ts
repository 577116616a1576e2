// tsvision.nn: modules, layers, initializers, and the functional namespace F.
export * from './module';
export * from './layers';
export { foldBatchNorm } from './fold';
export { withForwardHooks, withForwardWrappers } from './hooks';
export type { FoldReport } from './fold';
export * as init from './init';
export * as F from '../torch/functional';
