"""The pinned moto server, with one fidelity fix: DynamoDB requests are served one at a time.

moto checks a write's conditions and then applies it without a lock, so two concurrent
conditional writes on one item can both succeed. Real DynamoDB never allows that, and this
project's correctness (one approval counted once, one terminal outcome) rests on it. Serializing
only DynamoDB calls restores the guarantee and keeps everything else (SQS long polls) concurrent.

Usage: python local/moto_server.py -H 127.0.0.1 -p PORT   (started by `jit dev` and the tests)
"""

import argparse
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

_dynamodb = threading.Lock()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost"):
        raise SystemExit("the emulator only listens on loopback")
    app = DomainDispatcherApplication(create_backend_app)

    def serialized(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with _dynamodb:
                # Consume the whole response while holding the lock.
                return [b"".join(app(environ, start_response))]
        return app(environ, start_response)

    run_simple(args.host, args.port, serialized, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
