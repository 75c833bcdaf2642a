# Sourced by reproduces.sh and queue.sh. The floating-point kernels a pre-training unit is computed under, by
# name: "" (this CPU's own) or AVX2 (those of a CPU without AVX-512, where the `.s0` units ran: ATen's, MKL's
# and oneDNN's instruction-set switches together; on the AMD EPYC family 25 model 17 machine of 2026-12-06
# they reproduce `.s0`, the default does not). Prints the environment words for `env`.
kernel_switches() {
  case "${1:-}" in
    "") ;;
    AVX2) echo "ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2" ;;
    *) echo "kernels.sh: unknown kernel setting '$1' (give nothing or AVX2)" >&2; return 2 ;;
  esac
}
