"""``python -m gengate.sim [--host H] [--port P]``: run the provider simulators.

Prints exactly one line, ``SIM_READY http://H:P``, once the server accepts
connections, so a parent process can read the (possibly OS-chosen) port.
"""

from __future__ import annotations

import argparse

from gengate.sim.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gengate.sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    def announce(url: str) -> None:
        print(f"SIM_READY {url}", flush=True)

    serve(args.host, args.port, ready=announce, log_level=args.log_level)


if __name__ == "__main__":
    main()
