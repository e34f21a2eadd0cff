"""client.httpx_nocli: components import httpx without its CLI; requests and the CLI itself still work."""
from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import json, sys, threading
from http.server import BaseHTTPRequestHandler, HTTPServer
if sys.argv[1] == "client":
    import client.rest  # noqa: F401 - the components' import path
import httpx

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"ok": true}'
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

srv = HTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
r = httpx.get(f"http://127.0.0.1:{srv.server_address[1]}/x", timeout=5)
srv.shutdown()
print(json.dumps({"status": r.status_code, "body": r.json(), "rich": "rich" in sys.modules,
                  "click": "click" in sys.modules, "modules": len(sys.modules)}))
"""


def probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_the_client_path_skips_the_cli_and_answers_like_plain_httpx():
    plain, ours = probe("plain"), probe("client")
    assert plain["status"] == ours["status"] == 200 and plain["body"] == ours["body"] == {"ok": True}
    # the standard path pulls the CLI's dependencies in (if they are installed); ours never does
    assert not ours["rich"] and not ours["click"]
    if plain["rich"]:
        assert ours["modules"] < plain["modules"]


def test_the_cli_still_resolves_on_call():
    code = ("import client, httpx, sys\n"
            "assert 'rich' not in sys.modules\n"
            "try:\n    httpx.main(['--help'])\nexcept SystemExit as e:\n    print('exit', e.code)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "exit 0" in out.stdout and "Usage" in out.stdout


def test_install_is_a_no_op_once_httpx_is_imported():
    import httpx  # noqa: F401
    from client import httpx_nocli

    assert httpx_nocli.install() is False
