#!/usr/bin/python3
"""A minimal workflow host for the wsstep plugin, in Python.

It does what any host does (docs/host-integration.md):
  1. compiles the plugin's .proto files (here at run time, into a temporary directory);
  2. creates a throw-away client certificate for AutoMTLS;
  3. launches the plugin with the go-plugin handshake environment;
  4. reads exactly one line from the plugin's stdout and parses it;
  5. connects over gRPC (mutual TLS pinned to the certificate from the handshake line);
  6. checks health, asks for the plugin's description, optionally runs a REST step (as
     one ExecuteRestStep call, then three times as calls on one ExecuteSteps stream);
  7. stops the plugin by closing its stdin and waits for exit code 0.

Debian packages: python3-grpcio, python3-grpc-tools, python3-protobuf,
python3-cryptography.

    /usr/bin/python3 host.py --plugin build/plugin/wsstep --proto-dir proto
    /usr/bin/python3 host.py --plugin ./wsstep --step-url https://api.example/ping --json
"""

import argparse
import base64
import datetime
import importlib
import json
import os
import select
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc

# The handshake contract (must match plugin/process/handshake.h).
MAGIC_COOKIE_KEY = "WSSTEP_PLUGIN"
MAGIC_COOKIE_VALUE = "e1f4b2c7-wsstep-step-plugin-v1"
CORE_PROTOCOL_VERSION = 1
APP_PROTOCOL_VERSION = 1


def log(msg):
    print(f"host: {msg}", file=sys.stderr, flush=True)


def compile_protos(proto_dir, out_dir):
    """Generates Python modules for the wsstep API into out_dir and imports them.

    Two files are compiled from a renamed copy, because their natural Python package would
    shadow a real one: grpc.health.v1 goes under grpc_health/ (the `grpc` module), and
    google.rpc under wsstep_google_rpc/ (the `google` namespace of protobuf) unless
    googleapis-common-protos provides it already. Wire names do not change.
    """
    src = os.path.join(out_dir, "src")
    shutil.copytree(proto_dir, src, ignore=shutil.ignore_patterns("CMakeLists.txt", "cmake"))
    os.makedirs(os.path.join(src, "grpc_health", "v1"), exist_ok=True)
    shutil.move(os.path.join(src, "grpc", "health", "v1", "health.proto"),
                os.path.join(src, "grpc_health", "v1", "health.proto"))
    try:
        importlib.import_module("google.rpc.status_pb2")
        have_google_rpc = True
    except ImportError:
        have_google_rpc = False
    if have_google_rpc:
        shutil.rmtree(os.path.join(src, "google"))
    else:
        shutil.move(os.path.join(src, "google", "rpc"), os.path.join(src, "wsstep_google_rpc"))
    files = []
    for root, _, names in os.walk(src):
        files += [os.path.relpath(os.path.join(root, n), src) for n in names if n.endswith(".proto")]
    wkt = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["protoc", f"-I{src}", f"-I{wkt}", f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}"] + sorted(files)
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on " + proto_dir)
    for pkg in ("wsstep", "wsstep/v1", "wsstep_google_rpc", "grpc_health", "grpc_health/v1",
                "goplugin"):
        path = os.path.join(out_dir, pkg, "__init__.py")
        if os.path.isdir(os.path.dirname(path)):
            open(path, "a").close()
    sys.path.insert(0, out_dir)
    mods = {}
    rpc = "google.rpc" if have_google_rpc else "wsstep_google_rpc"
    for name in ("wsstep.v1.step_plugin_service_pb2", "wsstep.v1.step_plugin_service_pb2_grpc",
                 "grpc_health.v1.health_pb2", "grpc_health.v1.health_pb2_grpc",
                 rpc + ".status_pb2", rpc + ".error_details_pb2"):
        mods[name.rsplit(".", 1)[1]] = importlib.import_module(name)
    return mods


