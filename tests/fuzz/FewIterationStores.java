// Copies a Java key store with few key-derivation iterations, for the fuzz corpus
// (make_corpus.sh compiles and runs it).
// The fuzz targets refuse more than 64 iterations (core/private_key.h), so seeds written
// with the JDK's defaults (10,000 for PKCS#12, 200,000 for JCEKS) would never decrypt there.
//
//   pkcs12 SRC DEST PASSWORD
//       Every entry re-stored as `keytool -importkeystore` does: keys recovered and
//       protected again. The counts come from the keystore.pkcs12.*IterationCount
//       properties (-D on the java command line).
//   jceks SRC DEST STORE_PASSWORD KEY_PASSWORD ITERATIONS
//       keytool cannot go below 10,000 here (jdk.jceks.iterationCount), so each key is
//       protected the way the JDK's KeyProtector does it (PBEWithMD5AndTripleDES over the
//       PKCS#8 encoding, in an EncryptedPrivateKeyInfo) but with ITERATIONS, and stored
//       as an already-protected key.
//
// Passwords are taken as the JVM decodes its arguments: run it in a UTF-8 locale.
import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.security.AlgorithmParameters;
import java.security.Key;
import java.security.KeyStore;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.Collections;
import javax.crypto.Cipher;
import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import javax.crypto.spec.PBEParameterSpec;

public class FewIterationStores {
  private static final String JCE_PBE = "PBEWithMD5AndTripleDES";
  // 1.3.6.1.4.1.42.2.19.1, DER-encoded.
  private static final byte[] JCE_PBE_OID = {
      0x06, 0x09, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x2A, 0x02, 0x13, 0x01};

  public static void main(String[] args) throws Exception {
    if (args.length == 4 && args[0].equals("pkcs12")) {
      char[] password = args[3].toCharArray();
      KeyStore src = load("PKCS12", args[1], password);
      KeyStore dest = load("PKCS12", null, null);
      for (String alias : Collections.list(src.aliases())) {
        if (src.isKeyEntry(alias)) {
          dest.setKeyEntry(alias, src.getKey(alias, password), password,
              src.getCertificateChain(alias));
        } else {
          dest.setCertificateEntry(alias, src.getCertificate(alias));
        }
      }
      store(dest, args[2], password);
    } else if (args.length == 6 && args[0].equals("jceks")) {
      char[] storePassword = args[3].toCharArray();
      char[] keyPassword = args[4].toCharArray();
      int iterations = Integer.parseInt(args[5]);
      KeyStore src = load("JCEKS", args[1], storePassword);
      KeyStore dest = load("JCEKS", null, null);
      for (String alias : Collections.list(src.aliases())) {
        if (src.isKeyEntry(alias)) {
          Key key = src.getKey(alias, keyPassword);
          dest.setKeyEntry(alias, protect(key.getEncoded(), keyPassword, iterations),
              src.getCertificateChain(alias));
        } else {
          dest.setCertificateEntry(alias, src.getCertificate(alias));
        }
      }
      store(dest, args[2], storePassword);
    } else {
      System.err.println("usage: FewIterationStores pkcs12 SRC DEST PASSWORD\n"
          + "       FewIterationStores jceks SRC DEST STORE_PASSWORD KEY_PASSWORD ITERATIONS");
      System.exit(2);
    }
  }

  // The DER EncryptedPrivateKeyInfo of `pkcs8` under PBEWithMD5AndTripleDES, spelled out
  // because the public EncryptedPrivateKeyInfo does not know the algorithm's Sun OID.
  static byte[] protect(byte[] pkcs8, char[] password, int iterations) throws Exception {
    // A random salt with two different halves: when they are equal the first half is
    // permuted before hashing, and JDKs disagree on how (older ones [a,b,c,d] -> [d,a,b,d],
    // from a typo; JDK 17 [d,c,b,a]), and core/jks.cc follows the older ones.
    byte[] salt = new byte[8];
    do {
      new SecureRandom().nextBytes(salt);
    } while (Arrays.equals(salt, 0, 4, salt, 4, 8));
    PBEParameterSpec spec = new PBEParameterSpec(salt, iterations);
    Cipher cipher = Cipher.getInstance(JCE_PBE);
    cipher.init(Cipher.ENCRYPT_MODE,
        SecretKeyFactory.getInstance(JCE_PBE).generateSecret(new PBEKeySpec(password)), spec);
    AlgorithmParameters params = AlgorithmParameters.getInstance(JCE_PBE);
    params.init(spec);
    byte[] algorithm = der(0x30, JCE_PBE_OID, params.getEncoded());  // {OID, PBEParameter}
    return der(0x30, algorithm, der(0x04, cipher.doFinal(pkcs8)));
  }

  static byte[] der(int tag, byte[]... parts) throws Exception {
    ByteArrayOutputStream content = new ByteArrayOutputStream();
    for (byte[] p : parts) content.write(p);
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.write(tag);
    int n = content.size();
    if (n < 0x80) {
      out.write(n);
    } else {
      int octets = n > 0xFFFF ? 3 : n > 0xFF ? 2 : 1;
      out.write(0x80 | octets);
      for (int i = octets - 1; i >= 0; --i) out.write(n >>> (8 * i));
    }
    content.writeTo(out);
    return out.toByteArray();
  }

  static KeyStore load(String type, String path, char[] password) throws Exception {
    KeyStore ks = KeyStore.getInstance(type);
    if (path == null) {
      ks.load(null, null);
    } else {
      try (FileInputStream in = new FileInputStream(path)) {
        ks.load(in, password);
      }
    }
    return ks;
  }

  static void store(KeyStore ks, String path, char[] password) throws Exception {
    try (FileOutputStream out = new FileOutputStream(path)) {
      ks.store(out, password);
    }
  }
}
