// tsvision's deployment formats: ONNX for onnxruntime-node (servers) and onnxruntime-web (browsers).
export { ONNX_OPSET, exportOnnx, onnxBytes, toOnnx } from './onnx';
export type { ExportableModule, OnnxExport, OnnxExportOptions, OnnxGraphSummary } from './onnx';
export type { Dim, ValueInfoProto } from './protobuf';
