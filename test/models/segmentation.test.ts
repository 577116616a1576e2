// DeepLab-V3, PSPNet and ICNet against independent PyTorch definitions (scripts/reference_models.py: the
// torchvision backbone made atrous by the papers' rule, torchvision's ASPP, the authors' pyramid pooling,
// ICNet's cascade) with the same weights: the paper's training loss (auxiliary / cascade label guidance
// terms, class weights, ignored pixels), every gradient and BN statistics in train mode, logits in eval
// mode; parameter counts of the paper-sized networks.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { SegmentationModelName, SegmentationModelOptions, createSegmentationModel } from '../../src/models';
import { assertClose, runTorch } from '../helpers/pytorch';

interface Case {
  name: SegmentationModelName;
  ts: SegmentationModelOptions[SegmentationModelName];
  py: string;
  size: [number, number];
}

const CASES: Case[] = [
  // ResNet-18's layer4 has two blocks: the default multi-grid is (1, 2) there.
  { name: 'deeplabv3', ts: { numClasses: 5, backbone: 'resnet18', width: 16, atrousRates: [1, 2, 3] }, py: "num_classes=5, depth=18, width=16, atrous_rates=(1, 2, 3)", size: [64, 64] },
  { name: 'deeplabv3', ts: { numClasses: 4, backbone: 'resnet50', width: 8, outputStride: 8, multiGrid: [1, 2, 1], channels: 32, atrousRates: [1, 2, 3] }, py: "num_classes=4, depth=50, width=8, output_stride=8, multi_grid=(1, 2, 1), channels=32, atrous_rates=(1, 2, 3)", size: [48, 64] },
  // ASPP without its image-level features (Table 5's comparison).
  { name: 'deeplabv3', ts: { numClasses: 5, backbone: 'resnet18', width: 16, atrousRates: [1, 2, 3], multiGrid: [1, 1], imagePooling: false }, py: "num_classes=5, depth=18, width=16, atrous_rates=(1, 2, 3), multi_grid=(1, 1), image_pooling=False", size: [64, 64] },
  { name: 'pspnet', ts: { numClasses: 5, backbone: 'resnet18', width: 16, headChannels: 64, auxChannels: 32, dropout: 0 }, py: "num_classes=5, depth=18, width=16, head_channels=64, aux_channels=32, dropout=0.0", size: [64, 64] },
  // The paper's baseline (Table 2): the dilated FCN, its head on the features alone, and no auxiliary loss.
  { name: 'pspnet', ts: { numClasses: 5, backbone: 'resnet18', width: 16, headChannels: 64, dropout: 0, ppm: false, auxWeight: 0 }, py: "num_classes=5, depth=18, width=16, head_channels=64, dropout=0.0, ppm=False, aux_weight=0.0", size: [64, 64] },
  { name: 'icnet', ts: { numClasses: 5, backbone: 'resnet18', width: 16, pspChannels: 64, cffChannels: 32 }, py: "num_classes=5, depth=18, width=16, psp_channels=64, cff_channels=32", size: [64, 96] },
];

const py = CASES.map(
  (c, i) => `
m = R.MODELS['${c.name}'](${c.py}).train()
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)
for k, v in m.state_dict().items():
    O['${i}.sd.' + k] = v.clone()
x = torch.randn(2, 3, ${c.size[0]}, ${c.size[1]})
k = ${(c.ts as { numClasses: number }).numClasses}
t = torch.randint(0, k, (2, ${c.size[0]}, ${c.size[1]}))
t[0, :5, :7] = 255
w = torch.rand(k) + 0.5
if hasattr(m, 'loss'):
    loss = m.loss(x, t, w)
else:
    loss = F.cross_entropy(m(x), t, weight=w, ignore_index=255)
loss.backward()
O['${i}.x'], O['${i}.t'], O['${i}.w'], O['${i}.loss'] = x, t, w, loss.detach()
for k, p in m.named_parameters():
    if p.grad is not None:
        O['${i}.grad.' + k] = p.grad
O['${i}.rv'] = m.backbone.layer4[1].bn2.running_var
m.eval()
with torch.no_grad():
    O['${i}.eval'] = m(x)
if isinstance(m, R.ICNet):
    # Table 3's cut cascades: the two CFF modules (not their BatchNorms) made to return their guidance
    # logits, read off the reference's own cascade in eval mode.
    m.cff24.training = m.cff12.training = True
    with torch.no_grad():
        _, g24, g4 = m.cascade(x)
    O['${i}.sub4'], O['${i}.sub24'] = R.up(g4, x.shape[-2:]), R.up(g24, x.shape[-2:])
`,
).join('\n');

