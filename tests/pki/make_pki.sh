#!/usr/bin/env bash
# make_pki.sh OUTDIR: generates the test PKI every wsstep test reads (certificates, keys
# in every supported encoding, PKCS#12, JKS/JCEKS, a .mobileprovision, garbage inputs).
# OUTDIR/README.txt lists every file. Passwords are in passwords.sh (and pki.h).
#
# Idempotent: when OUTDIR/.complete holds the sha256 of this script and of passwords.sh
# and is younger than a week (dates are relative to generation time: "not yet valid"
# means now+30d), it exits at once. Otherwise it builds everything in a temporary
# directory beside OUTDIR and renames it into place, under a lock, so concurrent callers
# never see a half-written tree. Quiet on success; on failure prints the log.
set -euo pipefail
umask 022

if [[ $# -ne 1 || -z $1 ]]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
mkdir -p "$(dirname "$1")"
OUT="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
STAMP="$(sha256sum "$SELF" | cut -d' ' -f1) make_pki.sh
$(sha256sum "$HERE/passwords.sh" | cut -d' ' -f1) passwords.sh"
MAX_AGE_MIN=$((7 * 24 * 60))

is_current() {
  [[ -f $OUT/.complete ]] &&
    [[ "$(cat "$OUT/.complete")" == "$STAMP" ]] &&
    [[ -n "$(find "$OUT/.complete" -mmin "-$MAX_AGE_MIN")" ]]
}
is_current && exit 0

exec 9>"$OUT.lock"
flock 9
is_current && exit 0  # another caller generated it while we waited

# shellcheck source=passwords.sh
source "$HERE/passwords.sh"
# keytool decodes its command line by the locale: non-ASCII passwords need UTF-8.
export LANG=C.UTF-8 LC_ALL=C.UTF-8
KEYTOOL=(keytool -J-Dfile.encoding=UTF-8 -J-XX:TieredStopAtLevel=1 -J-XX:+UseSerialGC
  -J-XX:-UsePerfData)

WORK=$(mktemp -d "$(dirname "$OUT")/.$(basename "$OUT").tmp.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
G=$WORK/pki
LOG=$WORK/log
mkdir -p "$G"/{ca,trust,server,client,p12,jks,mobile,garbage}
exec 3>&2 >"$LOG" 2>&1
set -E
on_error() {
  echo "make_pki.sh: line $1: \"$2\" failed" >&3
  if [[ $BASHPID == "$$" ]]; then  # once, from the main shell: the end of every log
    local f
    for f in "$LOG" "$WORK"/*.log; do
      [[ -s $f ]] && { echo "--- ${f##*/} (last lines)"; tail -n 15 "$f"; } >&3
    done
  fi
}
trap 'on_error "$LINENO" "$BASH_COMMAND"' ERR

NOW=$(date -u +%s)
# Certificate time (YYYYMMDDHHMMSSZ) $1 days from now.
day() { date -u -d "@$((NOW + $1 * 86400))" +%Y%m%d%H%M%SZ; }
# Apple plist date $1 days from now.
plist_date() { date -u -d "@$((NOW + $1 * 86400))" +%Y-%m-%dT%H:%M:%SZ; }

# README.txt lines, "path: what it is".
note() { printf '%s: %s\n' "$1" "$2" >>"$WORK/readme.lines"; }

cat >"$WORK/req.cnf" <<'EOF'
[ req ]
distinguished_name = dn
string_mask = utf8only
prompt = no
[ dn ]
CN = replaced by -subj
EOF

# Each signer gets its own database (CA_DB) so background jobs can sign concurrently.
cat >"$WORK/ca.cnf" <<'EOF'
[ ca ]
default_ca = ca_default
[ ca_default ]
database = $ENV::CA_DB/index.txt
new_certs_dir = $ENV::CA_DB
rand_serial = yes
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
preserve = yes
[ policy_any ]
countryName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
EOF

cat >"$WORK/ext.cnf" <<'EOF'
[ root_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ intermediate_ext ]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:localhost, IP:127.0.0.1
[ wrong_name_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:wrong.example
[ self_server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
subjectAltName = DNS:localhost, IP:127.0.0.1
[ client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ self_client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
EOF

# new_ca_db DIR: an empty openssl-ca database.
new_ca_db() {
  mkdir -p "$1"
  : >"$1/index.txt"
  echo "unique_subject = no" >"$1/index.txt.attr"
}
export CA_DB=$WORK/db-main
new_ca_db "$CA_DB"

# newkey OUT SPEC: a PKCS#8 PEM private key. SPEC: rsa2048 rsa1024 ec:CURVE ed25519.
newkey() {
  case $2 in
    rsa*) openssl genpkey -quiet -algorithm RSA -pkeyopt "rsa_keygen_bits:${2#rsa}" -out "$1" ;;
    ec:*) openssl genpkey -quiet -algorithm EC -pkeyopt "ec_paramgen_curve:${2#ec:}" \
            -pkeyopt ec_param_enc:named_curve -out "$1" ;;
    ed25519) openssl genpkey -quiet -algorithm ED25519 -out "$1" ;;
  esac
}

# sign_csr CSR OUT EXT FROM_DAYS TO_DAYS ISSUER: ISSUER is a path under the tree without
# .pem ("ca/intermediate"), or "self:KEYFILE" for a self-signed certificate.
sign_csr() {
  local csr=$1 out=$2 ext=$3 from=$4 to=$5 issuer=$6
  local signer
  if [[ $issuer == self:* ]]; then
    signer=(-selfsign -keyfile "${issuer#self:}")
  else
    signer=(-cert "$G/$issuer.pem" -keyfile "$G/$issuer.key.pem")
  fi
  openssl ca -batch -notext -config "$WORK/ca.cnf" "${signer[@]}" -in "$csr" -out "$out" \
    -startdate "$(day "$from")" -enddate "$(day "$to")" \
    -extfile "$WORK/ext.cnf" -extensions "$ext"
}

# issue OUT KEY SUBJ EXT FROM_DAYS TO_DAYS ISSUER: a certificate for KEY (see sign_csr).
issue() {
  local out=$1 key=$2 subj=$3 ext=$4 from=$5 to=$6 issuer=$7
  local csr
  csr=$(mktemp "$WORK/csr.XXXXXX")
  openssl req -new -config "$WORK/req.cnf" -key "$key" -subj "$subj" -out "$csr"
  [[ $issuer == self ]] && issuer="self:$key"
  sign_csr "$csr" "$out" "$ext" "$from" "$to" "$issuer"
}

to_der() { openssl x509 -in "$1" -outform DER -out "$2"; }

# ---------------------------------------------------------------- keys
# Key generation is most of the CPU time: all keys are made up front, in parallel, which
# also keeps the script quick when the machine is busy compiling.
C=$G/client
KEYS=(
  "$G/ca/root.key.pem rsa2048" "$G/ca/intermediate.key.pem rsa2048"
  "$G/ca/other-root.key.pem rsa2048" "$G/server/localhost.key.pem rsa2048"
  "$C/rsa.key.pem rsa2048" "$C/second.key.pem rsa2048" "$C/expired.key.pem rsa2048"
  "$C/notyet.key.pem rsa2048" "$C/self-signed.key.pem rsa2048" "$C/rsa1024.key.pem rsa1024"
  "$C/ec256.key.pem ec:P-256" "$C/ec384.key.pem ec:P-384" "$C/ec521.key.pem ec:P-521"
  "$C/ed25519.key.pem ed25519" "$C/secp256k1.key.pem ec:secp256k1"
)
KEY_PIDS=()
for k in "${KEYS[@]}"; do
  # shellcheck disable=SC2086  # "path spec" splits into the two arguments
  newkey $k &
  KEY_PIDS+=($!)
  if ((${#KEY_PIDS[@]} % 4 == 0)); then wait "${KEY_PIDS[@]: -4}"; fi
done
for pid in "${KEY_PIDS[@]}"; do wait "$pid"; done

# ---------------------------------------------------------------- certificate authorities
O="/O=wsstep tests"
issue "$G/ca/root.pem" "$G/ca/root.key.pem" "$O/CN=wsstep Test Root CA" root_ext -2 3650 self
to_der "$G/ca/root.pem" "$G/ca/root.der"
issue "$G/ca/intermediate.pem" "$G/ca/intermediate.key.pem" "$O/CN=wsstep Test Intermediate CA" \
  intermediate_ext -2 1825 ca/root
issue "$G/ca/other-root.pem" "$G/ca/other-root.key.pem" "$O/CN=wsstep Other Root CA" \
  root_ext -2 3650 self
note ca/root.pem "root CA, CN=wsstep Test Root CA,O=wsstep tests (RSA 2048, self-signed, 10 years)"
note ca/root.key.pem "root CA key (PKCS#8 PEM)"
note ca/root.der "root CA certificate, DER"
note ca/intermediate.pem "intermediate CA, CN=wsstep Test Intermediate CA, signed by root, CA:TRUE pathlen 0; issues every leaf"
note ca/intermediate.key.pem "intermediate CA key (PKCS#8 PEM)"
note ca/other-root.pem "unrelated root CA, CN=wsstep Other Root CA"
note ca/other-root.key.pem "unrelated root CA key"

cat "$G/ca/root.pem" "$G/ca/intermediate.pem" >"$G/trust/bundle.pem"
cp "$G/ca/root.der" "$G/trust/root.der"
cp "$G/ca/other-root.pem" "$G/trust/other-bundle.pem"
note trust/bundle.pem "trust bundle: root + intermediate (PEM)"
note trust/root.der "trust anchor: root, DER"
note trust/other-bundle.pem "trust bundle of the unrelated root only"

# ---------------------------------------------------------------- Java stores (background)
# keytool is slow to start (JVM), so the two keytool pipelines run beside the openssl work.
kt() { "${KEYTOOL[@]}" "$@"; }

java_p12_stores() {
  export CA_DB=$WORK/db-java-p12
  new_ca_db "$CA_DB"
  local ks=$G/p12/java-modern.p12
  # Java derives every PKCS#12 key (PBES2 and MAC) through PBEKey, which refuses
  # non-ASCII passwords: these two files use the ASCII JAVA_P12_PASSWORD. PKCS#12 has one
  # password: the key password must equal the store password.
  kt -genkeypair -storetype PKCS12 -keystore "$ks" -storepass "$JAVA_P12_PASSWORD" \
    -keypass "$JAVA_P12_PASSWORD" -alias client -keyalg RSA -keysize 2048 -validity 365 \
    -dname "CN=java-modern,O=wsstep tests"
  kt -certreq -storetype PKCS12 -keystore "$ks" -storepass "$JAVA_P12_PASSWORD" -alias client \
    -file "$WORK/java-modern.csr"
  sign_csr "$WORK/java-modern.csr" "$WORK/java-modern.pem" client_ext -1 365 ca/intermediate
  cat "$WORK/java-modern.pem" "$G/ca/intermediate.pem" "$G/ca/root.pem" >"$WORK/java-modern.reply"
  # The reply carries the whole chain up to the root, which is not in the store:
  # -noprompt installs it anyway, leaving exactly one entry with a 3-certificate chain.
  kt -importcert -noprompt -storetype PKCS12 -keystore "$ks" -storepass "$JAVA_P12_PASSWORD" \
    -alias client -file "$WORK/java-modern.reply"

  local ts=$G/p12/java-truststore.p12
  kt -importcert -noprompt -storetype PKCS12 -keystore "$ts" -storepass "$JAVA_P12_PASSWORD" \
    -alias root -file "$G/ca/root.pem"
  kt -importcert -noprompt -storetype PKCS12 -keystore "$ts" -storepass "$JAVA_P12_PASSWORD" \
    -alias intermediate -file "$G/ca/intermediate.pem"
  kt -importkeystore -noprompt -srckeystore "$ts" -srcstoretype PKCS12 \
    -srcstorepass "$JAVA_P12_PASSWORD" -destkeystore "$G/jks/truststore.jks" \
    -deststoretype JKS -deststorepass "$STORE_PASSWORD"
}

java_jks_stores() {
  export CA_DB=$WORK/db-java-jks
  new_ca_db "$CA_DB"
  local ks=$G/jks/client.jks
  local sp=(-storetype JKS -keystore "$ks" -storepass "$STORE_PASSWORD")
  kt -genkeypair "${sp[@]}" -keypass "$JKS_KEY_PASSWORD" -alias client -keyalg RSA \
    -keysize 2048 -validity 365 -dname "CN=jks-client,O=wsstep tests"
  kt -certreq "${sp[@]}" -keypass "$JKS_KEY_PASSWORD" -alias client -file "$WORK/jks.csr"
  sign_csr "$WORK/jks.csr" "$WORK/jks.pem" client_ext -1 365 ca/intermediate
  cat "$WORK/jks.pem" "$G/ca/intermediate.pem" >"$WORK/jks.reply"
  kt -importcert -noprompt "${sp[@]}" -alias root -file "$G/ca/root.pem"
  # The root must be trusted in the store for keytool to accept the reply without asking;
  # Java 17 then stores the chain as given (leaf, intermediate).
  kt -importcert -noprompt "${sp[@]}" -keypass "$JKS_KEY_PASSWORD" -alias client \
    -file "$WORK/jks.reply"
  kt -exportcert -rfc "${sp[@]}" -alias client -file "$G/jks/client.chain.pem"
  # The JCEKS store holds the same identity, so client.chain.pem describes both.
  local to_jceks=(-importkeystore -noprompt -srckeystore "$ks" -srcstoretype JKS
    -srcstorepass "$STORE_PASSWORD" -destkeystore "$G/jks/client.jceks" -deststoretype JCEKS
    -deststorepass "$STORE_PASSWORD")
  kt "${to_jceks[@]}" -srcalias client -srckeypass "$JKS_KEY_PASSWORD" \
    -destkeypass "$JKS_KEY_PASSWORD"
  kt "${to_jceks[@]}" -srcalias root
}

( java_p12_stores ) >"$WORK/java-p12.log" 2>&1 &
JAVA_P12_PID=$!
( java_jks_stores ) >"$WORK/java-jks.log" 2>&1 &
JAVA_JKS_PID=$!

# ---------------------------------------------------------------- servers
# One key for every server certificate: which key a server uses never matters to a test.
SKEY=$G/server/localhost.key.pem
issue "$G/server/localhost.pem" "$SKEY" "$O/CN=localhost" server_ext -1 365 ca/intermediate
cat "$G/server/localhost.pem" "$G/ca/intermediate.pem" >"$G/server/localhost.chain.pem"
issue "$G/server/expired.pem" "$SKEY" "$O/CN=localhost" server_ext -400 -30 ca/intermediate
issue "$G/server/wrong-name.pem" "$SKEY" "$O/CN=wrong.example" wrong_name_ext -1 365 \
  ca/intermediate
issue "$G/server/self-signed.pem" "$SKEY" "$O/CN=localhost" self_server_ext -1 365 self
issue "$G/server/other-ca.pem" "$SKEY" "$O/CN=localhost" server_ext -1 365 ca/other-root
for s in expired wrong-name self-signed other-ca; do
  cp "$SKEY" "$G/server/$s.key.pem"
done
note server/localhost.pem "server leaf CN=localhost, SAN DNS:localhost IP:127.0.0.1, serverAuth, signed by intermediate"
note server/localhost.key.pem "server key (RSA 2048, PKCS#8 PEM); every server/*.key.pem is this same key"
note server/localhost.chain.pem "server leaf + intermediate (for ssl_certificate)"
note server/expired.pem "server leaf for localhost, expired (now-400d .. now-30d), signed by intermediate"
note server/expired.key.pem "key of server/expired.pem"
note server/wrong-name.pem "server leaf with SAN DNS:wrong.example only, signed by intermediate"
note server/wrong-name.key.pem "key of server/wrong-name.pem"
note server/self-signed.pem "self-signed server certificate for localhost / 127.0.0.1"
note server/self-signed.key.pem "key of server/self-signed.pem"
note server/other-ca.pem "server leaf for localhost signed by ca/other-root"
note server/other-ca.key.pem "key of server/other-ca.pem"

# ---------------------------------------------------------------- clients
# client NAME [FROM TO [ISSUER [EXT [CN]]]]: client/NAME.pem for client/NAME.key.pem.
client() {
  local name=$1 from=${2:--1} to=${3:-365} issuer=${4:-ca/intermediate}
  local ext=${5:-client_ext} cn=${6:-$1}
  issue "$C/$name.pem" "$C/$name.key.pem" "$O/CN=$cn" "$ext" "$from" "$to" "$issuer"
}
client rsa
client ec256
client ec384
client ec521
client ed25519
client second -1 365 ca/intermediate client_ext "wsstep client B"
client expired -400 -30
client notyet 30 395
client rsa1024
client secp256k1
client self-signed -1 365 self self_client_ext

K=$C/rsa.key.pem
cat "$C/rsa.pem" "$G/ca/intermediate.pem" >"$C/rsa.chain.pem"
cp "$C/rsa.pem" "$C/rsa.leaf-only.pem"
cat "$C/second.pem" "$G/ca/intermediate.pem" >"$C/second.chain.pem"
to_der "$C/rsa.pem" "$C/rsa.cert.der"
openssl pkcs8 -topk8 -nocrypt -in "$K" -outform DER -out "$C/rsa.key.der"
KP="pass:$KEY_PASSWORD"
openssl pkcs8 -topk8 -in "$K" -v2 aes-256-cbc -v2prf hmacWithSHA256 -passout "$KP" \
  -out "$C/rsa.key.pkcs8-aes.pem"
openssl pkcs8 -topk8 -in "$K" -v2 aes-256-cbc -v2prf hmacWithSHA256 -passout "$KP" \
  -outform DER -out "$C/rsa.key.pkcs8-aes.der"
openssl pkcs8 -topk8 -in "$K" -v2 des-ede3-cbc -passout "$KP" -out "$C/rsa.key.pkcs8-3des.pem"
openssl pkcs8 -topk8 -in "$K" -v1 PBE-SHA1-3DES -passout "$KP" -out "$C/rsa.key.pkcs8-pbes1.pem"
openssl rsa -in "$K" -traditional -out "$C/rsa.key.trad.pem"
openssl rsa -in "$K" -traditional -aes128 -passout "$KP" -out "$C/rsa.key.trad-enc.pem"
cat "$C/rsa.pem" "$G/ca/intermediate.pem" "$K" >"$C/rsa.combined.pem"
cat "$C/rsa.pem" "$G/ca/intermediate.pem" "$C/rsa.key.pkcs8-aes.pem" >"$C/rsa.combined-enc.pem"

note client/rsa.pem "client leaf CN=rsa,O=wsstep tests (RSA 2048), clientAuth, signed by intermediate, now-1d .. now+365d"
note client/rsa.key.pem "key of client/rsa.pem, PKCS#8 PEM, unencrypted"
note client/rsa.leaf-only.pem "copy of client/rsa.pem (leaf only, no intermediate)"
note client/rsa.cert.der "client/rsa.pem as DER"
note client/rsa.key.der "client/rsa key, PKCS#8 DER, unencrypted"
note client/rsa.chain.pem "client/rsa leaf + intermediate"
note client/rsa.combined.pem "client/rsa leaf + intermediate + unencrypted PKCS#8 key"
note client/rsa.combined-enc.pem "client/rsa leaf + intermediate + encrypted PKCS#8 key (PBES2 AES-256, KEY_PASSWORD)"
note client/rsa.key.pkcs8-aes.pem "client/rsa key, encrypted PKCS#8 PEM, PBES2 PBKDF2-HMAC-SHA256 + AES-256-CBC, KEY_PASSWORD"
note client/rsa.key.pkcs8-aes.der "client/rsa key, encrypted PKCS#8 DER, PBES2 AES-256-CBC, KEY_PASSWORD"
note client/rsa.key.pkcs8-3des.pem "client/rsa key, encrypted PKCS#8 PEM, PBES2 DES-EDE3-CBC, KEY_PASSWORD"
note client/rsa.key.pkcs8-pbes1.pem "client/rsa key, encrypted PKCS#8 PEM, PBES1-style pbeWithSHAAnd3-KeyTripleDES-CBC, KEY_PASSWORD"
note client/rsa.key.trad.pem "client/rsa key, traditional PEM (BEGIN RSA PRIVATE KEY), unencrypted"
note client/rsa.key.trad-enc.pem "client/rsa key, traditional PEM, Proc-Type: 4,ENCRYPTED, AES-128-CBC, KEY_PASSWORD"
note client/ec256.pem "client leaf CN=ec256 (EC P-256)"
note client/ec256.key.pem "key of client/ec256.pem (PKCS#8 PEM)"
note client/ec384.pem "client leaf CN=ec384 (EC P-384)"
note client/ec384.key.pem "key of client/ec384.pem (PKCS#8 PEM)"
note client/ec521.pem "client leaf CN=ec521 (EC P-521)"
note client/ec521.key.pem "key of client/ec521.pem (PKCS#8 PEM)"
note client/ed25519.pem "client leaf CN=ed25519 (Ed25519)"
note client/ed25519.key.pem "key of client/ed25519.pem (PKCS#8 PEM)"
note client/second.pem "second client identity CN=wsstep client B,O=wsstep tests (RSA 2048)"
note client/second.key.pem "key of client/second.pem (PKCS#8 PEM)"
note client/second.chain.pem "client/second leaf + intermediate"
note client/expired.pem "client leaf CN=expired, validity now-400d .. now-30d"
note client/expired.key.pem "key of client/expired.pem"
note client/notyet.pem "client leaf CN=notyet, validity now+30d .. now+395d"
note client/notyet.key.pem "key of client/notyet.pem"
note client/rsa1024.pem "client leaf CN=rsa1024 with an RSA 1024 key (unsupported)"
note client/rsa1024.key.pem "key of client/rsa1024.pem"
note client/secp256k1.pem "client leaf CN=secp256k1 on curve secp256k1 (unsupported)"
note client/secp256k1.key.pem "key of client/secp256k1.pem"
note client/self-signed.pem "self-signed client certificate CN=self-signed (issuer unknown to every trust store)"
note client/self-signed.key.pem "key of client/self-signed.pem"

# ---------------------------------------------------------------- PKCS#12 (openssl)
PP="pass:$P12_PASSWORD"
openssl pkcs12 -export -inkey "$K" -in "$C/rsa.pem" -certfile "$G/ca/intermediate.pem" \
  -name rsa-client -passout "$PP" -out "$G/p12/rsa-modern.p12"
openssl pkcs12 -export -legacy -inkey "$K" -in "$C/rsa.pem" -certfile "$G/ca/intermediate.pem" \
  -name rsa-client -passout "$PP" -out "$G/p12/rsa-legacy.p12"
openssl pkcs12 -export -inkey "$K" -in "$C/rsa.pem" -certfile "$G/ca/intermediate.pem" \
  -name rsa-client -passout pass: -out "$G/p12/rsa-empty-password.p12"
openssl pkcs12 -export -inkey "$C/ec256.key.pem" -in "$C/ec256.pem" \
  -certfile "$G/ca/intermediate.pem" -name ec256-client -passout "$PP" -out "$G/p12/ec256.p12"
openssl pkcs12 -export -nokeys -in "$C/rsa.chain.pem" -passout "$PP" -out "$G/p12/cert-only.p12"
note p12/rsa-modern.p12 "client/rsa key + leaf + intermediate, friendly name rsa-client, AES-256-CBC + PBKDF2 + SHA-256 MAC, P12_PASSWORD"
note p12/rsa-legacy.p12 "same content, legacy algorithms (RC2-40 certificates, 3DES key, SHA-1 MAC), P12_PASSWORD"
note p12/rsa-empty-password.p12 "same content, modern algorithms, empty password"
note p12/ec256.p12 "client/ec256 key + leaf + intermediate, friendly name ec256-client, P12_PASSWORD"
note p12/cert-only.p12 "client/rsa leaf + intermediate, no key, P12_PASSWORD"
note p12/java-modern.p12 "keytool PKCS12: key entry alias client (CN=java-modern), chain leaf+intermediate+root, JAVA_P12_PASSWORD (ASCII) for store and key"
note p12/java-truststore.p12 "keytool PKCS12 trust store: trusted entries root and intermediate only, JAVA_P12_PASSWORD"
note jks/client.jks "JKS: key entry client (CN=jks-client, chain leaf+intermediate: keytool does not store the root it finds in the store, key password JKS_KEY_PASSWORD) + trusted entry root; store password STORE_PASSWORD"
note jks/client.jceks "JCEKS with the same entries as client.jks (same identity), same passwords"
note jks/truststore.jks "JKS trust store: trusted entries root and intermediate only, STORE_PASSWORD"
note jks/client.chain.pem "leaf certificate of the client.jks / client.jceks key entry (keytool -exportcert -rfc)"

# ---------------------------------------------------------------- mobile provisioning
UUID=$(tr 'a-f' 'A-F' </proc/sys/kernel/random/uuid)
CREATED=$(plist_date 0)
EXPIRES=$(plist_date 90)
DEVCERT=$(openssl base64 -A -in "$C/rsa.cert.der")
cat >"$WORK/profile.plist" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>AppIDName</key>
	<string>wsstep Test App</string>
	<key>CreationDate</key>
	<date>$CREATED</date>
	<key>DeveloperCertificates</key>
	<array>
		<data>$DEVCERT</data>
	</array>
	<key>ExpirationDate</key>
	<date>$EXPIRES</date>
	<key>Name</key>
	<string>wsstep Test Profile</string>
	<key>TeamIdentifier</key>
	<array>
		<string>TEAM123456</string>
	</array>
	<key>TeamName</key>
	<string>wsstep tests</string>
	<key>TimeToLive</key>
	<integer>90</integer>
	<key>UUID</key>
	<string>$UUID</string>
	<key>Version</key>
	<integer>1</integer>
</dict>
</plist>
EOF
openssl cms -sign -binary -nodetach -outform DER -in "$WORK/profile.plist" \
  -signer "$C/rsa.pem" -inkey "$K" -certfile "$G/ca/intermediate.pem" \
  -out "$G/mobile/profile.mobileprovision"
DEVFP=$(openssl x509 -in "$C/rsa.pem" -noout -fingerprint -sha256 | sed 's/.*=//' | tr 'A-F' 'a-f')
cat >"$G/mobile/profile.expected" <<EOF
Name=wsstep Test Profile
AppIDName=wsstep Test App
TeamIdentifier=TEAM123456
UUID=$UUID
CreationDate=$CREATED
ExpirationDate=$EXPIRES
DeveloperCertificateCount=1
DeveloperCertificateSha256=$DEVFP
EOF
note mobile/profile.mobileprovision "CMS SignedData (DER, signed by client/rsa) over an Apple plist; ExpirationDate now+90d; DeveloperCertificates = client/rsa.pem"
note mobile/profile.expected "KEY=VALUE lines the profile must yield: Name, AppIDName, TeamIdentifier, UUID, CreationDate, ExpirationDate, DeveloperCertificateCount, DeveloperCertificateSha256 (lower-case hex with colons)"

# ---------------------------------------------------------------- garbage
openssl rand -out "$G/garbage/random.bin" 4096
{
  echo "-----BEGIN CERTIFICATE-----"
  openssl rand -base64 600
  echo "-----END CERTIFICATE-----"
} >"$G/garbage/not-a-cert.pem"
note garbage/random.bin "4096 random bytes"
note garbage/truncated.p12 "first half of p12/rsa-modern.p12"
note garbage/not-a-cert.pem "PEM block labelled CERTIFICATE holding random bytes"
P12_SIZE=$(stat -c %s "$G/p12/rsa-modern.p12")
head -c $((P12_SIZE / 2)) "$G/p12/rsa-modern.p12" >"$G/garbage/truncated.p12"

wait "$JAVA_P12_PID"
wait "$JAVA_JKS_PID"

# ---------------------------------------------------------------- self-checks
verify() { openssl verify -CAfile "$G/ca/root.pem" -untrusted "$G/ca/intermediate.pem" "$@"; }
verify -purpose sslserver "$G/server/localhost.pem"
verify -purpose sslclient "$C/rsa.pem" "$C/ec256.pem" "$C/ed25519.pem" "$C/second.pem" \
  "$WORK/java-modern.pem" "$WORK/jks.pem"
openssl verify -CAfile "$G/ca/other-root.pem" "$G/server/other-ca.pem"
openssl pkcs12 -in "$G/p12/rsa-legacy.p12" -legacy -passin "$PP" -noout
openssl pkcs12 -in "$G/p12/java-modern.p12" -passin "pass:$JAVA_P12_PASSWORD" -noout
cmp -s "$G/jks/client.chain.pem" "$WORK/jks.pem" ||
  [[ "$(openssl x509 -in "$G/jks/client.chain.pem" -outform DER | sha256sum)" == \
     "$(openssl x509 -in "$WORK/jks.pem" -outform DER | sha256sum)" ]]

# Every file has a README line and every README line a file.
(cd "$G" && find . -type f | sed 's|^\./||' | sort) >"$WORK/files"
cut -d: -f1 "$WORK/readme.lines" | sort >"$WORK/noted"
if ! cmp -s "$WORK/files" "$WORK/noted"; then
  echo "make_pki.sh: README notes (<) and files (>) differ:" >&3
  diff "$WORK/noted" "$WORK/files" >&3 || true
  exit 1
fi
note README.txt "this list"
{
  echo "wsstep test PKI, generated $(date -u +%Y-%m-%dT%H:%M:%SZ) by tests/pki/make_pki.sh."
  echo "Passwords: tests/pki/passwords.sh (P12_PASSWORD, KEY_PASSWORD, STORE_PASSWORD, JKS_KEY_PASSWORD, JAVA_P12_PASSWORD)."
  echo "Client subjects are CN=<file name>,O=wsstep tests unless stated."
  echo
  sort "$WORK/readme.lines"
} >"$G/README.txt"
printf '%s\n' "$STAMP" >"$G/.complete"

# Swap the new tree in: two renames, under the lock.
if [[ -e $OUT ]]; then
  mv "$OUT" "$WORK/old"
fi
mv "$G" "$OUT"
