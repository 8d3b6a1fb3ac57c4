#!/usr/bin/python3
"""An independent SOAP 1.1 + 1.2 service (Debian's python3-spyne) for wsstep's interop test.

Serves plain HTTP on 127.0.0.1 (an ephemeral port) behind an mTLS nginx in the test:
  /soap11  SOAP 1.1 (spyne Soap11, requests validated against the schema with lxml)
  /soap12  SOAP 1.2 (spyne Soap12, same)
Operations, namespace urn:wsstep:interop, document/literal, qualified elements:
  Compute(order{customer, items{Item{name, quantity, price}*}}) -> {customer, count, total, names}
  Echo(text) -> text
  Fail(reason) -> a Fault "Client.Validation" with detail <code>4711</code>
  WhoAmI() -> what arrived: the WS-Security UsernameToken (checked here, independently:
              PasswordText, or PasswordDigest = Base64(SHA-1(nonce + created + password))),
              the client certificate nginx saw, the SOAPAction / Content-Type.

Usage: soap_service.py --port-file FILE   (the port is written to FILE once listening)
"""

import argparse
import base64
import hashlib
import os
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from spyne import (Application, Array, Boolean, ComplexModel, Decimal, Fault, Integer,
                   ServiceBase, Unicode, rpc)
from spyne.protocol.soap import Soap11, Soap12
from spyne.server.wsgi import WsgiApplication

TNS = "urn:wsstep:interop"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST_TYPE = ("http://docs.oasis-open.org/wss/2004/01/"
               "oasis-200401-wss-username-token-profile-1.0#PasswordDigest")
# The password the service knows for every user (UTF-8 bytes are hashed).
PASSWORD = "interop secret \u00fc"


class Item(ComplexModel):
    __namespace__ = TNS
    name = Unicode
    quantity = Integer
    price = Decimal


class Order(ComplexModel):
    __namespace__ = TNS
    customer = Unicode
    items = Array(Item)


class Total(ComplexModel):
    __namespace__ = TNS
    customer = Unicode
    count = Integer
    total = Decimal
    names = Array(Unicode)


class Caller(ComplexModel):
    __namespace__ = TNS
    username = Unicode
    password_type = Unicode
    password_ok = Boolean
    has_timestamp = Boolean
    client_subject = Unicode
    soap_action = Unicode
    content_type = Unicode


def username_token(envelope):
    """(username, type, ok, has_timestamp) from the envelope's wsse:Security header."""
    security = envelope.find(".//{%s}Security" % WSSE)
    if security is None:
        return None, None, False, False
    has_timestamp = security.find("{%s}Timestamp" % WSU) is not None
    token = security.find("{%s}UsernameToken" % WSSE)
    if token is None:
        return None, None, False, has_timestamp
    username = token.findtext("{%s}Username" % WSSE)
    password = token.find("{%s}Password" % WSSE)
    kind = password.get("Type", "")
    if kind == DIGEST_TYPE:
        nonce = base64.b64decode(token.findtext("{%s}Nonce" % WSSE))
        created = token.findtext("{%s}Created" % WSU)
        expected = base64.b64encode(
            hashlib.sha1(nonce + created.encode() + PASSWORD.encode()).digest()).decode()
        return username, "PasswordDigest", password.text == expected, has_timestamp
    return username, "PasswordText", password.text == PASSWORD, has_timestamp


class InteropService(ServiceBase):
    @rpc(Order, _returns=Total)
    def Compute(ctx, order):
        items = order.items or []
        return Total(customer=order.customer,
                     count=sum(i.quantity for i in items),
                     total=sum(i.quantity * i.price for i in items),
                     names=[i.name for i in items])

    @rpc(Unicode, _returns=Unicode)
    def Echo(ctx, text):
        return text

    @rpc(Unicode)
    def Fail(ctx, reason):
        raise Fault(faultcode="Client.Validation", faultstring=reason, detail={"code": "4711"})

    @rpc(_returns=Caller)
    def WhoAmI(ctx):
        env = ctx.transport.req_env
        username, kind, ok, has_timestamp = username_token(ctx.in_document)
        return Caller(username=username, password_type=kind, password_ok=ok,
                      has_timestamp=has_timestamp,
                      client_subject=env.get("HTTP_X_SSL_CLIENT_S_DN", ""),
                      soap_action=env.get("HTTP_SOAPACTION", ""),
                      content_type=env.get("CONTENT_TYPE", ""))


def make_app(protocol):
    app = Application([InteropService], tns=TNS, in_protocol=protocol(validator="lxml"),
                      out_protocol=protocol())
    return WsgiApplication(app)


class QuietHandler(WSGIRequestHandler):
    def log_message(self, fmt, *args):  # one line per request on stderr, no DNS lookups
        sys.stderr.write("%s\n" % (fmt % args))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    routes = {"/soap11": make_app(Soap11), "/soap12": make_app(Soap12)}

    def dispatch(environ, start_response):
        app = routes.get(environ.get("PATH_INFO", ""))
        if app is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such service\n"]
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, dispatch, handler_class=QuietHandler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_port))
    os.replace(tmp, args.port_file)  # the test never reads a half-written file
    server.serve_forever()


if __name__ == "__main__":
    main()
