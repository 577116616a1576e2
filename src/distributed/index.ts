// Data-parallel training over libtorch's c10d (gloo on CPU, NCCL on GPU where compiled):
// import { distributed } from 'tsvision'.
export {
  initProcessGroup,
  destroyProcessGroup,
  isInitialized,
  getRank,
  getWorldSize,
  getBackend,
  availableBackends,
  allReduce,
  broadcast,
  allGather,
  barrier,
  resolveInit,
  initFromEnvironment,
  DEFAULT_TIMEOUT_MS,
} from './process-group';
export type { Backend, ReduceOp, InitOptions } from './process-group';
export { DistributedDataParallel, ddp, bucketed, convertSyncBatchNorm } from './ddp';
export type { DdpOptions } from './ddp';
export { shardOrder, shardLoader } from './sampler';
export type { ShardOptions } from './sampler';
export { launch, freePort } from './launch';
export type { LaunchOptions, LaunchResult } from './launch';
export { evalShare, rankSum, sumAcrossRanks } from './metrics';
