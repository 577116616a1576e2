// On a CUDA machine: the same ops on CUDA and CPU agree, gradients flow on the GPU, and a model trains there.
// (CI has no GPU; scripts/gpu-check.sh runs this on a lent one.)
import * as T from '../src/torch';
import { createModel } from '../src/models/registry';

function check(name: string, f: (dev: string) => T.Tensor, tol = 1e-4): boolean {
  const cpu = f('cpu');
  const gpu = f('cuda').cpu();
  const d = cpu.sub(gpu).abs().max().item() / Math.max(1e-6, cpu.abs().max().item());
  const ok = d <= tol;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: rel diff ${d.toExponential(2)}`);
  return ok;
}

if (!T.cuda.isAvailable()) {
  console.log('CUDA not available: nothing to check');
  process.exit(1);
}
let ok = true;
T.manualSeed(0);
const x = T.randn([2, 8, 33, 31]).keep();
const w = T.randn([8, 4, 3, 3]).keep();
ok = check('conv2d dilated grouped', (d) => T.conv2d(x.to(d), w.to(d), null, { dilation: 2, padding: 2, groups: 2 })) && ok;
ok = check('bilinear align corners', (d) => T.interpolate(x.to(d), { size: [65, 61], mode: 'bilinear', alignCorners: true })) && ok;
ok = check('max pool + unpool', (d) => { const p = T.maxPool2dWithIndices(x.to(d), 2); return T.maxUnpool2d(p.output, p.indices, [33, 31]); }) && ok;
ok = check('conv2d gradient', (d) => {
  const xx = x.to(d).requiresGrad_();
  T.conv2d(xx, w.to(d), null, { padding: 1, groups: 2 }).square().sum().backward();
  return xx.grad!;
}, 1e-3) && ok;
const model = createModel('mobilenet_v1', { numClasses: 10, alpha: 0.5 }).to('cuda');
const input = T.randn([4, 3, 64, 64], { device: 'cuda' });
const logits = model.forward(input);
T.crossEntropy(logits, T.randint(0, 10, [4], { device: 'cuda' })).backward();
const g = model.parameters()[0].grad!;
console.log(`mobilenet on ${logits.device}: logits [${logits.shape}], grad on ${g.device}, |g| ${g.norm().item().toExponential(3)}`);
ok = ok && logits.device.startsWith('cuda') && g.device.startsWith('cuda');
console.log(ok ? 'cuda-check: all ok' : 'cuda-check: FAILED');
process.exitCode = ok ? 0 : 1;
