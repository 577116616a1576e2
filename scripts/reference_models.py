"""Independent PyTorch references of tsvision's classification models, shared by the tests
(test/models/params.test.ts) and the benchmark peer (bench/models_torch.py).

Written from the papers and the reference ports, not generated from tsvision; state-dict keys and shapes
must equal tsvision's, which is what the tests check.
- MobileNet v1 (Howard et al. 2017, Table 1): a 3x3/2 stem, 13 depthwise separable layers (Fig. 3: 3x3
  depthwise + BN + ReLU, 1x1 pointwise + BN + ReLU), global pool, dropout (TF-slim keep_prob 0.999), FC.
- SE-ResNet-50 (Hu et al. 2018, Fig. 3): torchvision's ResNet-50 with torchvision.ops.SqueezeExcitation(C,
  C/16) on each bottleneck's residual branch after bn3, before the addition.
- Xception (Chollet 2017, Fig. 5): the reference PyTorch port's definition (Cadene's pretrainedmodels /
  timm's legacy_xception): block1..block12, separable convs with a `conv1` depthwise and a `pointwise`.
- ENet (Paszke et al. 2016, Table 1, Fig. 2) as the authors' Torch code builds it: BN eps 1e-3, PReLU in
  the encoder and ReLU in the decoder, biases only on the middle convolutions, spatial dropout 0.01 / 0.1,
  max-unpooling shortcuts in the decoder and a 2x2/2 transposed conv at the end.
- Dilated ResNet backbones: torchvision's ResNet (narrowed by `width`), made atrous after the fact the way
  the DeepLab papers state the algorithm: a removed stride leaves its own conv at the current rate and
  doubles the rate of every 3x3 conv after it; DeepLab-V3's multi-grid sets layer4's block i to rate x grid[i].
- DeepLab-V3 (Chen et al. 2017, sec. 3.3): torchvision's ASPP module (its extra dropout removed, as in the
  paper) and a 1x1 classifier; logits upsampled bilinearly.
- PSPNet (Zhao et al. 2017, Fig. 3, sec. 3.4): pyramid pooling module as in the authors' PyTorch code (semseg),
  3x3 conv head with dropout 0.1, auxiliary head on layer3 weighted 0.4.
- ICNet (Zhao et al. 2018, Figs. 2-3): sub1 convs, backbone shared by the 1/2 and 1/4 branches, summing
  pyramid pooling, two cascade feature fusion units, label guidance weighted 0.16 / 0.4 / 1.
- The compact CNN of `npm start`: two VGG-style stages of two 3x3 conv + BN + ReLU and a 2x2 max-pool,
  pooled to 7x7, then FC, ReLU, dropout, FC.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.models.segmentation.deeplabv3 import ASPP
from torchvision.ops import SqueezeExcitation


def random_bn_statistics(m):
    """BatchNorm running statistics drawn away from a fresh network's (means in ±0.2, variances in [0.5, 1.5]),
    so that comparisons in eval mode see them."""
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    return m


def conv_bn_relu(i, o, k, s, g=1):
    return nn.Sequential(nn.Conv2d(i, o, k, s, (k - 1) // 2, groups=g, bias=False), nn.BatchNorm2d(o), nn.ReLU())


class SimpleCNN(nn.Module):
    def __init__(self, in_channels=1, widths=(32, 64), hidden=128, num_classes=10, dropout=0.3):
        super().__init__()
        a, b = widths
        self.features = nn.Sequential(conv_bn_relu(in_channels, a, 3, 1), conv_bn_relu(a, a, 3, 1), nn.MaxPool2d(2),
                                      conv_bn_relu(a, b, 3, 1), conv_bn_relu(b, b, 3, 1), nn.MaxPool2d(2))
        self.pool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(nn.Linear(b * 49, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


class DepthwiseSeparable(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.depthwise = conv_bn_relu(i, i, 3, s, i)
        self.pointwise = conv_bn_relu(i, o, 1, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class MobileNetV1(nn.Module):
    # Table 1 after the stem: (output channels, stride).
    LAYERS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]

    def __init__(self, num_classes=1000):
        super().__init__()
        layers, c = [conv_bn_relu(3, 32, 3, 2)], 32
        for o, s in self.LAYERS:
            layers.append(DepthwiseSeparable(c, o, s))
            c = o
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.001)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        return self.fc(self.dropout(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)))


class SEBottleneck(Bottleneck):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        c = self.bn3.num_features
        self.se = SqueezeExcitation(c, c // 16)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        identity = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + identity)


def se_resnet50(num_classes=1000):
    return ResNet(SEBottleneck, [3, 4, 6, 3], num_classes=num_classes)


class SeparableConv2d(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.conv1 = nn.Conv2d(i, i, 3, 1, 1, groups=i, bias=False)
        self.pointwise = nn.Conv2d(i, o, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class Block(nn.Module):
    def __init__(self, i, o, reps, strides=1, start_with_relu=True, grow_first=True):
        super().__init__()
        if o != i or strides != 1:
            self.skip = nn.Conv2d(i, o, 1, stride=strides, bias=False)
            self.skipbn = nn.BatchNorm2d(o)
        else:
            self.skip = None
        rep, f = [], i
        if grow_first:
            rep += [nn.ReLU(), SeparableConv2d(i, o), nn.BatchNorm2d(o)]
            f = o
        for _ in range(reps - 1):
            rep += [nn.ReLU(), SeparableConv2d(f, f), nn.BatchNorm2d(f)]
        if not grow_first:
            rep += [nn.ReLU(), SeparableConv2d(i, o), nn.BatchNorm2d(o)]
        if not start_with_relu:
            rep = rep[1:]
        if strides != 1:
            rep.append(nn.MaxPool2d(3, strides, 1))
        self.rep = nn.Sequential(*rep)

    def forward(self, x):
        skip = self.skipbn(self.skip(x)) if self.skip is not None else x
        return self.rep(x) + skip


class Xception(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.block1 = Block(64, 128, 2, 2, start_with_relu=False)  # entry flow
        self.block2 = Block(128, 256, 2, 2)
        self.block3 = Block(256, 728, 2, 2)
        for k in range(4, 12):  # middle flow, repeated 8 times
            setattr(self, 'block%d' % k, Block(728, 728, 3, 1))
        self.block12 = Block(728, 1024, 2, 2, grow_first=False)  # exit flow
        self.conv3 = SeparableConv2d(1024, 1536)
        self.bn3 = nn.BatchNorm2d(1536)
        self.conv4 = SeparableConv2d(1536, 2048)
        self.bn4 = nn.BatchNorm2d(2048)
        self.dropout = nn.Dropout(0.5)  # §4.3
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        for k in range(1, 13):
            x = getattr(self, 'block%d' % k)(x)
        x = F.relu(self.bn4(self.conv4(F.relu(self.bn3(self.conv3(x))))))
        return self.fc(self.dropout(F.adaptive_avg_pool2d(x, 1).flatten(1)))


class ENetInitial(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.conv = nn.Conv2d(cin, 16 - cin, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(16, eps=1e-3)
        self.act = nn.PReLU(16)

    def forward(self, x):
        return self.act(self.bn(torch.cat([self.conv(x), F.max_pool2d(x, 2)], 1)))


def enet_act(c, decoder):
    return nn.ReLU() if decoder else nn.PReLU(c)


class ENetBottleneck(nn.Module):
    def __init__(self, c, kind, arg, p, decoder=False):
        super().__init__()
        i = c // 4
        self.project = nn.Sequential(nn.Conv2d(c, i, 1, bias=False), nn.BatchNorm2d(i, eps=1e-3), enet_act(i, decoder))
        if kind == 'asymmetric':
            main = [nn.Conv2d(i, i, (arg, 1), padding=(arg // 2, 0), bias=False), nn.Conv2d(i, i, (1, arg), padding=(0, arg // 2))]
        else:
            d = arg if kind == 'dilated' else 1
            main = [nn.Conv2d(i, i, 3, padding=d, dilation=d)]
        self.conv = nn.Sequential(*main, nn.BatchNorm2d(i, eps=1e-3), enet_act(i, decoder))
        self.expand = nn.Sequential(nn.Conv2d(i, c, 1, bias=False), nn.BatchNorm2d(c, eps=1e-3))
        self.dropout = nn.Dropout2d(p)
        self.act = enet_act(c, decoder)

    def forward(self, x):
        return self.act(x + self.dropout(self.expand(self.conv(self.project(x)))))


class ENetDown(nn.Module):
    def __init__(self, cin, cout, p):
        super().__init__()
        i = cout // 4
        self.cin, self.cout = cin, cout
        self.project = nn.Sequential(nn.Conv2d(cin, i, 2, 2, bias=False), nn.BatchNorm2d(i, eps=1e-3), nn.PReLU(i))
        self.conv = nn.Sequential(nn.Conv2d(i, i, 3, padding=1), nn.BatchNorm2d(i, eps=1e-3), nn.PReLU(i))
        self.expand = nn.Sequential(nn.Conv2d(i, cout, 1, bias=False), nn.BatchNorm2d(cout, eps=1e-3))
        self.dropout = nn.Dropout2d(p)
        self.act = nn.PReLU(cout)

    def forward(self, x):
        pooled, idx = F.max_pool2d(x, 2, return_indices=True)
        n, _, h, w = pooled.shape
        shortcut = torch.cat([pooled, pooled.new_zeros(n, self.cout - self.cin, h, w)], 1)
        return self.act(shortcut + self.dropout(self.expand(self.conv(self.project(x))))), idx


class ENetUp(nn.Module):
    def __init__(self, cin, cout, p):
        super().__init__()
        i = cin // 4
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout, eps=1e-3))
        self.project = nn.Sequential(nn.Conv2d(cin, i, 1, bias=False), nn.BatchNorm2d(i, eps=1e-3), nn.ReLU())
        self.upsample = nn.ConvTranspose2d(i, i, 3, 2, 1)
        self.upsampleBn = nn.BatchNorm2d(i, eps=1e-3)
        self.expand = nn.Sequential(nn.Conv2d(i, cout, 1, bias=False), nn.BatchNorm2d(cout, eps=1e-3))
        self.dropout = nn.Dropout2d(p)

    def forward(self, x, idx, size):
        shortcut = F.max_unpool2d(self.shortcut(x), idx, 2, output_size=size)
        up = F.relu(self.upsampleBn(self.upsample(self.project(x), output_size=size)))
        return F.relu(shortcut + self.dropout(self.expand(up)))


class ENet(nn.Module):
    SECTION2 = [('regular', 0), ('dilated', 2), ('asymmetric', 5), ('dilated', 4), ('regular', 0), ('dilated', 8), ('asymmetric', 5), ('dilated', 16)]

    def __init__(self, num_classes=19, in_channels=3):
        super().__init__()
        self.initial = ENetInitial(in_channels)
        self.bottleneck1_0 = ENetDown(16, 64, 0.01)
        self.stage1 = nn.Sequential(*[ENetBottleneck(64, 'regular', 0, 0.01) for _ in range(4)])
        self.bottleneck2_0 = ENetDown(64, 128, 0.1)
        self.stage2 = nn.Sequential(*[ENetBottleneck(128, k, a, 0.1) for k, a in self.SECTION2])
        self.stage3 = nn.Sequential(*[ENetBottleneck(128, k, a, 0.1) for k, a in self.SECTION2])
        self.bottleneck4_0 = ENetUp(128, 64, 0.1)
        self.stage4 = nn.Sequential(*[ENetBottleneck(64, 'regular', 0, 0.1, decoder=True) for _ in range(2)])
        self.bottleneck5_0 = ENetUp(64, 16, 0.1)
        self.stage5 = nn.Sequential(ENetBottleneck(16, 'regular', 0, 0.1, decoder=True))
        self.fullconv = nn.ConvTranspose2d(16, num_classes, 2, 2)

    def forward(self, x):
        x0 = self.initial(x)
        x, i1 = self.bottleneck1_0(x0)
        x1 = self.stage1(x)
        x, i2 = self.bottleneck2_0(x1)
        x = self.stage3(self.stage2(x))
        x = self.stage4(self.bottleneck4_0(x, i2, x1.shape[-2:]))
        x = self.stage5(self.bottleneck5_0(x, i1, x0.shape[-2:]))
        return self.fullconv(x)


def resnet_backbone(depth=50, width=64, in_channels=3, output_stride=32, multi_grid=None):
    block, layers = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]), 50: (Bottleneck, [3, 4, 6, 3]), 101: (Bottleneck, [3, 4, 23, 3])}[depth]
    net = ResNet(block, layers)
    if width != 64 or in_channels != 3:  # torchvision's own _make_layer, from a narrower stem
        net.inplanes = width
        net.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        net.bn1 = nn.BatchNorm2d(width)
        net.layer1 = net._make_layer(block, width, layers[0])
        for i in (2, 3, 4):
            setattr(net, f'layer{i}', net._make_layer(block, width * 2 ** (i - 1), layers[i - 1], stride=2))
    del net.fc, net.avgpool
    dilate = {8: (False, True, True), 16: (False, False, True), 32: (False, False, False)}[output_stride]
    rate = 1
    for li, layer in enumerate([net.layer2, net.layer3, net.layer4]):
        for bi, blk in enumerate(layer):
            for c in [m for m in blk.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]:
                c.dilation = c.padding = (rate, rate)
                if dilate[li] and c.stride == (2, 2):
                    c.stride = (1, 1)
                    rate *= 2
            if dilate[li] and blk.downsample is not None:
                blk.downsample[0].stride = (1, 1)
    if multi_grid:
        for g, blk in zip(multi_grid, net.layer4):
            for c in [m for m in blk.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]:
                c.dilation = c.padding = (rate * g, rate * g)
    return net


def backbone_features(net, x):
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    c2 = net.layer1(x)
    c3 = net.layer2(c2)
    c4 = net.layer3(c3)
    return c2, c3, c4, net.layer4(c4)


def up(x, size):
    return F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=False)


def conv_bn_relu_seq(i, o, k, s=1, d=1):
    return nn.Sequential(nn.Conv2d(i, o, k, s, d * (k - 1) // 2, d, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


class DeepLabV3(nn.Module):
    def __init__(self, num_classes=21, depth=50, width=64, in_channels=3, output_stride=16, multi_grid=(1, 2, 4), atrous_rates=(6, 12, 18), channels=256, image_pooling=True):
        super().__init__()
        self.backbone = resnet_backbone(depth, width, in_channels, output_stride, multi_grid)
        feats = width * 8 * (4 if depth >= 50 else 1)
        self.aspp = ASPP(feats, [r * 16 // output_stride for r in atrous_rates], channels)
        self.aspp.project = self.aspp.project[:3]
        if not image_pooling:
            # torchvision's ASPP without its last branch (ASPPPooling); the projection reads one branch fewer.
            del self.aspp.convs[-1]
            self.aspp.project[0] = nn.Conv2d(len(self.aspp.convs) * channels, channels, 1, bias=False)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x):
        return up(self.classifier(self.aspp(backbone_features(self.backbone, x)[3])), x.shape[-2:])


class PSPNet(nn.Module):
    # ppm=False: the dilated-FCN baseline of the paper's Table 2 (the head on the features alone);
    # aux_weight=0: no auxiliary head.
    def __init__(self, num_classes=21, depth=50, width=64, in_channels=3, output_stride=8, bins=(1, 2, 3, 6), head_channels=512, aux_channels=256, aux_weight=0.4, dropout=0.1, ppm=True):
        super().__init__()
        self.backbone = resnet_backbone(depth, width, in_channels, output_stride)
        c = width * 8 * (4 if depth >= 50 else 1)
        if ppm:
            self.ppm = nn.Module()
            self.ppm.stages = nn.ModuleList([nn.Sequential(nn.AdaptiveAvgPool2d(b), *conv_bn_relu_seq(c, c // len(bins), 1)) for b in bins])
        else:
            self.ppm = None
        self.head = nn.Sequential(*conv_bn_relu_seq(2 * c if ppm else c, head_channels, 3), nn.Dropout2d(dropout), nn.Conv2d(head_channels, num_classes, 1))
        self.aux = nn.Sequential(*conv_bn_relu_seq(c // 2, aux_channels, 3), nn.Dropout2d(dropout), nn.Conv2d(aux_channels, num_classes, 1)) if aux_weight > 0 else None
        self.aux_weight = aux_weight

    def heads(self, x, with_aux=True):
        _, _, c4, c5 = backbone_features(self.backbone, x)
        pyramid = torch.cat([c5] + [up(s(c5), c5.shape[-2:]) for s in self.ppm.stages], 1) if self.ppm is not None else c5
        return self.head(pyramid), (self.aux(c4) if with_aux and self.aux is not None else None)

    def forward(self, x):
        return up(self.heads(x, with_aux=False)[0], x.shape[-2:])

    def loss(self, x, t, weight=None):
        main, aux = self.heads(x)
        ce = lambda z: F.cross_entropy(up(z, t.shape[-2:]), t, weight=weight, ignore_index=255)
        return ce(main) + self.aux_weight * ce(aux) if aux is not None else ce(main)


class CFF(nn.Module):
    def __init__(self, low, high, out, num_classes):
        super().__init__()
        self.low = nn.Sequential(nn.Conv2d(low, out, 3, padding=2, dilation=2, bias=False), nn.BatchNorm2d(out))
        self.high = nn.Sequential(nn.Conv2d(high, out, 1, bias=False), nn.BatchNorm2d(out))
        self.classifier = nn.Conv2d(low, num_classes, 1)

    def forward(self, low, high):
        low = up(low, high.shape[-2:])
        return F.relu(self.low(low) + self.high(high)), (self.classifier(low) if self.training else None)


class ICNet(nn.Module):
    def __init__(self, num_classes=19, depth=50, width=64, in_channels=3, sub1=(32, 32, 64), bins=(1, 2, 3, 6), psp_channels=256, cff_channels=128, lambdas=(0.16, 0.4, 1.0)):
        super().__init__()
        a, b, c = sub1
        self.sub1 = nn.Sequential(conv_bn_relu_seq(in_channels, a, 3, 2), conv_bn_relu_seq(a, b, 3, 2), conv_bn_relu_seq(b, c, 3, 2))
        self.backbone = resnet_backbone(depth, width, in_channels, 8)
        f4 = width * 8 * (4 if depth >= 50 else 1)
        self.bins = bins
        self.pspReduce = conv_bn_relu_seq(f4, psp_channels, 1)
        self.cff24 = CFF(psp_channels, f4 // 4, cff_channels, num_classes)
        self.cff12 = CFF(cff_channels, c, cff_channels, num_classes)
        self.classifier = nn.Conv2d(cff_channels, num_classes, 1)
        self.lambdas = lambdas

    def cascade(self, x):
        h, w = x.shape[-2:]
        half = lambda t: F.interpolate(t, scale_factor=0.5, mode='bilinear', align_corners=False)
        n = self.backbone
        f1 = self.sub1(x)
        f2 = n.layer2(n.layer1(n.maxpool(n.relu(n.bn1(n.conv1(half(x)))))))
        f4 = n.layer4(n.layer3(half(f2)))
        f4 = self.pspReduce(f4 + sum(up(F.adaptive_avg_pool2d(f4, b), f4.shape[-2:]) for b in self.bins))
        f24, g4 = self.cff24(f4, f2)
        f12, g24 = self.cff12(f24, f1)
        return self.classifier(up(f12, ((h + 3) // 4, (w + 3) // 4))), g24, g4

    def forward(self, x):
        return up(self.cascade(x)[0], x.shape[-2:])

    def loss(self, x, t, weight=None):
        def ce(z):
            lab = F.interpolate(t[:, None].float(), size=z.shape[-2:], mode='nearest')[:, 0].long()
            return F.cross_entropy(z, lab, weight=weight, ignore_index=255)
        z124, z24, z4 = self.cascade(x)
        l1, l2, l3 = self.lambdas
        return l3 * ce(z124) + l2 * ce(z24) + l1 * ce(z4)


MODELS = {'mobilenet_v1': MobileNetV1, 'se_resnet50': se_resnet50, 'xception': Xception, 'enet': ENet, 'deeplabv3': DeepLabV3, 'pspnet': PSPNet, 'icnet': ICNet}


def scale_process(net, x, crop_h, crop_w, num_classes, stride=None, flip=False):
    """Sliding-window class probabilities as PSPNet's authors evaluate (hszhao/semseg, tool/test.py
    scale_process), on tensors: pad a side shorter than the crop with the mean (0 after normalization) split
    evenly, ceil((size - crop) / stride) + 1 windows per side with the last moved back flush with the edge,
    softmax per window (averaged with the mirrored window's), summed in place, divided by the count of windows
    over each pixel, the padding cut off. One window through `net` at a time, as theirs."""
    n, _, ori_h, ori_w = x.shape
    pad_h, pad_w = max(crop_h - ori_h, 0), max(crop_w - ori_w, 0)
    pad_h_half, pad_w_half = int(pad_h / 2), int(pad_w / 2)
    image = F.pad(x, (pad_w_half, pad_w - pad_w_half, pad_h_half, pad_h - pad_h_half))
    new_h, new_w = image.shape[2:]
    stride_h, stride_w = stride or (int(math.ceil(crop_h * 2 / 3)), int(math.ceil(crop_w * 2 / 3)))
    grid_h = int(math.ceil(float(new_h - crop_h) / stride_h) + 1)
    grid_w = int(math.ceil(float(new_w - crop_w) / stride_w) + 1)
    prediction = torch.zeros(n, num_classes, new_h, new_w)
    count = torch.zeros(new_h, new_w)
    for index_h in range(grid_h):
        for index_w in range(grid_w):
            s_h = index_h * stride_h
            e_h = min(s_h + crop_h, new_h)
            s_h = e_h - crop_h
            s_w = index_w * stride_w
            e_w = min(s_w + crop_w, new_w)
            s_w = e_w - crop_w
            c = image[:, :, s_h:e_h, s_w:e_w]
            out = F.softmax(net(c), 1)
            if flip:
                out = (out + F.softmax(net(c.flip(3)), 1).flip(3)) / 2
            count[s_h:e_h, s_w:e_w] += 1
            prediction[:, :, s_h:e_h, s_w:e_w] += out
    prediction /= count
    return prediction[:, :, pad_h_half:pad_h_half + ori_h, pad_w_half:pad_w_half + ori_w].contiguous()
