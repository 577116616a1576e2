// SGD with momentum, dampening, Nesterov and L2 weight decay: torch.optim.SGD's update, written with
// libtorch's multi-tensor (_foreach) ops so a step costs a few calls, not a few per parameter.
import { Tensor, op, wrapList } from '../torch';
import { Parameter } from '../nn/module';
import { Optimizer, ParamGroup } from './optimizer';

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}
type SGDHyper = { momentum: number; dampening: number; nesterov: boolean; weightDecay: number };

const handles = (ts: Tensor[]) => ts.map((t) => t.h);

export class SGD extends Optimizer<SGDHyper> {
  constructor(params: Parameter[] | { params: Parameter[]; lr?: number }[], o: SGDOptions) {
    super(params, { lr: o.lr, momentum: o.momentum ?? 0, dampening: o.dampening ?? 0, nesterov: o.nesterov ?? false, weightDecay: o.weightDecay ?? 0 });
    if (o.nesterov && (!(o.momentum ?? 0) || (o.dampening ?? 0) !== 0)) throw new Error('SGD: Nesterov momentum requires momentum > 0 and dampening 0');
  }

  protected updateGroup(g: ParamGroup<SGDHyper>): void {
    const params = g.params.filter((p) => p.grad !== null);
    if (!params.length) return;
    let grads = params.map((p) => p.grad!);
    if (g.weightDecay) grads = wrapList(op('aten::_foreach_add.List').call(handles(grads), handles(params), g.weightDecay));
    if (g.momentum) {
      const fresh = params.filter((p) => !this.state.get(p)?.momentum_buffer);
      if (fresh.length === 0) {
        const bufs = params.map((p) => this.state.get(p)!.momentum_buffer);
        op('aten::_foreach_mul_.Scalar').run(handles(bufs), g.momentum);
        op('aten::_foreach_add_.List').run(handles(bufs), handles(grads), 1 - g.dampening);
      } else {
        // The first step takes the gradient itself as the buffer, as torch.optim.SGD does.
        params.forEach((p, i) => {
          const s = this.state.get(p)?.momentum_buffer;
          if (s) s.mul_(g.momentum).add_(grads[i], 1 - g.dampening);
          else this.setState(p, 'momentum_buffer', grads[i].detach().clone());
        });
      }
      const bufs = params.map((p) => this.state.get(p)!.momentum_buffer);
      if (g.nesterov) op('aten::_foreach_add_.List').run(handles(grads), handles(bufs), g.momentum);
      else grads = bufs;
    }
    op('aten::_foreach_add_.List').run(handles(params), handles(grads), -g.lr);
  }
}
