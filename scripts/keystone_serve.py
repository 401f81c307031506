"""Serves Keystone's public API (Debian's python3-keystone) on loopback for the tests:
a threaded WSGI server, no Apache. Started by scripts/services.sh keystone.

    /usr/bin/python3 scripts/keystone_serve.py KEYSTONE_CONF PORT
"""
import os
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server

config, port = sys.argv[1], int(sys.argv[2])
sys.argv = sys.argv[:1]  # oslo.config reads the command line too
os.environ["OS_KEYSTONE_CONFIG_FILES"] = config

from keystone.server.wsgi import initialize_public_application  # noqa: E402


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


make_server("127.0.0.1", port, initialize_public_application(), server_class=Server).serve_forever()
