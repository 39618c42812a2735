#!/usr/bin/env python3
"""tools/bench/mem_probe.py - memory ceilings of the GPU, measured with PyTorch (device only).

Prints the bandwidth of three streaming patterns over 1 GiB buffers, bytes read plus bytes
written over the median time of 20 runs (CUDA events):
  copy      dst.copy_(src)                  (the 3.0 TB/s roofline constant of the notes)
  rmw       x.mul_(c) in place, fp32        (the SSM state update: read and write the same bytes)
  read      x.sum()                         (read only)
Usage: python3 tools/bench/mem_probe.py  (needs torch with CUDA; the dev VM has none)
"""
import torch


def timed(fn, reps=20):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    n = (1 << 30) // 4
    a = torch.rand(n, device="cuda", dtype=torch.float32)
    b = torch.empty_like(a)
    size = a.numel() * 4
    print(f"device: {torch.cuda.get_device_name()}")
    t = timed(lambda: b.copy_(a))
    print(f"copy 1 GiB fp32: {2 * size / t / 1e12:.2f} TB/s (read + write)")
    t = timed(lambda: a.mul_(0.9999))
    print(f"rmw  1 GiB fp32 in place: {2 * size / t / 1e12:.2f} TB/s (read + write)")
    t = timed(lambda: a.sum())
    print(f"read 1 GiB fp32 (sum): {size / t / 1e12:.2f} TB/s")


if __name__ == "__main__":
    main()
