#!/usr/bin/env bash
# make_corpus.sh OUTDIR [PKI_DIR]: the seed corpus of every fuzz target, one directory per
# target (OUTDIR/<target>/), built from
# - the generated test PKI (PKI_DIR, else $WSSTEP_TEST_PKI, else generated into
#   OUTDIR/.pki by tests/pki/make_pki.sh): certificates, keys, PKCS#12, JKS/JCEKS and the
#   provisioning profile, and a few more containers made from them here with openssl
#   (a PKCS#12 without encryption or MAC, one with a single iteration, property lists);
#   every seed that decrypts something (PKCS#12, encrypted PKCS#8, JCEKS) is the PKI file
#   written again with few key-derivation iterations (see KDF_ITER below);
# - the hand-written seeds committed in tests/fuzz/seeds/<target>/ (text only: SOAP
#   envelopes and faults, step configs).
# Key material is never committed: everything with a key is made at test time.
# Replaces OUTDIR/<target> directories atomically; quiet on success.
set -euo pipefail
export LC_ALL=C  # ${#password} counts bytes

if [[ $# -lt 1 || $# -gt 2 || -z $1 ]]; then
  echo "usage: $0 OUTDIR [PKI_DIR]" >&2
  exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
PKI=${2:-${WSSTEP_TEST_PKI:-}}
if [[ -z $PKI ]]; then
  PKI=$OUT/.pki
  bash "$SRC/tests/pki/make_pki.sh" "$PKI"
fi
[[ -f $PKI/README.txt ]] || { echo "make_corpus.sh: $PKI is not a test PKI (no README.txt)" >&2; exit 1; }
# shellcheck source=../pki/passwords.sh
source "$SRC/tests/pki/passwords.sh"

exec 9>"$OUT/.lock"
flock 9
WORK=$(mktemp -d "$OUT/.tmp.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
TARGETS=(key_pair pkcs12 java_keystore trust_store mobileprovision detect soap_response soap_step
         rest_step wsdl)
for t in "${TARGETS[@]}"; do mkdir -p "$WORK/$t"; done

# --- few key-derivation iterations -------------------------------------------------------
# The fuzz targets refuse more than 64 KDF iterations (kMaxKdfIterations under
# FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, core/private_key.h). A seed with a tool's
# default (2048 for openssl, 10,000 for keytool's PKCS#12, 200,000 for JCEKS) would be
# refused there and the fuzzer would never get behind its MAC or encryption. So each such
# PKI file is written again into $FEW with KDF_ITER iterations, with the algorithms and
# contents of the original (openssl: the commands of make_pki.sh plus -iter; Java:
# FewIterationStores.java), and the seeds take it instead of the original. The
# fuzz_seeds_within_cap_* tests (tests/fuzz/CMakeLists.txt) fail if a seed is refused.
KDF_ITER=16
FEW=$WORK/.few-iterations  # same layout as the PKI
mkdir -p "$FEW"/{client,p12,jks}

# The Java stores, in the background: javac and the JVM are slow to start.
java_stores() {
  export LANG=C.UTF-8 LC_ALL=C.UTF-8  # the JVM decodes the (non-ASCII) passwords by the locale
  javac -d "$WORK/.java" "$HERE/FewIterationStores.java"
  local few=(java -Dfile.encoding=UTF-8 -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
    -XX:-UsePerfData -cp "$WORK/.java" -Dkeystore.pkcs12.certPbeIterationCount="$KDF_ITER"
    -Dkeystore.pkcs12.keyPbeIterationCount="$KDF_ITER"
    -Dkeystore.pkcs12.macIterationCount="$KDF_ITER" FewIterationStores)
  local p12
  for p12 in java-modern java-truststore; do
    "${few[@]}" pkcs12 "$PKI/p12/$p12.p12" "$FEW/p12/$p12.p12" "$JAVA_P12_PASSWORD"
  done
  "${few[@]}" jceks "$PKI/jks/client.jceks" "$FEW/jks/client.jceks" "$STORE_PASSWORD" \
    "$JKS_KEY_PASSWORD" "$KDF_ITER"
}
( java_stores ) >"$WORK/java.log" 2>&1 &
JAVA_PID=$!

K=$PKI/client/rsa.key.pem
pkcs8() { openssl pkcs8 -topk8 -in "$K" -iter "$KDF_ITER" -passout "pass:$KEY_PASSWORD" "$@"; }
pkcs8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -out "$FEW/client/rsa.key.pkcs8-aes.pem"
pkcs8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -outform DER -out "$FEW/client/rsa.key.pkcs8-aes.der"
pkcs8 -v2 des-ede3-cbc -out "$FEW/client/rsa.key.pkcs8-3des.pem"
pkcs8 -v1 PBE-SHA1-3DES -out "$FEW/client/rsa.key.pkcs8-pbes1.pem"
cat "$PKI/client/rsa.pem" "$PKI/ca/intermediate.pem" "$FEW/client/rsa.key.pkcs8-aes.pem" \
  >"$FEW/client/rsa.combined-enc.pem"
# p12 NAME ARGS...: p12/NAME.p12 as make_pki.sh exports it (ARGS), with KDF_ITER for the
# encryption and the MAC.
p12() {
  local name=$1
  shift
  openssl pkcs12 -export -iter "$KDF_ITER" "$@" -out "$FEW/p12/$name.p12"
}
RSA=(-inkey "$K" -in "$PKI/client/rsa.pem" -certfile "$PKI/ca/intermediate.pem" -name rsa-client)
p12 rsa-modern "${RSA[@]}" -passout "pass:$P12_PASSWORD"
p12 rsa-legacy -legacy "${RSA[@]}" -passout "pass:$P12_PASSWORD"
p12 rsa-empty-password "${RSA[@]}" -passout pass:
p12 ec256 -inkey "$PKI/client/ec256.key.pem" -in "$PKI/client/ec256.pem" \
  -certfile "$PKI/ca/intermediate.pem" -name ec256-client -passout "pass:$P12_PASSWORD"
p12 cert-only -nokeys -in "$PKI/client/rsa.chain.pem" -passout "pass:$P12_PASSWORD"

if ! wait "$JAVA_PID"; then
  echo "make_corpus.sh: FewIterationStores.java failed:" >&2
  cat "$WORK/java.log" >&2
  exit 1
fi

# pki REL: the path of PKI file REL, or of its few-iteration copy if there is one.
pki() {
  if [[ -f $FEW/$1 ]]; then echo "$FEW/$1"; else echo "$PKI/$1"; fi
}

# cp_pki TARGET REL...: PKI files into a target's corpus, named after their path.
cp_pki() {
  local t=$1 rel
  shift
  for rel in "$@"; do cp "$(pki "$rel")" "$WORK/$t/${rel//\//_}"; done
}

# --- key_pair: [flags][password length][password][content](separator [key]) -----------
SEP=$'\n--wsstep-fuzz-key--\n'  # tests/fuzz/fuzz_util.h kKeySeparator
# kp NAME FLAGS PASSWORD CONTENT [KEY]; FLAGS bit0 password given, bit1 as key_password,
# bits 2-4 declared format (0 auto, 1 PEM, 2 DER, 3 PKCS12, ...).
kp() {
  local name=$1 flags=$2 pw=$3 content=$4 key=${5:-}
  {
    printf "\\x$(printf %02x "$flags")\\x$(printf %02x "${#pw}")"
    printf '%s' "$pw"
    cat "$(pki "$content")"
    if [[ -n $key ]]; then
      printf '%s' "$SEP"
      cat "$(pki "$key")"
    fi
  } >"$WORK/key_pair/$name"
}
kp rsa-separate 0 "" client/rsa.pem client/rsa.key.pem
kp rsa-chain-separate 0 "" client/rsa.chain.pem client/rsa.key.pem
kp rsa-combined 0 "" client/rsa.combined.pem
kp rsa-combined-enc 1 "$KEY_PASSWORD" client/rsa.combined-enc.pem
kp rsa-combined-enc-as-key-password 3 "$KEY_PASSWORD" client/rsa.combined-enc.pem
kp rsa-combined-enc-no-password 0 "" client/rsa.combined-enc.pem
kp rsa-combined-enc-wrong-password 1 "not-the-key-password-42" client/rsa.combined-enc.pem
kp rsa-combined-enc-empty-password 1 "" client/rsa.combined-enc.pem
kp rsa-der 0 "" client/rsa.cert.der client/rsa.key.der
kp rsa-der-declared-der 8 "" client/rsa.cert.der client/rsa.key.der
kp rsa-der-declared-pem 4 "" client/rsa.cert.der client/rsa.key.der
kp rsa-trad 0 "" client/rsa.pem client/rsa.key.trad.pem
for enc in pkcs8-3des.pem pkcs8-aes.der pkcs8-aes.pem pkcs8-pbes1.pem trad-enc.pem; do
  kp "rsa-key-$enc" 1 "$KEY_PASSWORD" client/rsa.pem "client/rsa.key.$enc"
done
kp rsa-key-trad-enc-key-password 3 "$KEY_PASSWORD" client/rsa.pem client/rsa.key.trad-enc.pem
kp rsa-key-pkcs8-aes-no-password 0 "" client/rsa.pem client/rsa.key.pkcs8-aes.pem
for k in ec256 ec384 ec521 ed25519 expired notyet rsa1024 secp256k1 self-signed; do
  kp "$k" 0 "" "client/$k.pem" "client/$k.key.pem"
done
kp second-chain 0 "" client/second.chain.pem client/second.key.pem
kp mismatch 0 "" client/rsa.pem client/ec256.key.pem
kp two-keys 0 "" client/rsa.combined.pem client/second.key.pem
kp server-chain 0 "" server/localhost.chain.pem server/localhost.key.pem
kp intermediate-ca 0 "" ca/intermediate.pem ca/intermediate.key.pem
kp not-a-cert 0 "" garbage/not-a-cert.pem client/rsa.key.pem
kp random 0 "" garbage/random.bin
kp key-as-content 0 "" client/rsa.key.pem
kp p12-as-content 1 "$P12_PASSWORD" p12/rsa-modern.p12

# --- pkcs12 ------------------------------------------------------------------------------
cp_pki pkcs12 p12/cert-only.p12 p12/ec256.p12 p12/java-modern.p12 p12/java-truststore.p12 \
  p12/rsa-empty-password.p12 p12/rsa-legacy.p12 p12/rsa-modern.p12 garbage/truncated.p12
# Nothing encrypted and no MAC: every mutation reaches the bag reader.
openssl pkcs12 -export -in "$PKI/client/rsa.pem" -inkey "$PKI/client/rsa.key.pem" \
  -certfile "$PKI/ca/intermediate.pem" -name plain -keypbe NONE -certpbe NONE -nomac \
  -passout pass: -out "$WORK/pkcs12/plain-nomac.p12"
openssl pkcs12 -export -in "$PKI/client/ec256.pem" -inkey "$PKI/client/ec256.key.pem" \
  -name one-iteration -iter 1 -passout "pass:$P12_PASSWORD" -out "$WORK/pkcs12/one-iteration.p12"
openssl pkcs12 -export -nokeys -in "$PKI/trust/bundle.pem" -keypbe NONE -certpbe NONE -nomac \
  -passout pass: -out "$WORK/pkcs12/certs-plain-nomac.p12"

# --- java_keystore -------------------------------------------------------------------------
cp_pki java_keystore jks/client.jks jks/client.jceks jks/truststore.jks

# --- trust_store -----------------------------------------------------------------------
cp_pki trust_store trust/bundle.pem trust/other-bundle.pem trust/root.der ca/root.pem \
  ca/root.der ca/intermediate.pem client/rsa.chain.pem jks/truststore.jks \
  p12/java-truststore.p12 p12/cert-only.p12 garbage/not-a-cert.pem client/rsa.combined.pem
cp "$WORK/pkcs12/certs-plain-nomac.p12" "$WORK/trust_store/"

# --- mobileprovision: profiles, and bare property lists the target wraps itself ------------
cp_pki mobileprovision mobile/profile.mobileprovision
openssl cms -verify -noverify -binary -inform DER -in "$PKI/mobile/profile.mobileprovision" \
  -out "$WORK/mobileprovision/profile.plist" 2>/dev/null
CERT_B64=$(openssl x509 -in "$PKI/client/rsa.pem" -outform DER | base64 -w 76)
CERT2_B64=$(openssl x509 -in "$PKI/client/ec256.pem" -outform DER | base64 -w 0)
# plist NAME BODY: a property list with the standard header around BODY.
plist() {
  {
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">'
    echo '<plist version="1.0"><dict>'
    printf '%s\n' "$2"
    echo '</dict></plist>'
  } >"$WORK/mobileprovision/$1.plist"
}
plist full "<key>AppIDName</key><string>Fuzz App</string>
<key>CreationDate</key><date>2025-01-02T03:04:05Z</date>
<key>DeveloperCertificates</key><array><data>
$CERT_B64
</data><data>$CERT2_B64</data></array>
<key>Entitlements</key><dict><key>application-identifier</key><string>TEAM.com.example.app</string><key>get-task-allow</key><true/></dict>
<key>ExpirationDate</key><date>2030-01-02T03:04:05Z</date>
<key>Name</key><string>Fuzz Profile</string>
<key>TeamIdentifier</key><array><string>TEAM123</string></array>
<key>TeamName</key><string>Fuzz Team</string>
<key>UUID</key><string>01234567-89ab-cdef-0123-456789abcdef</string>"
plist no-expiry "<key>DeveloperCertificates</key><array><data>$CERT2_B64</data></array>"
plist bad-date "<key>ExpirationDate</key><date>2030-13-45T99:99:99Z</date>
<key>DeveloperCertificates</key><array><data>$CERT2_B64</data></array>"
plist bad-cert "<key>ExpirationDate</key><date>2030-01-01T00:00:00Z</date>
<key>DeveloperCertificates</key><array><data>bm90IGEgY2VydA==</data></array>"
plist no-certs "<key>ExpirationDate</key><date>2030-01-01T00:00:00Z</date>
<key>DeveloperCertificates</key><array/>"
printf 'bplist00\xd1\x01\x02' >"$WORK/mobileprovision/binary.plist"
printf '<?xml version="1.0"?><!DOCTYPE plist [<!ENTITY x "y">]><plist><dict/></plist>' \
  >"$WORK/mobileprovision/entity.plist"

# --- detect: every kind of content, plus PEM oddities ------------------------------------
cp_pki detect ca/root.pem ca/root.der client/rsa.combined-enc.pem client/rsa.key.der \
  client/rsa.key.pkcs8-aes.der client/rsa.key.trad-enc.pem client/rsa.key.trad.pem \
  client/ec256.key.pem client/rsa.cert.der p12/rsa-modern.p12 p12/rsa-legacy.p12 \
  jks/client.jks jks/client.jceks mobile/profile.mobileprovision garbage/not-a-cert.pem \
  garbage/truncated.p12
openssl req -new -key "$PKI/client/ec256.key.pem" -subj /CN=csr -out "$WORK/detect/csr.pem"
openssl ecparam -name prime256v1 -out "$WORK/detect/ecparams.pem"
openssl crl2pkcs7 -nocrl -certfile "$PKI/trust/bundle.pem" -outform DER -out "$WORK/detect/bundle.p7b"
# Labels assembled at run time: the repository holds no PEM armour of key material.
B='-----BEGIN' E='-----END' D='-----'
printf '%s %s%s\nMIIB\n%s %s%s\n' "$B" "CERTIFICATE" "$D" "$E" "CERTIFICATE" "$D" \
  >"$WORK/detect/short-cert.pem"
printf '%s %s%s\nAAAA\n' "$B" "PRIVATE KEY" "$D" >"$WORK/detect/unterminated.pem"
printf '%s %s%s\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n%s %s%s\n' \
  "$B" "EC PRIVATE KEY" "$D" "$E" "EC PRIVATE KEY" "$D" >"$WORK/detect/trad-headers.pem"
printf '%s %s%s\nAAAA\n%s %s%s\n' "$B" "TRUSTED CERTIFICATE" "$D" "$E" "X509 CERTIFICATE" "$D" \
  >"$WORK/detect/mismatched-labels.pem"
printf '\x30\x82\xff\xff\x30\x82' >"$WORK/detect/truncated-der"
printf '\xfe\xed\xfe\xed' >"$WORK/detect/jks-magic"
printf '\xce\xce\xce\xce\x00\x00\x00\x02' >"$WORK/detect/jceks-magic"

# --- soap_response: committed envelopes, plus one nested past the depth limit -----------
cp "$HERE"/seeds/soap_response/* "$WORK/soap_response/"
{
  printf '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
  for _ in $(seq 300); do printf '<a>'; done
  for _ in $(seq 300); do printf '</a>'; done
  printf '</s:Body></s:Envelope>'
} >"$WORK/soap_response/deep.xml"

# --- wsdl: the hand-made WSDLs and schemas of the WSDL tests -----------------------------
for f in "$SRC"/soap/testdata/wsdl/*/*.wsdl "$SRC"/soap/testdata/wsdl/*/*.xsd; do
  cp "$f" "$WORK/wsdl/$(basename "$(dirname "$f")")-$(basename "$f")"
done

# --- step configs ----------------------------------------------------------------------
cp "$HERE"/seeds/soap_step/* "$WORK/soap_step/"
cp "$HERE"/seeds/rest_step/* "$WORK/rest_step/"

for t in "${TARGETS[@]}"; do
  rm -rf "$OUT/$t"
  mv "$WORK/$t" "$OUT/$t"
done
