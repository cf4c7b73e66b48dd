"""Shared CLI plumbing: one-line errors (exit 2), Ctrl-C (exit 130), JSON output."""

from __future__ import annotations

import errno
import functools
import math
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ssmbench.errors import BadInput, SsmbenchError
from ssmbench.results import to_json

F = TypeVar("F", bound=Callable[..., Any])

console = Console(stderr=False)
err_console = Console(stderr=True)


# OS errors that are the user's environment, not a bug: shown as one line, exit 2
ENVIRONMENT_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT)


def option_name(param: str) -> str:
    return "--" + param.replace("_", "-")


def check_numbers(kwargs: dict[str, Any]) -> None:
    """Rules every command shares: a float option is finite (Click parses 'nan' and 'inf' as
    floats), a seed is >= 0 (NumPy and the data generators take no negative seeds)."""
    for name, value in kwargs.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise BadInput(f"{option_name(name)} must be a finite number, got {value}")
        if name == "seed" and isinstance(value, int) and value < 0:
            raise BadInput(f"--seed must be >= 0, got {value}")


def _error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def cli_errors(fn: F) -> F:
    """Check the shared number rules, then run the command: SsmbenchError (and an OS error of the
    user's environment such as a read-only folder or a full disk) becomes ``error: ...`` on
    stderr + exit 2, Ctrl-C exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            check_numbers(kwargs)
            return fn(*args, **kwargs)
        except SsmbenchError as e:
            _error(str(e))
            raise typer.Exit(2) from None
        except OSError as e:
            if e.errno not in ENVIRONMENT_ERRNOS:
                raise
            _error(f"{e.filename}: {e.strerror}" if e.filename else str(e.strerror or e))
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("interrupted: finished measurements are on disk", highlight=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def print_json(obj: Any) -> None:
    sys.stdout.write(to_json(obj))
    sys.stdout.flush()