def make_client_certificate():
    """A throw-away self-signed ECDSA P-256 certificate, as go-plugin's AutoMTLS makes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "example host"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(seconds=30))
            .not_valid_after(now + datetime.timedelta(hours=24))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                         key_cert_sign=True, content_commitment=False,
                                         data_encipherment=False, key_agreement=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                                  ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert_pem, key_pem


def read_handshake_line(proc, timeout):
    """Reads exactly one line from the plugin's stdout, or fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    fd = proc.stdout.fileno()
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError("timed out waiting for the handshake line")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"plugin exited before the handshake (code {proc.wait()})")
        data += chunk
    return data.split(b"\n", 1)[0].decode()


def parse_handshake_line(line):
    parts = line.strip().split("|")
    if len(parts) < 5:
        raise RuntimeError(f"not a handshake line: {line!r}")
    core, app, network, address, protocol = parts[:5]
    if int(core) != CORE_PROTOCOL_VERSION or int(app) != APP_PROTOCOL_VERSION:
        raise RuntimeError(f"incompatible plugin protocol {core}|{app}")
    if protocol != "grpc":
        raise RuntimeError(f"plugin offers {protocol}, not grpc")
    server_cert_pem = None
    if len(parts) >= 6 and parts[5]:
        der = base64.b64decode(parts[5] + "=" * (-len(parts[5]) % 4))  # RawStdEncoding
        server_cert_pem = ssl.DER_cert_to_PEM_cert(der).encode()
    return {"network": network, "address": address, "protocol": protocol,
            "server_cert_pem": server_cert_pem}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plugin", required=True, help="path of the wsstep binary")
    ap.add_argument("--proto-dir", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                        "..", "proto"))
    ap.add_argument("--tcp", action="store_true", help="ask for 127.0.0.1 instead of a socket")
    ap.add_argument("--no-automtls", action="store_true", help="plaintext unix socket")
    ap.add_argument("--step-url", help="also execute a REST step against this URL")
    ap.add_argument("--environment", default="", help="environment for the step")
    ap.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    args = ap.parse_args()

    report = {}
    work = tempfile.mkdtemp(prefix="wsstep-python-host-")
    proc = None
    try:
        m = compile_protos(os.path.abspath(args.proto_dir), os.path.join(work, "gen"))

        env = dict(os.environ)
        env[MAGIC_COOKIE_KEY] = MAGIC_COOKIE_VALUE
        env["PLUGIN_PROTOCOL_VERSIONS"] = str(APP_PROTOCOL_VERSION)
        env.setdefault("WSSTEP_DATA_DIR", os.path.join(work, "data"))
        if args.tcp:
            env["WSSTEP_PLUGIN_NETWORK"] = "tcp"
        cert_pem = key_pem = None
        if not args.no_automtls:
            cert_pem, key_pem = make_client_certificate()
            env["PLUGIN_CLIENT_CERT"] = cert_pem.decode()

        # stdin is a pipe we own, so we ask the plugin to stop when it is closed
        # (WSSTEP_PLUGIN_WATCH_STDIN). stderr carries the plugin's JSON log lines; a real
        # host would forward them to its own log.
        env["WSSTEP_PLUGIN_WATCH_STDIN"] = "true"
        proc = subprocess.Popen([args.plugin], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=sys.stderr)
        line = read_handshake_line(proc, timeout=30)
        hs = parse_handshake_line(line)
        report["handshake"] = {"network": hs["network"], "address": hs["address"],
                               "automtls": hs["server_cert_pem"] is not None}
        log(f"handshake: {line[:80]}")

        target = ("unix:" + hs["address"]) if hs["network"] == "unix" else hs["address"]
        if hs["server_cert_pem"]:
            creds = grpc.ssl_channel_credentials(root_certificates=hs["server_cert_pem"],
                                                 private_key=key_pem, certificate_chain=cert_pem)
            channel = grpc.secure_channel(
                target, creds, options=[("grpc.ssl_target_name_override", "localhost")])
        else:
            channel = grpc.insecure_channel(target)

        health = m["health_pb2_grpc"].HealthStub(channel)
        report["health"] = {}
        for service in ("", "plugin"):
            resp = health.Check(m["health_pb2"].HealthCheckRequest(service=service), timeout=15)
            report["health"][service] = m["health_pb2"].HealthCheckResponse.ServingStatus.Name(
                resp.status)

        steps = m["step_plugin_service_pb2_grpc"].StepPluginServiceStub(channel)
        info = steps.GetPluginInfo(m["step_plugin_service_pb2"].GetPluginInfoRequest(), timeout=15)
        report["plugin_info"] = {"name": info.name, "version": info.version,
                                 "api_version": info.api_version,
                                 "step_kinds": [k.kind for k in info.step_kinds],
                                 "capabilities": list(info.capabilities)}

        if args.step_url:
            req = m["step_plugin_service_pb2"].ExecuteRestStepRequest(environment=args.environment)
            req.step.method = "GET"
            req.step.url = args.step_url
            req.step.tls.ssl_verification = True
            metadata = [("x-wsstep-step-id", "python-host-1"), ("x-wsstep-workflow-id", "demo")]
            try:
                resp = steps.ExecuteRestStep(req, timeout=60, metadata=metadata)
                outcome = resp.outcome
                kind = outcome.WhichOneof("result")
                if kind == "http":
                    report["step"] = {"http_status": outcome.http.status,
                                      "client_certificate": outcome.tls.client_certificate.name}
                elif kind == "error":
                    # The workflow routes on the catalog code.
                    report["step"] = {"error": outcome.error.code, "message": outcome.error.message,
                                      "hint": outcome.error.hint}
            except grpc.RpcError as e:
                # Contract errors carry google.rpc details in grpc-status-details-bin.
                report["step"] = {"rpc_error": e.code().name, "message": e.details()}
                for key, value in (e.trailing_metadata() or ()):
                    if key == "grpc-status-details-bin":
                        status = m["status_pb2"].Status.FromString(value)
                        for detail in status.details:
                            info_msg = m["error_details_pb2"].ErrorInfo()
                            if detail.Unpack(info_msg):
                                report["step"]["reason"] = info_msg.reason
        if args.step_url and "execute-steps" in info.capabilities:
            # The same step three times on one stream: each StepCall names its result.
            spb = m["step_plugin_service_pb2"]
            calls = []
            for call_id in (1, 2, 3):
                call = spb.StepCall(call_id=call_id, step_id=f"python-host-stream-{call_id}")
                call.rest.CopyFrom(req)
                calls.append(call)
            results = []
            for message in steps.ExecuteSteps(iter([spb.ExecuteStepsRequest(calls=calls)]),
                                              timeout=60, metadata=metadata):
                for r in message.results:
                    entry = {"call_id": r.call_id}
                    if r.code != 0:  # the contract error the unary call would have raised
                        entry["rpc_error"] = next(
                            c.name for c in grpc.StatusCode if c.value[0] == r.code)
                        entry["message"] = r.message
                    elif r.rest.outcome.WhichOneof("result") == "http":
                        entry["http_status"] = r.rest.outcome.http.status
                    else:
                        entry["error"] = r.rest.outcome.error.code
                    results.append(entry)
            report["stream_steps"] = sorted(results, key=lambda e: e["call_id"])
        channel.close()
    finally:
        if proc is not None:
            proc.stdin.close()  # the plugin drains and exits 0
            try:
                report["exit_code"] = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                report["exit_code"] = proc.wait()
            rest = proc.stdout.read()
            report["extra_stdout_bytes"] = len(rest)
        shutil.rmtree(work, ignore_errors=True)

    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    ok = (report.get("exit_code") == 0 and report.get("extra_stdout_bytes") == 0 and
          all(v == "SERVING" for v in report.get("health", {}).values()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
