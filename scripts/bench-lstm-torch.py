#!/usr/bin/env python3
"""PyTorch reference for scripts/bench-lstm.sh, measured on this machine.

The same work as trendstream's BenchmarkLSTMTrain and BenchmarkLSTMForecast
(model/lstm_bench_test.go), in the setting of ../shared/ANCHORS.md: PyTorch
on one thread, L = 56, H = 28, a head with a mean and three quantiles per
step, Adam with global gradient-norm clipping, median of 30 timed steps
after 5 warm-up steps. The input has 8 features, as trendstream's
benchmarks (ANCHORS.md used 5; the difference is under 3% of the work at
hidden 32).

Prints one line per benchmark, "Train/2x64/B=64 <samples/s>" or
"Forecast/2x64/B=413 <forecasts/s>", after a comment line with PyTorch's
version, BLAS and the GFLOP/s of a 413x128 by 128x256 float32 product, which
shows whether an optimized BLAS is in use (OpenBLAS reaches tens of GFLOP/s
on one core; the reference BLAS a few).

Needs PyTorch (Debian: apt-get install python3-torch, version 1.13).
"""
import statistics
import sys
import time

import torch
import torch.nn.functional as F

L, H, FEATURES, LEVELS = 56, 28, 8, (0.1, 0.5, 0.9)
SHAPES = ((1, 32), (2, 32), (1, 64), (2, 64))
WARMUP, TIMED = 5, 30


class Net(torch.nn.Module):
    def __init__(self, layers, hidden):
        super().__init__()
        self.lstm = torch.nn.LSTM(FEATURES, hidden, num_layers=layers, batch_first=True)
        self.head = torch.nn.Linear(hidden, H * (1 + len(LEVELS)))

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1]).view(-1, H, 1 + len(LEVELS))


def loss_fn(out, y):
    # Squared error of softplus(mean) plus the pinball loss of quantiles
    # built as a base plus softplus increments, as trendstream's head.
    mean = F.softplus(out[..., 0])
    q = torch.cat([out[..., 1:2], F.softplus(out[..., 2:])], dim=-1).cumsum(-1)
    loss = ((mean - y) ** 2).mean()
    for j, tau in enumerate(LEVELS):
        d = y - q[..., j]
        loss = loss + torch.maximum(tau * d, (tau - 1) * d).mean()
    return loss


def median_seconds(fn):
    for _ in range(WARMUP):
        fn()
    times = []
    for _ in range(TIMED):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def sgemm_gflops():
    a, b = torch.rand(413, 128), torch.rand(128, 256)
    return 2 * 413 * 128 * 256 / median_seconds(lambda: a @ b) / 1e9


def blas_library():
    """Returns the path of the BLAS library loaded (Debian picks it with
    update-alternatives), or "BLAS unknown"."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if "blas" in path:
                    return path
    except OSError:
        pass
    return "BLAS unknown"


def main():
    torch.set_num_threads(1)
    torch.manual_seed(1)
    print(f"# torch {torch.__version__}, {blas_library()}, sgemm {sgemm_gflops():.1f} GFLOP/s", flush=True)
    for layers, hidden in SHAPES:
        net = Net(layers, hidden)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        for batch in (64, 413):
            x = torch.rand(batch, L, FEATURES)
            y = torch.rand(batch, H)

            def step():
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(net(x), y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()

            print(f"Train/{layers}x{hidden}/B={batch} {batch / median_seconds(step):.0f}", flush=True)
        x = torch.rand(413, L, FEATURES)

        def forecast():
            with torch.no_grad():
                net(x)

        print(f"Forecast/{layers}x{hidden}/B=413 {413 / median_seconds(forecast):.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
