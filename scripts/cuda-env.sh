# Sourced by the GPU scripts: finds the CUDA libraries burn-cuda loads at run time (NVRTC from
# the toolkit or the nvidia-cuda-nvrtc wheel, the driver) and the headers NVRTC needs, and
# records the GPU in "$out/gpu.txt" ($out set by the caller).
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
nproc | sed 's/^/cpu cores: /' | tee -a "$out/gpu.txt"
nvrtc=$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))' 2>/dev/null || true)
if [ ! -e "$nvrtc/libnvrtc.so.13" ]; then
  nvrtc=$(dirname "$(find / -xdev -name 'libnvrtc.so.1*' 2>/dev/null | head -n 1)")
fi
export LD_LIBRARY_PATH="$nvrtc:/usr/local/cuda/lib64:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
echo "NVRTC from $nvrtc; headers from $CUDA_PATH/include" | tee -a "$out/gpu.txt"
