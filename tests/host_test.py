"""The host description named in results and benchmark tables."""
from warmup_research import host


def test_cpu_model_names_the_isa_features_that_change_the_kernels(tmp_path):
  info = tmp_path / "cpuinfo"
  core = ("model name\t: Intel(R) Xeon(R) Processor\n"
          "flags\t\t: fpu sse2 avx2 avx512f avx512bw {extra}\n\n")
  info.write_text(core.format(extra="amx_tile avx512_bf16") * 2)
  assert host.cpu_model(str(info)) == "Intel(R) Xeon(R) Processor (AVX-512, AVX512-BF16, AMX)"
  info.write_text(core.format(extra="").replace("avx512f avx512bw ", ""))
  assert host.cpu_model(str(info)) == "Intel(R) Xeon(R) Processor"
  assert host.cpu_model(str(tmp_path / "missing")) != ""   # platform.processor() or 'unknown'
