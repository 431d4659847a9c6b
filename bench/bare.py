"""The baseline of `bench intake`: a bare Starlette route reading the body and answering 202, served by uvicorn with
the settings of `roombridge serve` (`python -m bench.bare --port P`)."""

from __future__ import annotations

import argparse
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def accept(request: Request) -> Response:
    await request.body()
    return Response(status_code=202)


app = Starlette(routes=[Route("/graph/notifications", accept, methods=["POST"])])


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bare")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False,
                                  proxy_headers=True, lifespan="on")).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
