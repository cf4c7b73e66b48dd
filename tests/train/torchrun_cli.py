"""What torchrun runs in test_distributed.py: the ssmbench CLI (arguments as given). On every
rank but 0, any write into the folder named by --out or --resume (open for writing, rename,
remove, mkdir, chmod) is appended to the file $SSMBENCH_TEST_WRITES and refused."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
WRITE_EVENTS = {"os.rename": 1, "os.remove": 0, "os.mkdir": 0, "os.rmdir": 0, "os.chmod": 0, "os.truncate": 0}


def _folder(argv: list[str]) -> Path:
    for flag in ("--out", "--resume"):
        if flag in argv:
            return Path(argv[argv.index(flag) + 1]).resolve()
    raise SystemExit("torchrun_cli.py needs --out or --resume")


def refuse_writes_into(folder: Path, log: Path) -> None:
    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, writing = args[0], bool(args[2] & WRITE_FLAGS)
        elif event in WRITE_EVENTS:
            path, writing = args[WRITE_EVENTS[event]], True
        else:
            return
        if not writing or not isinstance(path, (str, os.PathLike)):
            return
        if Path(os.path.abspath(path)).is_relative_to(folder):
            with open(log, "a") as f:
                f.write(f"rank {os.environ['RANK']}: {event} {path}\n")
            raise PermissionError(f"rank {os.environ['RANK']} wrote into the results folder: {path}")

    sys.addaudithook(hook)


if __name__ == "__main__":
    if os.environ.get("RANK", "0") != "0":
        refuse_writes_into(_folder(sys.argv), Path(os.environ["SSMBENCH_TEST_WRITES"]))
    from ssmbench.cli import main

    main()
