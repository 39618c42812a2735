#!/usr/bin/env bash
# tools/bench/gpu-build.sh — builds the GPU test and benchmark binaries into .gpu/ (git-ignored)
# with only the libraries they need (cuBLAS/cuBLASLt dynamic, cudart and OpenBLAS static), so
# they run on a GPU machine that lacks the project's other dependencies (ZeroMQ, LMDB, ...).
# Usage: tools/bench/gpu-build.sh   (then carry .gpu/pack to the device: tools/bench/device-run.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
NVCC=$(readlink -f "${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}")
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$NVCC")")}
CUDA_LIB=$CUDA_HOME/lib64
[ -f "$CUDA_LIB/libcudart_static.a" ] || CUDA_LIB=$CUDA_HOME/targets/x86_64-linux/lib
O=.gpu/obj
mkdir -p $O .gpu/bin
rm -f .gpu/bin/*  # no stale binaries of removed tests
CFLAGS="-O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wstrict-prototypes -Wno-unused-parameter -Wshadow=local -I. -DTHINKFAST_CUDA=1 -I$CUDA_HOME/include"
NVFLAGS="-O3 -std=c++17 -I. -gencode=arch=compute_90,code=sm_90 -Xcompiler -Wall,-Wno-unused-parameter --expt-relaxed-constexpr -lineinfo"
objs=()
pids=()
for f in kernels/cuda/*.cu; do
  o=$O/$(basename "$f" .cu).cu.o; objs+=("$o")
  stale=0; [ -f "$o" ] || stale=1
  for dep in "$f" kernels/cuda/*.cuh kernels/cuda/*.h kernels/ops.h; do [ "$dep" -nt "$o" ] && stale=1; done
  if [ $stale = 1 ]; then "$NVCC" $NVFLAGS -c "$f" -o "$o" & pids+=($!); fi
done
for f in kernels/cuda/*.c kernels/backend.c kernels/cpu/*.c common/*.c workers/model/*.c tools/bench/sgemm_shim.c; do
  [ -f "$f" ] || continue
  o=$O/$(echo "$f" | tr / _ | sed 's/\.c$/.o/'); objs+=("$o")
  cc $CFLAGS -c "$f" -o "$o"
done
for p in "${pids[@]}"; do wait "$p"; done
LIBS="-Wl,-Bstatic -ljansson -lpcre2-8 -Wl,-Bdynamic -L$CUDA_LIB -lcublasLt -lcublas $CUDA_LIB/libcudart_static.a -lstdc++ -lm -lpthread -ldl -lrt"
rm -f $O/libgpu.a && ar rcs $O/libgpu.a "${objs[@]}"
# every GPU test and the two GPU benchmarks
mains=(tests/gpu/test_*.c tools/bench_gpu_main.c tools/bench_engine_gpu_main.c)
for f in "${mains[@]}"; do
  name=$(basename "$f" .c); name=${name%_main}
  cc $CFLAGS -c "$f" -o "$O/$name.o"
  cc -o ".gpu/bin/$name" "$O/$name.o" $O/libgpu.a $LIBS
  strip ".gpu/bin/$name"
done
for b in .gpu/bin/*; do if ldd "$b" | grep -E "jansson|pcre|zmq|lmdb|msgpack|openblas|gfortran"; then echo "gpu-build: $b links a library the GPU machine lacks"; exit 1; fi; done
# what travels to the device: the binaries packed (60 MB of statically linked kernels -> ~4 MB),
# under the 64 MiB a call may carry; device-run.sh unpacks them
mkdir -p .gpu/pack
tar -C .gpu -cf - bin | xz -T4 -6 >.gpu/pack/bin.tar.xz
ls -la .gpu/bin .gpu/pack
