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
export { profileLayers, formatProfile } from './metrics/profile';
export type { Profile, ProfileOptions, LayerTime, LayerTypeTime } from './metrics/profile';
export { ClassificationMeter, topkHits, recallPerClass, classificationReport, mostConfused } from './metrics/classification';
export type { ClassScores, ConfusedPair } from './metrics/classification';
export { CalibrationMeter, CALIBRATION_BINS, fitTemperature } from './metrics/calibration';
export type { Calibration, CalibrationBin } from './metrics/calibration';
export { saveReliabilityPng } from './report/calibration';
export { saveMistakesPng } from './report/mistakes';
export { sampleImage, sampleFile } from './data/inspect';
export { ConfusionMatrix } from './metrics/confusion';
export { SegmentationMeter } from './metrics/segmentation';
export { saveConfusionPng } from './report/confusion';
export { train, evaluate, DEFAULT_CONFIG } from './train/trainer';
export type { TrainConfig, TrainResult, EpochRecord, Evaluation, Mistake } from './train/trainer';
export { saveCheckpoint, readCheckpoint, restoreCheckpoint, loadWeights } from './train/checkpoint';
export { backwardInParts, microBatches } from './train/accumulate';
export { Predictor } from './infer/predict';
// Segmentation training and evaluation, as `tsvision segment` and `eval` run them.
export { trainSegmentation, evaluateSegmentation, evaluateSegmentCheckpoint, segmentationData, enetClassWeights, loadBackbone, DEFAULT_SEGMENT_CONFIG, SEGMENT_RECIPES, PAPER_AUGMENT } from './train/segment';
export type { SegmentConfig, SegmentResult, SegmentEpoch, BestSegmentEpoch, SegmentationData, SegmentEvalOptions, ImageScore } from './train/segment';
// The learning-rate range test, fine-tuning, speed and the pictures the commands draw.
export { findLearningRate, findSegmentationLearningRate, LR_FIND_DEFAULTS } from './train/lr-find';
export type { LrFindOptions, LrFindResult } from './train/lr-find';
export { loadForFineTuning, trainMode } from './train/finetune';
export { measureLatency } from './metrics/speed';
export type { Latency, LatencyOptions } from './metrics/speed';
export { perImageScores, labelledPixels } from './metrics/segmentation';
export { heatmapPng, maskPng, overlayPng, saveSegmentationOverlays } from './report/overlay';
export { savePlotsPng } from './report/plot';
export type { PlotOptions, Series } from './report/plot';
// Runs side by side (`tsvision compare`).
export { findRuns, readRun, comparisonTable, plotComparison, bestFirst, differingSettings } from './report/compare';
export type { RunFacts } from './report/compare';
