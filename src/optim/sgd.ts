// SGD with momentum, dampening, Nesterov and L2 weight decay: torch.optim.SGD's update (1.13), written with
// libtorch's multi-tensor (_foreach) ops so a step costs a few calls, not a few per parameter. The
// arithmetic is the single-tensor path's, elementwise: d = g + wd·p; b = m·b + (1−damp)·d (b = d at first);
// d = nesterov ? d + m·b : b; p −= lr·d.
import { handles, op, wrapList } from '../torch';
import { Parameter } from '../nn/module';
import { Optimizer, ParamGroup } from './optimizer';

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}
/** A parameter group: its own entries override the optimizer's options. */
export type SGDParamGroup = { params: Parameter[] } & Partial<SGDOptions>;
type SGDHyper = { momentum: number; dampening: number; nesterov: boolean; weightDecay: number };


export class SGD extends Optimizer<SGDHyper> {
  constructor(params: Parameter[] | SGDParamGroup[], o: SGDOptions) {
    super(params, { lr: o.lr, momentum: o.momentum ?? 0, dampening: o.dampening ?? 0, nesterov: o.nesterov ?? false, weightDecay: o.weightDecay ?? 0 });
    for (const g of this.paramGroups) {
      if (!(g.momentum >= 0)) throw new RangeError(`SGD: momentum must be >= 0, got ${g.momentum}`);
      if (!(g.weightDecay >= 0)) throw new RangeError(`SGD: weightDecay must be >= 0, got ${g.weightDecay}`);
      if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) throw new Error('SGD: Nesterov momentum requires momentum > 0 and dampening 0');
    }
  }

  protected updateGroup(g: ParamGroup<SGDHyper>): void {
    const params = g.params.filter((p) => p.grad !== null);
    if (!params.length) return;
    // grads are the parameters' own .grad tensors until an out-of-place op replaces them: never update them
    // in place (torch's foreach Nesterov path does, which would change what clipping or logging sees).
    let grads = params.map((p) => p.grad!);
    if (g.weightDecay) grads = wrapList(op('aten::_foreach_add.List').call(handles(grads), handles(params), g.weightDecay));
    if (g.momentum) {
      const fresh = params.some((p) => !this.state.get(p)?.momentum_buffer);
      if (!fresh) {
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
      if (g.nesterov) grads = wrapList(op('aten::_foreach_add.List').call(handles(grads), handles(bufs), g.momentum));
      else grads = bufs;
    }
    op('aten::_foreach_add_.List').run(handles(params), handles(grads), -g.lr);
  }
}
