# Passwords of the generated test PKI (sourced by make_pki.sh). This file is UTF-8.
# The same values are constants in tests/support/pki.h; pki_test.cc checks they agree.
# Test-only values: they protect throw-away keys generated at test time.

# PKCS#12 files made with openssl (modern, legacy, ec256, cert-only): a space and
# non-ASCII letters, because passwords are bytes and must survive every layer.
P12_PASSWORD='p12 pässwörd'
# Encrypted PKCS#8 (PBES2, PBES1) and traditional encrypted PEM keys.
KEY_PASSWORD='key pass ü'
# Store password of the keytool stores (JKS, JCEKS, Java PKCS#12).
STORE_PASSWORD='store pass ☃'
# Key entries of client.jks / client.jceks. Deliberately differs from the store password,
# and is ASCII because Java's JCEKS key protection (PBEWithMD5AndTripleDES) refuses
# non-ASCII passwords ("Password is not ASCII").
JKS_KEY_PASSWORD='jks key pass'
# The two PKCS#12 files keytool writes (p12/java-modern.p12, p12/java-truststore.p12).
# ASCII because Java derives every PKCS#12 key (PBES2 encryption and the MAC) through
# javax.crypto PBEKey, which refuses non-ASCII passwords; Java cannot write or read a
# PKCS#12 with STORE_PASSWORD. Key password = store password, as PKCS#12 requires.
JAVA_P12_PASSWORD='java p12 pass'
