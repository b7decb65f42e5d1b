"""Process set-up and the host description named in results."""
from warmup_research import runtime


def test_cpu_model_names_the_isa_features_that_change_the_kernels(tmp_path):
  info = tmp_path / "cpuinfo"
  core = ("model name\t: Intel(R) Xeon(R) Processor\n"
          "flags\t\t: fpu sse2 avx2 avx512f avx512bw {extra}\n\n")
  info.write_text(core.format(extra="amx_tile avx512_bf16") * 2)
  assert runtime.cpu_model(str(info)) == "Intel(R) Xeon(R) Processor (AVX-512, AVX512-BF16, AMX)"
  info.write_text(core.format(extra="").replace("avx512f avx512bw ", ""))
  assert runtime.cpu_model(str(info)) == "Intel(R) Xeon(R) Processor"
  assert runtime.cpu_model(str(tmp_path / "missing")) != ""   # platform.processor() or 'unknown'


def test_set_cpu_flags_adds_once_and_respects_the_user(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
  runtime.set_cpu_flags()
  runtime.set_cpu_flags()
  flags = runtime.os.environ["XLA_FLAGS"].split()
  assert flags == ["--xla_force_host_platform_device_count=2", *runtime.CPU_FLAGS]
  mine = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT"
  monkeypatch.setenv("XLA_FLAGS", mine)
  runtime.set_cpu_flags()
  assert runtime.os.environ["XLA_FLAGS"] == mine
  monkeypatch.setenv("XLA_FLAGS", "")
  monkeypatch.setenv("WARMUP_RESEARCH_XLA_CPU_DEFAULTS", "0")
  runtime.set_cpu_flags()
  assert runtime.os.environ["XLA_FLAGS"] == ""
