"""The `gardenctl` console script. `check` and `status` with plain arguments take the fast path (cli/fast.py);
everything else goes through the full Typer CLI and its error boundary (cli/main.py)."""

from __future__ import annotations

import os
import sys

INTERNAL_ERROR = 70


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from gardenctl.errors import ExitCode, GardenError

    try:
        from gardenctl.cli import fast

        code = fast.run(argv)
    except GardenError as exc:
        _say(f"Error: {exc.message}")
        for line in exc.details:
            _say(f"  {line}")
        if exc.hint:
            _say(f"hint: {exc.hint}")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        _say("Interrupted.")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - the boundary of the fast path: anything else is a bug
        if "--debug" in argv or os.environ.get("GARDENCTL_DEBUG", "").lower() in ("1", "true", "yes"):
            import traceback

            traceback.print_exc()
        else:
            _say(f"Error: internal error: {type(exc).__name__}: {exc} (this is a gardenctl bug; re-run with --debug for the traceback)")
        return INTERNAL_ERROR
    if code is not None:
        return code
    from gardenctl.cli.main import main as full_main

    return full_main(argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
