#!/usr/bin/env python3
"""The native ceiling for the GPU kit's bench: PyTorch's fp32 matmul (TF32 off) and its
scaled_dot_product_attention, on the same shapes, timed with CUDA events (median of runs, each
run several repetitions). Reads its plan as JSON in argv[1]; prints one JSON document. Without
torch it prints {"available": false, "reason": ...}; without CUDA it measures the CPU and says so."""
import json
import statistics
import sys
import time


def main():
    plan = json.loads(sys.argv[1])
    try:
        import torch
        import torch.nn.functional as F
    except Exception as err:  # noqa: BLE001 - any import failure means "no torch here"
        print(json.dumps({"available": False, "reason": f"torch is not importable: {err}"}))
        return
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    runs = int(plan.get("runs", 5))

    def timed(fn, flops):
        fn()  # warm-up (cuBLAS handles, kernel selection)
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        one = max(time.perf_counter() - t0, 1e-6)
        reps = max(1, min(200, int(0.05 / one)))
        times = []
        for _ in range(runs):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(reps):
                    fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) / 1000 / reps)
            else:
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn()
                times.append((time.perf_counter() - t0) / reps)
        s = statistics.median(times)
        return {"ms": round(s * 1000, 4), "gflops": round(flops / s / 1e9, 3)}

    out = {
        "available": True,
        "version": torch.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "cuda": cuda,
        "tf32": False,
        "matmul": [],
        "attention": [],
    }
    gen = torch.Generator(device=dev).manual_seed(1)
    for n in plan.get("matmul", []):
        a = torch.rand((n, n), device=dev, generator=gen) * 2 - 1
        b = torch.rand((n, n), device=dev, generator=gen) * 2 - 1
        out["matmul"].append({"size": n, **timed(lambda: torch.mm(a, b), 2 * n**3)})
        del a, b
    for p in plan.get("attention", []):
        h, s, d = p["heads"], p["seq"], p["d"]
        q, k, v = (torch.rand((1, h, s, d), device=dev, generator=gen) * 2 - 1 for _ in range(3))
        out["attention"].append({"heads": h, "seq": s, "d": d, **timed(lambda: F.scaled_dot_product_attention(q, k, v), 4 * h * s * s * d)})
        del q, k, v
    print(json.dumps(out))


if __name__ == "__main__":
    main()
