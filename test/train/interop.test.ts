// safetensors both ways with PyTorch, and the .pth converter: same weights, same outputs.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as T from '../../src/torch';
import { createModel } from '../../src/models/registry';
import { PYTHON, assertClose, runTorch } from '../helpers/pytorch';
import { tmpDir } from '../helpers/tmp';

const SCRIPTS = path.resolve(__dirname, '..', '..', '..', 'scripts');

test('weights written by tsvision load into torchvision and give the same logits', () => {
  T.manualSeed(1);
  const model = createModel('resnet18', { numClasses: 7 }).eval();
  const x = T.randn([2, 3, 64, 64]);
  const ours = T.noGrad(() => model.forward(x));
  const dir = tmpDir('tsv-interop-');
  const file = path.join(dir, 'r18.safetensors');
  T.saveSafetensors(file, model.stateDict());
  const ref = runTorch(
    [
      'import torchvision',
      `sd, _ = st.load(${JSON.stringify(file)})`,
      'm = torchvision.models.resnet18(num_classes=7).eval()',
      'm.load_state_dict(sd)',
      'with torch.no_grad(): O["y"] = m(I["x"])',
    ].join('\n'),
    { x },
  );
  assertClose(ours, ref.y, 1e-4, 'logits');
});

test('a torchvision .pth converted by scripts/pth2safetensors.py loads unchanged and gives the same logits', () => {
  const dir = tmpDir('tsv-pth-');
  const pth = path.join(dir, 'r18.pth');
  const st = path.join(dir, 'r18.safetensors');
  const x = T.randn([1, 3, 64, 64]);
  const ref = runTorch(
    [
      'import torchvision',
      'torch.manual_seed(3)',
      'm = torchvision.models.resnet18(num_classes=5).eval()',
      // Random BN statistics, so a mistake in loading them would show.
      'for mod in m.modules():',
      '    if isinstance(mod, torch.nn.BatchNorm2d): mod.running_mean.normal_(0, 0.1); mod.running_var.uniform_(0.5, 1.5)',
      `torch.save({"state_dict": {"module." + k: v for k, v in m.state_dict().items()}}, ${JSON.stringify(pth)})`,
      'with torch.no_grad(): O["y"] = m(I["x"])',
    ].join('\n'),
    { x },
  );
  const r = spawnSync(PYTHON, [path.join(SCRIPTS, 'pth2safetensors.py'), pth, st, '--prefix', 'module.'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const model = createModel('resnet18', { numClasses: 5 });
  model.loadStateDict(T.loadSafetensors(st).tensors);
  model.eval();
  assertClose(T.noGrad(() => model.forward(x)), ref.y, 1e-4, 'logits');
  const bad = spawnSync(PYTHON, [path.join(SCRIPTS, 'pth2safetensors.py'), path.join(dir, 'missing.pth'), st], { encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /no such file/);
});

test('tensors of every dtype round-trip through safetensors with PyTorch', () => {
  const t: Record<string, T.Tensor> = {
    f32: T.randn([3, 4]),
    f64: T.randn([2], { dtype: 'float64' }),
    f16: T.randn([5]).to('float16'),
    bf16: T.randn([5]).to('bfloat16'),
    i64: T.randint(-100, 100, [4]),
    i32: T.randint(-100, 100, [4]).to('int32'),
    u8: T.randint(0, 255, [6]).to('uint8'),
    b: T.randn([6]).gt(0),
    scalar: T.tensor(3.5),
  };
  const back = runTorch('for k, v in I.items(): O[k] = v * 2 if v.dtype != torch.bool else ~v', t);
  for (const [k, v] of Object.entries(t)) {
    const want = v.dtype === 'bool' ? v.logicalNot() : v.mul(2);
    assert.equal(back[k].dtype, v.dtype, k);
    assert.deepEqual(back[k].shape, v.shape, k);
    assert.deepEqual(back[k].toNumbers(), want.toNumbers(), k);
  }
});
