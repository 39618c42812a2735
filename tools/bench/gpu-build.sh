#!/usr/bin/env bash
# tools/bench/gpu-build.sh — builds the GPU test and benchmark binaries into .gpu/ (git-ignored)
# with only the libraries they need (cuBLAS/cuBLASLt dynamic, cudart and OpenBLAS static), so
# they run on a GPU machine that lacks the project's other dependencies (ZeroMQ, LMDB, ...).
# Usage: tools/bench/gpu-build.sh   (then carry .gpu to the device; see tools/bench/run-gpu.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$NVCC")")}
O=.gpu/obj
mkdir -p $O .gpu/bin
CFLAGS="-O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wstrict-prototypes -Wno-unused-parameter -Wshadow=local -I. -DTHINKFAST_CUDA=1 -I$CUDA_HOME/include"
NVFLAGS="-O3 -std=c++17 -I. -gencode=arch=compute_90,code=sm_90 -Xcompiler -Wall,-Wno-unused-parameter --expt-relaxed-constexpr -lineinfo"
objs=()
pids=()
for f in kernels/cuda/*.cu; do
  o=$O/$(basename "$f" .cu).cu.o; objs+=("$o")
  if [ ! -f "$o" ] || [ "$f" -nt "$o" ] || [ kernels/cuda/cuda_internal.cuh -nt "$o" ] || [ kernels/cuda/cuda_backend.h -nt "$o" ]; then
    "$NVCC" $NVFLAGS -c "$f" -o "$o" & pids+=($!)
  fi
done
for f in kernels/cuda/*.c kernels/backend.c kernels/cpu/*.c common/*.c workers/model/*.c tools/bench/sgemm_shim.c; do
  [ -f "$f" ] || continue
  o=$O/$(echo "$f" | tr / _ | sed 's/\.c$/.o/'); objs+=("$o")
  cc $CFLAGS -c "$f" -o "$o"
done
for p in "${pids[@]}"; do wait "$p"; done
LIBS="-Wl,-Bstatic -ljansson -lpcre2-8 -Wl,-Bdynamic -L$CUDA_HOME/lib64 -lcublasLt -lcublas $CUDA_HOME/lib64/libcudart_static.a -lstdc++ -lm -lpthread -ldl -lrt"
cc $CFLAGS -c tests/gpu/test_cuda_ops.c -o $O/test_cuda_ops.o
cc $CFLAGS -c tests/gpu/test_cuda_golden.c -o $O/test_cuda_golden.o
cc $CFLAGS -c tools/bench_gpu_main.c -o $O/bench_gpu_main.o
cc $CFLAGS -c tests/gpu/test_engine_graphs.c -o $O/test_engine_graphs.o
cc $CFLAGS -c tools/bench_engine_gpu_main.c -o $O/bench_engine_gpu_main.o
rm -f $O/libgpu.a && ar rcs $O/libgpu.a "${objs[@]}"
cc -o .gpu/bin/test_cuda_ops $O/test_cuda_ops.o $O/libgpu.a $LIBS
cc -o .gpu/bin/test_cuda_golden $O/test_cuda_golden.o $O/libgpu.a $LIBS
cc -o .gpu/bin/bench_gpu $O/bench_gpu_main.o $O/libgpu.a $LIBS
cc -o .gpu/bin/test_engine_graphs $O/test_engine_graphs.o $O/libgpu.a $LIBS
cc -o .gpu/bin/bench_engine_gpu $O/bench_engine_gpu_main.o $O/libgpu.a $LIBS
strip .gpu/bin/test_cuda_ops .gpu/bin/test_cuda_golden .gpu/bin/bench_gpu .gpu/bin/test_engine_graphs .gpu/bin/bench_engine_gpu
for b in .gpu/bin/*; do if ldd "$b" | grep -E "jansson|pcre|zmq|lmdb|msgpack|openblas|gfortran"; then echo "gpu-build: $b links a library the GPU machine lacks"; exit 1; fi; done
ls -la .gpu/bin
