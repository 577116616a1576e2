// Multi-scale, mirrored inference (DeepLab-V3 §4.3, PSPNet §5) against PyTorch computing the same average with
// the independent ENet definition (scripts/reference_models.py) and the same weights; padding of sizes the
// network cannot take against PyTorch's F.pad.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { ENet } from '../../src/models/enet';
import { forwardAnySize, predictMultiScale } from '../../src/models/segmentation';
import { assertClose, runTorch } from '../helpers/pytorch';

const ref = runTorch(`
import reference_models as R
torch.manual_seed(5)
m = R.ENet(num_classes=4).eval()
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 1.5)
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
