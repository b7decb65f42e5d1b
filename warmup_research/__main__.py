"""`python -m warmup_research` and the `warmup-research` console script."""
from warmup_research import runtime


def main(argv=None) -> None:
  runtime.setup_process()
  from warmup_research import cli  # its commands import jax: after setup_process set the flags
  cli.main(argv)


if __name__ == "__main__":
  main()
