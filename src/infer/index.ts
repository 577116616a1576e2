// Inference on the user's images: restoring trained networks and predicting with them.
export { Predictor, readImage } from './predict';
export type { PredictorOptions, ClassScore, SegmentationPrediction, DecodedImage, ImageInput, NamedImage, Explanation } from './predict';
export { restoreNetwork } from './restore';
export { gradCam } from './gradcam';
export type { GradCamOptions, GradCamResult } from './gradcam';
export type { RestoreOptions, RestoredNetwork, Network, Normalization } from './restore';
export { optimizeForInference, OptimizedForInference, LayoutChooser } from './optimize';
export type { InferenceLayout } from './optimize';
