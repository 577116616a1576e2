// Multi-scale, mirrored and sliding-window inference (DeepLab-V3 §4.3, PSPNet §5) against PyTorch computing the
// same averages with the independent ENet definition (scripts/reference_models.py) and the same weights;
// padding of sizes the network cannot take against PyTorch's F.pad.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { ENet } from '../../src/models/enet';
import { forwardAnySize, predictMultiScale, slidingProbabilities } from '../../src/models/segmentation';
import { assertClose, runTorch } from '../helpers/pytorch';

const ref = runTorch(`
import reference_models as R
torch.manual_seed(5)
m = R.random_bn_statistics(R.ENet(num_classes=4).eval())
for k, v in m.state_dict().items():
    O['sd.' + k] = v.clone()
x = torch.randn(2, 3, 32, 48)
O['x'] = x
def avg(x, scales, flip):
    h, w = x.shape[2:]
    acc, n = 0, 0
    for s in scales:
        xs = x if s == 1 else F.interpolate(x, size=(round(h * s), round(w * s)), mode='bilinear', align_corners=False)
        for f in ([False, True] if flip else [False]):
            l = m(xs.flip(3) if f else xs)
            l = l.flip(3) if f else l
            acc = acc + F.softmax(F.interpolate(l, size=(h, w), mode='bilinear', align_corners=False), 1)
            n += 1
    return acc / n
with torch.no_grad():
    O['multi'] = avg(x, [0.5, 1, 1.5], True)
    O['single'] = F.softmax(m(x), 1)
    # 30×45 is no multiple of 8: padded right and bottom with zeros, the logits cut back
    y = x[:, :, :30, :45].contiguous()
    O['y'] = y
    O['padded'] = m(F.pad(y, (0, 3, 0, 2)))[:, :, :30, :45].contiguous()

# Sliding windows as PSPNet's authors evaluate: scripts/reference_models.py's scale_process, their loop.
import reference_models
def net(x):  # any size: padded right and bottom to ENet's multiple of 8, logits cut back (checked above)
    h, w = x.shape[2:]
    return m(F.pad(x, (0, (8 - w % 8) % 8, 0, (8 - h % 8) % 8)))[:, :, :h, :w]
def scale_process(x, crop_h, crop_w, stride=None, flip=False):
    return reference_models.scale_process(net, x, crop_h, crop_w, 4, stride, flip)
with torch.no_grad():
    # 20×28 windows (no multiple of 8: each padded) 14×19 apart: 2 × 3 windows, the last ones flush
    O['slide'] = scale_process(x, 20, 28)
    # a window taller than the image (32 < 40, padded 4 and 4), mirrored too
    O['slide_tall'] = scale_process(x, 40, 24, flip=True)
    # scales 0.75 and 1, windows 16×24 every 10×12, mirrored; each scale's probabilities resized back
    acc = 0
    for s in (0.75, 1):
        xs = x if s == 1 else F.interpolate(x, size=(round(32 * s), round(48 * s)), mode='bilinear', align_corners=False)
        p = scale_process(xs, 16, 24, (10, 12), True)
        acc = acc + (p if s == 1 else F.interpolate(p, size=(32, 48), mode='bilinear', align_corners=False))
    O['slide_multi'] = acc / 2
`);

const model = (): ENet => {
  const m = new ENet({ numClasses: 4 });
  const sd = Object.fromEntries(Object.entries(ref).filter(([k]) => k.startsWith('sd.')).map(([k, t]) => [k.slice(3), t]));
  const { missing, unexpected } = m.loadStateDict(sd);
  assert.deepEqual([missing, unexpected], [[], []]);
  return m.eval() as ENet;
};

test('predictMultiScale averages softmax over scales 0.5, 1, 1.5 and mirrored copies as PyTorch does', () => {
  const m = model();
  T.tidy(() =>
    T.noGrad(() => {
      assertClose(predictMultiScale(m, ref.x, { scales: [0.5, 1, 1.5], flip: true }), ref.multi, 1e-4, 'multi-scale, mirrored');
      assertClose(predictMultiScale(m, ref.x), ref.single, 1e-4, 'single scale = softmax of forward');
      // Probabilities: they sum to one at every pixel.
      const sums = predictMultiScale(m, ref.x, { scales: [0.75, 1.25] }).sum(1);
      assert.ok(sums.sub(1).abs().max().item() < 1e-5);
      assert.throws(() => predictMultiScale(m, ref.x, { scales: [0] }), /scales must be positive/);
    }),
  );
});

test('forwardAnySize pads to the size multiple and cuts the logits back', () => {
  const m = model();
  T.tidy(() => T.noGrad(() => assertClose(forwardAnySize(m, ref.y), ref.padded, 1e-4, '30×45 input')));
});

test('sliding windows (PSPNet\'s evaluation) average window probabilities as its authors\' code does', () => {
  const m = model();
  T.tidy(() =>
    T.noGrad(() => {
      assertClose(slidingProbabilities(m, ref.x, [20, 28]), ref.slide, 1e-4, '20×28 windows, default stride');
      assertClose(predictMultiScale(m, ref.x, { crop: [40, 24], flip: true }), ref.slide_tall, 1e-4, 'a window taller than the image, mirrored');
      assertClose(predictMultiScale(m, ref.x, { scales: [0.75, 1], crop: [16, 24], stride: [10, 12], flip: true }), ref.slide_multi, 1e-4, 'two scales, windows, mirrored');
      // One window the size of the image is the plain prediction.
      assertClose(slidingProbabilities(m, ref.x, [32, 48]), predictMultiScale(m, ref.x), 1e-6, 'one window');
      assert.throws(() => slidingProbabilities(m, ref.x, [16, 16], [17, 8]), /a stride of 17×8 would skip pixels between windows of 16×16/);
      assert.throws(() => slidingProbabilities(m, ref.x, [0, 16]), /crop must be positive whole numbers \(H, W\), got 0×16/);
    }),
  );
});

test('sliding windows several to a network call (two images, mirrored, uneven last call): the same probabilities as one window per call', () => {
  const m = model();
  T.tidy(() =>
    T.noGrad(() => {
      const x = T.cat([ref.x, ref.x.flip(2)], 0); // two different images in one batch
      const one = slidingProbabilities(m, x, [16, 24], [10, 12], true, 1); // 4 × 3 windows, each with its mirror
      for (const k of [2, 3, 8, 100]) assertClose(slidingProbabilities(m, x, [16, 24], [10, 12], true, k), one, 1e-5, `${k} per call`);
      assertClose(slidingProbabilities(m, x, [16, 24], [10, 12], false, 5), slidingProbabilities(m, x, [16, 24], [10, 12], false, 1), 1e-5, 'not mirrored, 5 per call');
      // The images stay apart: the second is the first's upside-down answer only through its own windows.
      assert.ok(one.narrow(0, 0, 1).sub(one.narrow(0, 1, 1)).abs().max().item() > 1e-3);
      assert.throws(() => slidingProbabilities(m, x, [16, 24], undefined, false, 0), /windowsPerCall must be a positive whole number, got 0/);
    }),
  );
});
