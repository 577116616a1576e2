# One PyTorch rank in a process group shared with tsvision ranks (distributed.test.ts): the same calls, in the
# same order, as the 'interop' scenario of worker.ts. Usage: torch_rank.py <init_method> <rank> <world_size>
import json, sys, datetime, torch, torch.distributed as dist
init, rank, world = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
dist.init_process_group('gloo', init_method=init, rank=rank, world_size=world, timeout=datetime.timedelta(seconds=20))
r = {}
t = torch.tensor([1., 2., 3.]) * (rank + 1); dist.all_reduce(t); r['sum'] = t.tolist()
t = torch.tensor([1., 2., 3.]) * (rank + 1); dist.all_reduce(t, op=dist.ReduceOp.MAX); r['max'] = t.tolist()
t = torch.tensor([float(rank), rank + 0.5]); dist.broadcast(t, src=1); r['broadcast'] = t.tolist()
out = [torch.zeros(2) for _ in range(world)]; dist.all_gather(out, torch.tensor([float(rank), 100. + rank])); r['allGather'] = [o.tolist() for o in out]
dist.barrier()
dist.destroy_process_group()
print('RESULT ' + json.dumps(r))
