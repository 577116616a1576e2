// tsvision's deployment formats: ONNX for onnxruntime-node (servers) and onnxruntime-web (browsers).
export { ONNX_OPSET, exportOnnx, onnxBytes, toOnnx } from './onnx';
export type { ExportableModule, OnnxExport, OnnxExportOptions, OnnxGraphSummary } from './onnx';
export type { Dim, ValueInfoProto } from './protobuf';
export { CARD_FORMAT, CARD_METADATA_KEY, cardPath, classMapDtype, modelCard, writeCard } from './card';
export type { CardIo, CardSource, ModelCard } from './card';
export { CLASSES_OUTPUT, LOGITS_OUTPUT, PIXELS_INPUT, PROBABILITIES_OUTPUT, PixelPipeline, classMapDifferences, pixelShape } from './preprocess';
export type { PixelPipelineOptions } from './preprocess';
export { CHECK_INPUTS, checkNeedsMore, checkVerdict } from './check';
export type { CheckVerdict } from './check';
// int8 quantization of an exported graph (what `export --int8` runs): calibrate ranges, then write QDQ.
export { calibrate, quantizeModel, quantizeWeights, activationParams, activationsToQuantize, withCalibrationOutputs } from './quantize';
export type { CalibrateOptions, CalibrationMethod, QuantizeReport, TensorRange } from './quantize';
