// The joint image/label augmentation against independent computations: slicing and padding by hand, PyTorch's
// resize-then-crop pipeline (F.interpolate + F.pad + slicing, the way DeepLab's and PSPNet's data code does
// it), torch.rot90, and the invariants of random draws.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Tensor, arange, fromArray, pad, randn, tidy } from '../../src/torch';
import { Rng } from '../../src/data';
import { AugmentDraw, BLUR_SIGMA, gaussianBlur, segmentationAugment, warpSegmentation } from '../../src/data/segmentation-augment';
import { runTorch, relError } from '../helpers/pytorch';

const draw = (d: Partial<AugmentDraw>): AugmentDraw => ({ scale: 1, angle: 0, flip: false, top: 0, left: 0, ...d });
const labelsOf = (n: number, h: number, w: number, k = 5): Tensor => arange(n * h * w).remainder(k).view(n, h, w).long();
const same = (a: Tensor, b: Tensor): boolean => tidy(() => a.shape.join() === b.shape.join() && a.eq(b).all().item() === 1);

test('scale 1: a crop is the source window, padded with 0 and ignore (255) where it leaves the image; flip mirrors it', () => {
  tidy(() => {
    const x = randn([2, 3, 10, 12]);
    const y = labelsOf(2, 10, 12);
    // Sample 0 inside the image at (2, 3); sample 1 hangs over the top-left corner by (3, 1).
    const out = warpSegmentation({ x, y }, [draw({ top: 2, left: 3 }), draw({ top: -3, left: -1 })], [6, 8]);
    const want0x = x.narrow(0, 0, 1).narrow(2, 2, 6).narrow(3, 3, 8);
    const want0y = y.narrow(0, 0, 1).narrow(1, 2, 6).narrow(2, 3, 8);
    assert.ok(relError(out.x.narrow(0, 0, 1), want0x) < 1e-6);
    assert.ok(same(out.y.narrow(0, 0, 1), want0y));
    const want1x = pad(x.narrow(0, 1, 1), [1, 0, 3, 0]).narrow(2, 0, 6).narrow(3, 0, 8);
    const want1y = pad(y.narrow(0, 1, 1), [1, 0, 3, 0], 255).narrow(1, 0, 6).narrow(2, 0, 8);
    assert.ok(relError(out.x.narrow(0, 1, 1), want1x) < 1e-6);
    assert.ok(same(out.y.narrow(0, 1, 1), want1y));
    const flipped = warpSegmentation({ x, y }, [draw({ top: 2, left: 3, flip: true }), draw({ top: -3, left: -1, flip: true })], [6, 8]);
    assert.ok(relError(flipped.x, out.x.flip(3)) < 1e-6);
    assert.ok(same(flipped.y, out.y.flip(2)));
  });
});

test('scale 2 and 0.5 equal PyTorch resize (bilinear / nearest) then pad and crop', () => {
  tidy(() => {
    const x = randn([1, 2, 10, 12]);
    const y = labelsOf(1, 10, 12, 7);
    const up = warpSegmentation({ x, y }, [draw({ scale: 2, top: 5, left: 7 })], [8, 9]);
    // 0.5: the 5×6 image placed at (2, 1) inside a 9×8 crop.
    const down = warpSegmentation({ x, y }, [draw({ scale: 0.5, top: -2, left: -1 })], [9, 8]);
    const ref = runTorch(
      `
x, y = I['x'], I['y'].float().unsqueeze(1)
u = F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)[:, :, 5:13, 7:16]
uy = F.interpolate(y, scale_factor=2, mode='nearest')[:, 0, 5:13, 7:16]
d = F.interpolate(x, scale_factor=0.5, mode='bilinear', align_corners=False)
dy = F.interpolate(y, scale_factor=0.5, mode='nearest')[:, 0]
# the padding DeepLab's and PSPNet's loaders use: mean colour (0 after normalization) and the ignore label
O['ux'], O['uy'] = u.contiguous(), uy.long().contiguous()
O['dx'] = F.pad(d, (1, 8 - 6 - 1, 2, 9 - 5 - 2)).contiguous()
O['dy'] = F.pad(dy, (1, 1, 2, 2), value=255).long().contiguous()
`,
      { x, y },
    );
    assert.ok(relError(up.x, ref.ux) < 1e-5, `scale 2 image ${relError(up.x, ref.ux)}`);
    assert.ok(same(up.y, ref.uy), 'scale 2 labels');
    assert.ok(relError(down.x, ref.dx) < 1e-5, `scale 0.5 image ${relError(down.x, ref.dx)}`);
    assert.ok(same(down.y, ref.dy), 'scale 0.5 labels');
  });
});

