#!/usr/bin/python3
"""An independent WS-Security signature checker for wsstep's signed SOAP messages.

Serves plain HTTP on 127.0.0.1 (an ephemeral port) behind an mTLS nginx in the tests,
which passes the TLS client certificate in X-SSL-Client-Cert. Any path, SOAP 1.1 or 1.2.
For each request it:
  - finds the wsse:Security header and its ds:Signature;
  - takes the certificate from the TLS session and checks that the message names that
    same certificate: the wsse:BinarySecurityToken the KeyInfo references (direct
    reference), or the ds:X509IssuerSerial (issuer-serial);
  - verifies the signature with zeep's WS-Security (zeep.wsse.signature.verify_envelope,
    python3-xmlsec underneath) using that certificate;
and answers <v:Verified> listing what the references cover, or a SOAP Fault
(wsse:FailedCheck, HTTP 500) saying why it does not verify.

Usage: signature_service.py --port-file FILE   (the port is written to FILE once listening)
"""

import argparse
import base64
import os
import sys
import tempfile
import urllib.parse
from wsgiref.simple_server import WSGIRequestHandler, make_server

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from zeep.wsse.signature import verify_envelope

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS = "http://www.w3.org/2000/09/xmldsig#"
TNS = "urn:wsstep:signature"


class Rejected(Exception):
    pass


def check(envelope_bytes, cert_pem):
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    root = etree.fromstring(envelope_bytes, parser)
    soap_ns = etree.QName(root).namespace
    header = root.find("{%s}Header" % soap_ns)
    security = header.find("{%s}Security" % WSSE) if header is not None else None
    if security is None:
        raise Rejected("no wsse:Security header")
    signature = security.find("{%s}Signature" % DS)
    if signature is None:
        raise Rejected("no ds:Signature in the Security header")
    if not cert_pem:
        raise Rejected("no TLS client certificate")
    tls_cert = x509.load_pem_x509_certificate(cert_pem.encode())

    str_node = signature.find("{%s}KeyInfo/{%s}SecurityTokenReference" % (DS, WSSE))
    if str_node is None:
        raise Rejected("KeyInfo holds no wsse:SecurityTokenReference")
    reference = str_node.find("{%s}Reference" % WSSE)
    if reference is not None:
        token_id = reference.get("URI", "")[1:]
        tokens = security.xpath("wsse:BinarySecurityToken[@wsu:Id=$id]",
                                namespaces={"wsse": WSSE, "wsu": WSU}, id=token_id)
        if not tokens:
            raise Rejected("the token reference #%s names no BinarySecurityToken" % token_id)
        token_der = base64.b64decode(tokens[0].text)
        if token_der != tls_cert.public_bytes(Encoding.DER):
            raise Rejected("the BinarySecurityToken is not the TLS client certificate")
        token = "direct"
    else:
        serial = str_node.findtext("{%s}X509Data/{%s}X509IssuerSerial/{%s}X509SerialNumber"
                                   % (DS, DS, DS))
        issuer = str_node.findtext("{%s}X509Data/{%s}X509IssuerSerial/{%s}X509IssuerName"
                                   % (DS, DS, DS))
        if serial is None or int(serial) != tls_cert.serial_number:
            raise Rejected("X509IssuerSerial does not name the TLS client certificate")
        if issuer != tls_cert.issuer.rfc4514_string():
            raise Rejected("X509IssuerName %r is not the TLS certificate's issuer %r"
                           % (issuer, tls_cert.issuer.rfc4514_string()))
        token = "issuer-serial"

    with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:
        f.write(cert_pem)
        f.flush()
        try:
            verify_envelope(root, f.name)
        except Exception as e:  # zeep raises SignatureVerificationFailed
            raise Rejected("the signature does not verify (%s)" % type(e).__name__)

    signed = []
    for ref in signature.iterfind("{%s}SignedInfo/{%s}Reference" % (DS, DS)):
        target = root.xpath("//*[@wsu:Id=$id]", namespaces={"wsu": WSU},
                            id=ref.get("URI", "")[1:])
        signed.append(etree.QName(target[0]).localname if target else "?")
    method = signature.find("{%s}SignedInfo/{%s}SignatureMethod" % (DS, DS)).get("Algorithm")
    digests = {d.get("Algorithm") for d in signature.iter("{%s}DigestMethod" % DS)}
    return soap_ns, {
        "signer": tls_cert.subject.rfc4514_string(),
        "token": token,
        "signed": " ".join(signed),
        "signature_method": method,
        "digest_method": " ".join(sorted(digests)),
    }


def envelope(soap_ns, body):
    return ('<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="%s"><s:Body>%s'
            '</s:Body></s:Envelope>' % (soap_ns, body)).encode()


def escape(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def fault(soap_ns, reason):
    if soap_ns == SOAP12:
        body = ('<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode>'
                '<s:Value xmlns:wsse="%s">wsse:FailedCheck</s:Value></s:Subcode></s:Code>'
                '<s:Reason><s:Text xml:lang="en">%s</s:Text></s:Reason></s:Fault>'
                % (WSSE, escape(reason)))
    else:
        body = ('<s:Fault><faultcode xmlns:wsse="%s">wsse:FailedCheck</faultcode>'
                '<faultstring>%s</faultstring></s:Fault>' % (WSSE, escape(reason)))
    return envelope(soap_ns, body)


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data = environ["wsgi.input"].read(length)
    cert = urllib.parse.unquote(environ.get("HTTP_X_SSL_CLIENT_CERT", ""))
    content_type = environ.get("CONTENT_TYPE", "")
    soap_ns = SOAP12 if content_type.startswith("application/soap+xml") else SOAP11
    try:
        soap_ns, facts = check(data, cert)
        body = "<v:Verified xmlns:v=\"%s\">%s</v:Verified>" % (TNS, "".join(
            "<v:%s>%s</v:%s>" % (k, escape(v), k) for k, v in facts.items()))
        status = "200 OK"
        out = envelope(soap_ns, body)
    except Rejected as e:
        status = "500 Internal Server Error"
        out = fault(soap_ns, str(e))
    except Exception as e:  # not XML, not SOAP: still a fault the client can read
        status = "500 Internal Server Error"
        out = fault(soap_ns, "unreadable request: %s" % type(e).__name__)
    ctype = "application/soap+xml; charset=utf-8" if soap_ns == SOAP12 else \
        "text/xml; charset=utf-8"
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(out)))])
    return [out]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_port))
    os.replace(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
