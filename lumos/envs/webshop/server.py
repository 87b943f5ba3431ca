"""The embedded shop as a real web server on 127.0.0.1, with WebShop's routes and pages (stdlib http.server).

    python -m lumos.envs.webshop.server [--port 3000] [--data DIR]      # then open http://127.0.0.1:3000/fixed_0
    python run_agent.py --task webshop --backend gold --webshop-url http://127.0.0.1:3000

Every request goes to Shop.handle (shop.py), the same code the embedded environment calls in-process,
so an agent sees the same pages either way. One thread per request (ThreadingHTTPServer); the shop's
sessions are guarded by a lock. Forms are read as application/x-www-form-urlencoded, at most 64 KiB.
"""
import argparse
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

MAX_BODY = 64 * 1024


def make_handler(shop, verbose: bool = False):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True   # headers and body go out as two writes: without this, 40 ms stalls

        def _answer(self, method: str, form: dict):
            r = shop.handle(method, self.path, form)
            body = r.html.encode("utf-8")
            self.send_response(r.status)
            if r.location:
                self.send_header("Location", r.location)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._answer("GET", {})

        def do_POST(self):
            try:
                n = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                n = -1
            if n < 0 or n > MAX_BODY:
                self.send_error(413 if n > MAX_BODY else 400)
                return
            raw = self.rfile.read(n).decode("utf-8", "replace") if n else ""
            form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            self._answer("POST", form)

        def log_message(self, fmt, *args):
            if verbose:
                sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    return Handler


def serve(shop, host: str = "127.0.0.1", port: int = 3000, verbose: bool = False) -> ThreadingHTTPServer:
    """Start serving `shop` in a background thread; returns the server (.server_address, .shutdown())."""
    server = ThreadingHTTPServer((host, port), make_handler(shop, verbose))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    ap.add_argument("--port", type=int, default=3000, help="port (default: 3000, WebShop's)")
    ap.add_argument("--data", default=None, help="WebShop data directory (default: data/webshop, generated on first use)")
    ap.add_argument("--num-products", type=int, default=None, help="only the first N products (WebShop's num_products)")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)
    if not 0 <= args.port <= 65535:
        ap.error("--port must be in 0..65535")
    from lumos.envs.webshop.generate import ensure_default_data
    from lumos.envs.webshop.shop import Shop
    try:
        shop = Shop.load(args.data or ensure_default_data(), args.num_products)
    except (OSError, ValueError) as e:
        ap.error(f"cannot load the catalogue: {e}")
    server = ThreadingHTTPServer((args.host, args.port), make_handler(shop, args.verbose))
    host, port = server.server_address[:2]
    print(f"WebShop: {len(shop.cat.products)} products, {len(shop.cat.goals)} goals on http://{host}:{port}/fixed_0",
          file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
