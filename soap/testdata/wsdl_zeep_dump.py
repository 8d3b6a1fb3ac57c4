#!/usr/bin/python3
"""Reads a WSDL with zeep (Debian's python3-zeep) and prints what wsstep's reader is
compared with, as JSON on stdout:

  {"services": [{"name", "ports": [{"name", "address", "binding", "version",
     "operations": [{"name", "action", "style", "input": [names], "output": [names]}]}]}]}

"input"/"output" are the names of the parameters inside the body element: for a
document/literal wrapped operation the wrapper's child elements, for rpc/literal the parts.

Usage: wsdl_zeep_dump.py WSDL [--cert PEM --key PEM --ca PEM]   (a path or an https URL)
"""

import argparse
import json
import logging
import sys
import warnings

import requests
from zeep import Client, Settings
from zeep.transports import Transport
from zeep.wsdl.bindings.soap import Soap12Binding, SoapBinding


def names(body):
    """The parameter names under a zeep message body."""
    if body is None:
        return []
    signature = getattr(body, "type", None)
    elements = getattr(signature, "elements", None)
    if elements is not None:
        return [name for name, _ in elements]
    return []


def message_params(message):
    if message is None:
        return []
    body = getattr(message, "body", None)
    if body is None:
        return []
    # document/literal: the body is the wrapper element; rpc: a synthesized element whose
    # children are the parts.
    return names(body)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("wsdl")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--ca")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # stdout carries only the JSON the test parses
    warnings.simplefilter("ignore")
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE / proxies of the environment do not apply
    if args.cert:
        session.cert = (args.cert, args.key)
    if args.ca:
        session.verify = args.ca
    # force_https off: report the address the WSDL gives, as wsstep does (zeep would rewrite
    # an http address of a WSDL fetched over https, and log that on stderr).
    client = Client(args.wsdl, transport=Transport(session=session),
                    settings=Settings(strict=True, forbid_dtd=True, force_https=False))
    out = {"services": []}
    for service in client.wsdl.services.values():
        s = {"name": service.name, "ports": []}
        for port in service.ports.values():
            binding = port.binding
            if not isinstance(binding, SoapBinding):
                continue  # HTTP bindings: wsstep leaves them out too
            version = "1.2" if isinstance(binding, Soap12Binding) else "1.1"
            p = {"name": port.name, "address": port.binding_options.get("address", ""),
                 "binding": binding.name.text if hasattr(binding.name, "text") else str(binding.name),
                 "version": version, "operations": []}
            for op in binding._operations.values():
                p["operations"].append({
                    "name": op.name,
                    "action": op.soapaction or "",
                    "style": op.style,
                    "input": message_params(op.input),
                    "output": message_params(op.output),
                })
            p["operations"].sort(key=lambda o: o["name"])
            s["ports"].append(p)
        out["services"].append(s)
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