const ref = runTorch(`
import reference_models as R
torch.manual_seed(5)
${py}
for name in ('deeplabv3', 'pspnet', 'icnet'):
    O['params.' + name] = torch.tensor(sum(p.numel() for p in R.MODELS[name]().parameters()))
`);

const prefixed = (p: string): Record<string, T.Tensor> =>
  Object.fromEntries(Object.entries(ref).filter(([k]) => k.startsWith(p)).map(([k, t]) => [k.slice(p.length), t]));

CASES.forEach((c, i) => {
  test(`${c.name} ${JSON.stringify(c.ts)}: training loss, gradients, BN statistics and eval logits equal the PyTorch reference`, () => {
    const m = createSegmentationModel(c.name, c.ts);
    const { missing, unexpected } = m.loadStateDict(prefixed(`${i}.sd.`));
    assert.deepEqual([missing, unexpected], [[], []]);
    m.train();
    const x = ref[`${i}.x`];
    T.tidy(() => {
      const loss = m.trainingLoss(x, ref[`${i}.t`], { weight: ref[`${i}.w`] });
      loss.backward();
      assertClose(loss, ref[`${i}.loss`], 1e-5, 'loss');
    });
    const grads = prefixed(`${i}.grad.`);
    const withGrad = m.namedParameters().filter(([, p]) => p.grad);
    assert.equal(withGrad.length, Object.keys(grads).length, 'parameters that received a gradient');
    for (const [k, p] of withGrad) assertClose(p.grad!, grads[k], 5e-4, `grad ${k}`);
    assertClose(m.stateDict()['backbone.layer4.1.bn2.running_var'], ref[`${i}.rv`], 1e-5, 'running_var after one step');
    m.eval();
    const out = T.noGrad(() => m.forward(x));
    assert.deepEqual(out.shape, [2, m.numClasses, ...c.size]);
    assertClose(out, ref[`${i}.eval`], 1e-4, 'eval-mode logits');
    for (const cut of ['sub4', 'sub24'] as const) {
      if (!ref[`${i}.${cut}`]) continue;
      const net = createSegmentationModel('icnet', { ...c.ts, output: cut }).eval();
      net.loadStateDict(m.stateDict());
      assertClose(T.noGrad(() => net.forward(x)), ref[`${i}.${cut}`], 1e-4, `eval-mode logits of output '${cut}'`);
    }
  });
});

test('paper-sized DeepLab-V3 (ResNet-50, OS 16), PSPNet (ResNet-50, OS 8) and ICNet have the reference\'s parameter counts', () => {
  for (const name of ['deeplabv3', 'pspnet', 'icnet'] as const) {
    assert.equal(createSegmentationModel(name).numParameters(), ref[`params.${name}`].item(), name);
  }
});

test('segmentation registry and options fail clearly', () => {
  assert.throws(() => createSegmentationModel('segnet' as SegmentationModelName), /unknown segmentation model 'segnet'; known: enet, deeplabv3, pspnet, icnet/);
  assert.throws(() => createSegmentationModel('deeplabv3', { outputStride: 32 as 16 }), /output stride must be 8 or 16, got 32/);
  assert.throws(() => createSegmentationModel('deeplabv3', { multiGrid: [1, 2] }), /multiGrid needs one rate per block of layer4 \(3\), got 2/);
  assert.throws(() => createSegmentationModel('pspnet', { backbone: 'resnet19' as 'resnet18' }), /unknown backbone 'resnet19'/);
  assert.throws(() => createSegmentationModel('pspnet', { bins: [] }), /PSPNet: bins must be positive whole numbers, got \[\]/);
  assert.throws(() => createSegmentationModel('icnet', { bins: [1, 2.5] }), /ICNet: bins must be positive whole numbers, got \[1, 2.5\]/);
  assert.throws(() => createSegmentationModel('icnet', { output: 'sub2' as 'sub4' }), /ICNet: output must be one of sub4, sub24, sub124, got 'sub2'/);
  // One number is one level (what \`--opt bins=2\` gives).
  assert.equal(createSegmentationModel('pspnet', { backbone: 'resnet18', width: 16, bins: 2 }).numParameters(), createSegmentationModel('pspnet', { backbone: 'resnet18', width: 16, bins: [2] }).numParameters());
  assert.throws(() => createSegmentationModel('enet').forward(T.zeros([1, 3, 30, 40])), /ENet: input height and width must be multiples of 8, got 30×40/);
});
