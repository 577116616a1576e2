// tsvision: import { torch, nn, optim, data, models, methods, distributed, onnx, infer } from 'tsvision'.
export * as torch from './torch';
export * as nn from './nn';
export * as optim from './optim';
export * as data from './data';
export * as models from './models';
export * as methods from './methods';
export * as distributed from './distributed';
export * as onnx from './export';
export * as infer from './infer';
export { summary, formatSummary } from './metrics/summary';
export { ClassificationMeter, topkHits } from './metrics/classification';
export { ConfusionMatrix } from './metrics/confusion';
export { SegmentationMeter } from './metrics/segmentation';
export { saveConfusionPng } from './report/confusion';
export { train, evaluate, DEFAULT_CONFIG } from './train/trainer';
export type { TrainConfig, TrainResult, EpochRecord } from './train/trainer';
export { saveCheckpoint, readCheckpoint, restoreCheckpoint, loadWeights } from './train/checkpoint';
export { Predictor } from './infer/predict';
