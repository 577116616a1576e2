// What both deployments (the pages here, examples/server/) do with a network's output: the k most probable
// classes of a classifier, the most probable class per pixel of a segmentation network. Plain functions on
// onnxruntime's output data, the same in browsers and in Node. An export made with --with-preprocessing
// (model card: preprocessing 'in-graph') already returns probabilities or class ids: topClasses and classMap
// read either kind of output as its card says.

/** Whether the graph takes raw pixels and returns answers (`tsvision export --with-preprocessing`). */
export const inGraph = (card) => card.preprocessing === 'in-graph';

/** Classifier logits [1, K] → [{ name, index, p }] sorted by probability, the first k. */
export function topK(logits, classes, k = 5) {
  const v = Array.from(logits);
  const max = Math.max(...v);
  const e = v.map((x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return rankProbabilities(e.map((x) => x / sum), classes, k);
}

/** Class probabilities [1, K] (in-graph softmax) → [{ name, index, p }] sorted by probability, the first k. */
export function rankProbabilities(probabilities, classes, k = 5) {
  return Array.from(probabilities, (p, i) => ({ name: classes[i] ?? `class ${i}`, index: i, p })).sort((a, b) => b.p - a.p).slice(0, k);
}

/** A classifier's output tensor, logits or (in-graph) probabilities as its card says → the k most probable classes. */
export function topClasses(output, card, k = 5) {
  return inGraph(card) ? rankProbabilities(output.data, card.classes, k) : topK(output.data, card.classes, k);
}

/** A segmentation network's output, logits or (in-graph) class ids as its card says → { labels, width, height }. */
export function classMap(output, card) {
  if (!inGraph(card)) return argmaxClasses(output);
  const [, h, w] = output.dims;
  // uint8 class ids as they are; int64 ones (over 256 classes) arrive as BigInt64Array.
  const labels = output.type === 'int64' ? Int32Array.from(output.data, Number) : output.data;
  return { labels, width: w, height: h };
}

/** Segmentation logits [1, K, H, W] (an onnxruntime tensor: data, dims) → the most likely class per pixel (H × W, row-major). */
export function argmaxClasses(logits) {
  const [, k, h, w] = logits.dims;
  const n = h * w;
  const labels = new Uint8Array(n);
  const best = logits.data.slice(0, n);
  for (let c = 1; c < k; c++) {
    const plane = logits.data.subarray(c * n, (c + 1) * n);
    for (let i = 0; i < n; i++) if (plane[i] > best[i]) (best[i] = plane[i]), (labels[i] = c);
  }
  return { labels, width: w, height: h };
}
