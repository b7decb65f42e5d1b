"""`python -m warmup_research` and the `warmup-research` console script."""
from warmup_research import runtime


def main(argv=None) -> None:
  runtime.setup_process()
  from warmup_research import cli  # imports jax: only after setup_process set XLA's flags
  cli.main(argv)


if __name__ == "__main__":
  main()