test('a rotation by 90° of a square image is torch.rot90; pixels rotated in from outside are ignored', () => {
  tidy(() => {
    const x = randn([1, 3, 7, 7]);
    const y = labelsOf(1, 7, 7, 9);
    const r = warpSegmentation({ x, y }, [draw({ angle: Math.PI / 2 })], [7, 7]);
    const ref = runTorch(`O['x'] = torch.rot90(I['x'], 1, (2, 3)).contiguous(); O['y'] = torch.rot90(I['y'], 1, (1, 2)).contiguous()`, { x, y });
    assert.ok(relError(r.x, ref.x) < 1e-5, `image ${relError(r.x, ref.x)}`);
    assert.ok(same(r.y, ref.y), 'labels');
    // 45° of a square: the corners of the crop come from outside the source.
    const c = warpSegmentation({ x, y }, [draw({ angle: Math.PI / 4 })], [7, 7]);
    assert.equal(c.y.select(1, 0).select(1, 0).item(), 255);
    assert.notEqual(c.y.select(1, 3).select(1, 3).item(), 255);
    assert.equal(c.y.select(1, 3).select(1, 3).item(), y.select(1, 3).select(1, 3).item(), 'the centre stays');
  });
});

test('random draws: the crop size, only real labels or ignore, one draw per sample, reproducible from the Rng', () => {
  tidy(() => {
    const n = 8;
    const x = randn([n, 3, 20, 30]);
    const y = labelsOf(n, 20, 30, 4);
    const aug = segmentationAugment({ crop: [16, 24], scale: [0.5, 2], rotate: 10 });
    const ctx = (): { epoch: number; index: number; rng: Rng } => ({ epoch: 0, index: 0, rng: Rng.from(7, 0, 0) });
    const a = aug({ x, y }, ctx());
    const b = aug({ x, y }, ctx());
    assert.deepEqual(a.x.shape, [n, 3, 16, 24]);
    assert.deepEqual(a.y.shape, [n, 16, 24]);
    assert.equal(a.y.dtype, 'int64');
    assert.ok(same(a.y, b.y) && relError(a.x, b.x) === 0, 'the same Rng gives the same batch');
    const valid = a.y.lt(4).logicalOr(a.y.eq(255));
    assert.equal(valid.all().item(), 1, 'labels are classes or ignore');
    // Samples differ from one another (their own draws), and some pixels are padding at scales below 1.
    assert.ok(!same(a.y.narrow(0, 0, 1), a.y.narrow(0, 1, 1)));
    const c = aug({ x, y }, { epoch: 0, index: 0, rng: Rng.from(8, 0, 0) });
    assert.ok(!same(a.y, c.y), 'another Rng, another batch');
    // With scale fixed at 1, no rotation, no flip and an exact fit, the transform is the identity.
    const id = segmentationAugment({ crop: [20, 30], scale: [1, 1], flip: false })({ x, y }, ctx());
    assert.ok(relError(id.x, x) < 1e-5 && same(id.y, y)); // float32 grid: positions off by ~1e-6 px
  });
});

test('bad input is named', () => {
  tidy(() => {
    const aug = segmentationAugment({ crop: 8 });
    const ctx = { epoch: 0, index: 0, rng: Rng.from(0) };
    assert.throws(() => aug({ x: fromArray(new Uint8Array(64), [1, 1, 8, 8]), y: labelsOf(1, 8, 8) }, ctx), /images are uint8; put it after toFloat\(\) and normalize\(\)/);
    assert.throws(() => aug({ x: randn([1, 1, 8, 8]), y: labelsOf(1, 8, 8).view(1, 1, 8, 8) }, ctx), /labels must be \[N, H, W\]/);
    assert.throws(() => segmentationAugment({ crop: 8, scale: [2, 1] }), /scale must be a range/);
    assert.throws(() => segmentationAugment({ crop: 0 }), /crop must be positive integers/);
  });
});

test("PSPNet's Gaussian blur equals torchvision's gaussian_blur (5×5, σ = 1.1, mirrored borders); blur: 1 blurs every image, labels untouched", () => {
  tidy(() => {
    const x = randn([2, 3, 9, 12]);
    const ref = runTorch(`
import torchvision.transforms.functional as TF
O['blur'] = TF.gaussian_blur(I['x'], [5, 5], [${BLUR_SIGMA}, ${BLUR_SIGMA}]).contiguous()
`, { x });
    assert.ok(Math.abs(BLUR_SIGMA - 1.1) < 1e-12, "OpenCV's σ for a 5×5 kernel");
    assert.ok(relError(gaussianBlur(x), ref.blur) < 1e-5, `blur ${relError(gaussianBlur(x), ref.blur)}`);
    const y = labelsOf(2, 9, 12);
    const ctx = (): { epoch: number; index: number; rng: Rng } => ({ epoch: 0, index: 0, rng: Rng.from(3) });
    const plain = segmentationAugment({ crop: [9, 12], scale: [1, 1], flip: false });
    const all = segmentationAugment({ crop: [9, 12], scale: [1, 1], flip: false, blur: 1 });
    const got = all({ x, y }, ctx());
    assert.ok(relError(got.x, ref.blur) < 1e-5, 'the identity warp, then the blur');
    assert.ok(same(got.y, plain({ x, y }, ctx()).y), 'labels as without blur');
    assert.throws(() => segmentationAugment({ crop: 8, blur: 2 }), /blur is a probability in \[0, 1\]/);
  });
});
