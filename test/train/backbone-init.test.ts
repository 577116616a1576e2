// ImageNet-style backbone initialization for DeepLab-V3, PSPNet and ICNet: torchvision's ResNet-18 state dict,
// saved by PyTorch as .pth and converted by scripts/pth2safetensors.py, loads into the atrous backbone, whose
// layer1–3 features (not dilated at output stride 16) then equal torchvision's own network on the same input.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as T from '../../src/torch';
import { DeepLabV3 } from '../../src/models/deeplabv3';
import { ENet } from '../../src/models/enet';
import { loadBackbone, trainSegmentation } from '../../src/train/segment';
import { PYTHON, assertClose, runTorch } from '../helpers/pytorch';
import { tmpDir } from '../helpers/tmp';

const dir = tmpDir('tsv-backbone-');
const pth = path.join(dir, 'resnet18.pth');
const converted = path.join(dir, 'resnet18.safetensors');
const SCRIPT = path.resolve(__dirname, '..', '..', '..', 'scripts', 'pth2safetensors.py');

const ref = runTorch(`
import torchvision
torch.manual_seed(2)
m = torchvision.models.resnet18()
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1); mod.running_var.uniform_(0.5, 1.5)
torch.save(m.state_dict(), ${JSON.stringify(pth)})
m.eval()
x = torch.randn(1, 3, 64, 96)
with torch.no_grad():
    f = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    l1 = m.layer1(f); l2 = m.layer2(l1); l3 = m.layer3(l2)
O['x'], O['layer3'] = x, l3
`);

test('torchvision ResNet-18 weights (.pth → pth2safetensors) initialize the DeepLab-V3 backbone: layer3 features equal torchvision\'s', () => {
  const r = spawnSync(PYTHON, [SCRIPT, pth, converted], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const m = new DeepLabV3({ backbone: 'resnet18', outputStride: 16, numClasses: 5 });
  const n = loadBackbone(m, converted);
  assert.equal(n, Object.keys(m.backbone.stateDict()).length, 'every backbone tensor, the classifier left out');
  m.eval();
  T.tidy(() => T.noGrad(() => assertClose(m.backbone.forwardFeatures(ref.x)[2], ref.layer3, 1e-4, 'layer3')));
});

test('a backbone that does not fit is named: ENet has none, grey scenes against RGB weights, half width', async () => {
  assert.throws(() => loadBackbone(new ENet({ numClasses: 3 }), converted), /ENet has no ResNet backbone to initialize/);
  assert.throws(() => loadBackbone(new DeepLabV3({ backbone: 'resnet18', width: 32, numClasses: 3 }), converted), /backbone weights .* do not fit the DeepLabV3 backbone: [\s\S]*conv1\.weight/);
  // The scene recipe: grey images, half width; the message names the file and the first misfit.
  await assert.rejects(trainSegmentation({ model: 'pspnet', backboneInit: converted, epochs: 1, outDir: path.join(dir, 'run') }, () => {}), /backbone weights .*resnet18\.safetensors do not fit the PSPNet backbone/);
});
