// The synchronized BatchNorm's arithmetic (global sums of x and x², a gradient hook on them) against libtorch's
// own batch_norm kernel, with a one-replica "all-reduce": output, every gradient and the running statistics.
// Across processes, test/distributed/distributed.test.ts checks two ranks against one process.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as T from '../../src/torch';
import { BatchNorm2d } from '../../src/nn';

const maxRel = (a: T.Tensor, b: T.Tensor): number => T.tidy(() => a.sub(b).abs().max().item() / Math.max(b.abs().max().item(), 1e-12));

test('BatchNorm2d with crossReplicaSum (one replica) equals the native batch norm: output, gradients, running statistics', () => {
  T.tidy(() => {
    T.manualSeed(4);
    // A large mean against a small spread: E[x²] − E[x]² must not cancel away the variance.
    const x = T.randn([6, 5, 7, 9]).mul(0.5).add(20).requiresGrad_();
    const up = T.randn([6, 5, 7, 9]);
    const run = (sync: boolean): Record<string, T.Tensor> => {
      const bn = new BatchNorm2d(5, { momentum: 0.3 });
      T.manualSeed(9);
      T.noGrad(() => {
        bn.weight!.copy_(T.randn([5]));
        bn.bias!.copy_(T.randn([5]));
      });
      let calls = 0;
      if (sync) bn.crossReplicaSum = (t) => (calls++, t);
      x.grad = null;
      const y = bn.forward(x);
      y.mul(up).sum().backward();
      if (sync) assert.equal(calls, 2, 'one all-reduce forward (the sums), one backward (their gradient)');
      bn.forward(x.detach()); // a second step of the running statistics
      return { y: y.detach(), dx: x.grad!.clone(), dw: bn.weight!.grad!.clone(), db: bn.bias!.grad!.clone(), mean: bn.running_mean!.clone(), var: bn.running_var!.clone(), n: bn.num_batches_tracked!.clone() };
    };
    const want = run(false);
    const got = run(true);
    for (const k of Object.keys(want)) assert.ok(maxRel(got[k], want[k]) < 1e-4, `${k}: relative ${maxRel(got[k], want[k])}`);
    assert.ok(maxRel(got.y, want.y) < 1e-5 && maxRel(got.dx, want.dx) < 1e-4);
  });
});

test('BatchNorm2d with crossReplicaSum refuses one value per channel over all replicas, in eval uses the running statistics', () => {
  T.tidy(() => {
    const bn = new BatchNorm2d(3);
    bn.crossReplicaSum = (t) => t;
    assert.throws(() => bn.forward(T.randn([1, 3, 1, 1])), /expected more than 1 value per channel over all replicas/);
    bn.eval();
    const x = T.randn([1, 3, 1, 1]);
    assert.ok(maxRel(bn.forward(x), x.div(Math.sqrt(1 + 1e-5))) < 1e-6, 'eval: (x − 0) / √(1 + ε)');
  });
});
