// Test-time augmentation of classifiers (`eval --flip`): the probabilities averaged over each image and its
// mirror, against PyTorch computing the same on the same weights and images (scripts/reference_models.py).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { DataLoader, TensorDataset } from '../../src/data';
import { SimpleCNN } from '../../src/models/cnn';
import { evaluate } from '../../src/train/trainer';
import { runTorch } from '../helpers/pytorch';

test('evaluate with flip: loss, top-1 and top-5 of the mean of the image\'s and its mirror\'s probabilities, as PyTorch\'s', async () => {
  const ref = runTorch(`
import reference_models as R
torch.manual_seed(21)
m = R.SimpleCNN(1, (8, 16), 32, 10)
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 1.5)
m.eval()
for k, v in m.state_dict().items(): O['sd.' + k] = v.clone()
x, y = torch.randn(40, 1, 28, 28), torch.randint(0, 10, (40,))
O['x'], O['y'] = x, y
with torch.no_grad():
    for name, p in (('plain', F.softmax(m(x), 1)), ('flip', (F.softmax(m(x), 1) + F.softmax(m(x.flip(3)), 1)) / 2)):
        top5 = p.topk(5, 1).indices
        O[name] = torch.tensor([float(-p.gather(1, y.view(-1, 1)).log().mean()), float((p.argmax(1) == y).double().mean()),
                                float((top5 == y.view(-1, 1)).any(1).double().mean())], dtype=torch.float64)
`);
  const model = new SimpleCNN({ widths: [8, 16], hidden: 32, numClasses: 10, inChannels: 1 });
  model.loadStateDict(Object.fromEntries(Object.entries(ref).filter(([k]) => k.startsWith('sd.')).map(([k, v]) => [k.slice(3), v])));
  const loader = new DataLoader(new TensorDataset(ref.x, ref.y), { batchSize: 16, transform: (b) => b });
  for (const [flip, want] of [[false, ref.plain], [true, ref.flip]] as const) {
    const r = await evaluate(model, loader, 0, { flip });
    const [loss, top1, top5] = Array.from(want.toArray() as Float64Array);
    assert.ok(Math.abs(r.loss - loss) <= 1e-5 * loss, JSON.stringify({ flip, got: r.loss, want: loss }));
    assert.equal(r.top1, top1);
    assert.equal(r.top5, top5);
    assert.equal(r.count, 40);
  }
  // The two differ, so each comparison can fail.
  assert.notEqual(Array.from(ref.plain.toArray() as Float64Array)[0], Array.from(ref.flip.toArray() as Float64Array)[0]);
});
