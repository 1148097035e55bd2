"""A stand-in autointerp judge for the offline demo and the tests: an HTTP server on 127.0.0.1
that speaks OpenAI's chat-completions protocol (POST <base>/chat/completions), as a vLLM server on
a cluster node does, and answers in the format SAE Bench's autointerp parses: example numbers for a
scoring prompt ("1, 2"), "activates on ..." for an explanation prompt. It is not a language model:
the autointerp scores it yields show the eval running end to end, nothing about the SAE. It records
every request's JSON body and Authorization header.

CLI (config/demo_more_evals.yaml expects it): ``python -m workflow_scripts.demo.judge --port 8765``
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JudgeServer:
    """`with JudgeServer() as judge:` serves at `judge.base_url` (…/v1) until the block ends."""

    def __init__(self, port: int = 0):
        self.requests: list[dict] = []  # JSON bodies
        self.authorizations: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.authorizations.append(self.headers.get("Authorization", ""))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self.send_error(404, f"no route {self.path}")
                    return
                system = body["messages"][0]["content"]
                text = (
                    "1, 2"
                    if "comma-separated list" in system
                    else "This neuron activates on demo words."
                )
                reply = {
                    "id": f"chatcmpl-{len(server.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {
                            "index": i,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                        for i in range(body.get("n") or 1)
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep the test's output quiet
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> JudgeServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Serve the demo's stand-in autointerp judge.")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    args = parser.parse_args(argv)
    judge = JudgeServer(args.port)
    print(f"[judge] serving {judge.base_url} (stand-in answers, not a model); Ctrl-C stops it")
    try:
        judge._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        judge._httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
