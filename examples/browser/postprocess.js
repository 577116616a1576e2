// What both deployments (the pages here, examples/server/) do with a network's output: the k most probable
// classes of a classifier, the most probable class per pixel of a segmentation network. Plain functions on
// onnxruntime's output data, the same in browsers and in Node.

/** Classifier logits [1, K] → [{ name, index, p }] sorted by probability, the first k. */
export function topK(logits, classes, k = 5) {
  const v = Array.from(logits);
  const max = Math.max(...v);
  const e = v.map((x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x, i) => ({ name: classes[i] ?? `class ${i}`, index: i, p: x / sum })).sort((a, b) => b.p - a.p).slice(0, k);
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
