"""The Python side of bench/common.ts's LivePeer: answer timing requests, one JSON line each, until quit."""
import json
import sys
import time


def serve(tasks, ready, sync=lambda: None):
    """Print `ready` (a dict) as one JSON line, then for each request {"task", "n", "warmup"} run
    tasks[task] `warmup` times untimed and `n` times timed, answering {"ms": [...]}; {"task": "quit"} ends."""
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req["task"] == "quit":
            break
        fn = tasks[req["task"]]
        for _ in range(req.get("warmup", 0)):
            fn()
        sync()
        times = []
        for _ in range(req["n"]):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
        print(json.dumps({"ms": times}), flush=True)
