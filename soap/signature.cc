#include "soap/signature.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <xmlsec/crypto.h>
#include <xmlsec/errors.h>
#include <xmlsec/openssl/evp.h>
#include <xmlsec/templates.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>

#include <memory>
#include <mutex>

#include "core/ossl.h"
#include "soap/wssecurity.h"

namespace wsstep::soap {
namespace {

using XmlDocPtr = std::unique_ptr<xmlDoc, ossl::Deleter<xmlFreeDoc>>;
using DsigCtxPtr = std::unique_ptr<xmlSecDSigCtx, ossl::Deleter<xmlSecDSigCtxDestroy>>;
using XmlSecKeyPtr = std::unique_ptr<xmlSecKey, ossl::Deleter<xmlSecKeyDestroy>>;

const xmlChar* X(std::string_view s) { return reinterpret_cast<const xmlChar*>(s.data()); }
std::string_view Sv(const xmlChar* s) {
  return s == nullptr ? std::string_view() : std::string_view(reinterpret_cast<const char*>(s));
}

// The last xmlsec error on this thread, for the SIGNING_FAILED message. xmlsec's default
// callback prints to stderr, which belongs to the plugin's JSON log.
thread_local std::string last_xmlsec_error;

void CollectXmlsecError(const char* /*file*/, int /*line*/, const char* func,
                        const char* /*object*/, const char* subject, int reason, const char* msg) {
  std::string text = func != nullptr ? func : "xmlsec";
  if (subject != nullptr) text += std::string(" (") + subject + ")";
  const char* reason_text = xmlSecErrorsGetMsg(static_cast<xmlSecSize>(reason));
  if (reason_text != nullptr) text += std::string(": ") + reason_text;
  if (msg != nullptr && *msg != '\0') text += std::string("; ") + msg;
  last_xmlsec_error = std::move(text);
}

// xmlsec and its OpenSSL backend are initialised once per process, on first use: only a
// step that signs pays for it, and main() need not know about xmlsec. Neither touches
// signal dispositions or OpenSSL's providers.
Status InitXmlsecOnce() {
  static const Status status = [] {
    xmlInitParser();
    if (xmlSecInit() < 0 || xmlSecCheckVersion() != 1) {
      return Status(Error(Code::kInternal, "xmlsec: the library does not initialise"));
    }
    xmlSecErrorsSetCallback(CollectXmlsecError);
    if (xmlSecCryptoAppInit(nullptr) < 0 || xmlSecCryptoInit() < 0) {
      return Status(Error(Code::kInternal, "xmlsec: the OpenSSL backend does not initialise"));
    }
    return Status();
  }();
  return status;
}

Error SigningFailed(std::string message, std::string hint = {}) {
  return Error(Code::kSigningFailed, "WS-Security signature: " + std::move(message),
               hint.empty() ? "Check the certificate bound to the endpoint and the step's "
                              "signature options."
                            : std::move(hint),
               Side::kClient);
}

Error XmlsecFailed(std::string_view what) {
  std::string message = std::string(what);
  if (!last_xmlsec_error.empty()) message += ": " + last_xmlsec_error;
  last_xmlsec_error.clear();
  return SigningFailed(std::move(message));
}

xmlSecTransformId SignatureTransform(SignatureAlgorithm a) {
  switch (a) {
    case SignatureAlgorithm::kRsaSha256:
      return xmlSecTransformRsaSha256Id;
    case SignatureAlgorithm::kRsaSha384:
      return xmlSecTransformRsaSha384Id;
    case SignatureAlgorithm::kRsaSha512:
      return xmlSecTransformRsaSha512Id;
    case SignatureAlgorithm::kEcdsaSha256:
      return xmlSecTransformEcdsaSha256Id;
    case SignatureAlgorithm::kEcdsaSha384:
      return xmlSecTransformEcdsaSha384Id;
    case SignatureAlgorithm::kEcdsaSha512:
      return xmlSecTransformEcdsaSha512Id;
    case SignatureAlgorithm::kByKeyType:
      break;
  }
  return xmlSecTransformIdUnknown;
}

xmlSecTransformId DigestTransform(DigestAlgorithm d) {
  switch (d) {
    case DigestAlgorithm::kSha256:
      return xmlSecTransformSha256Id;
    case DigestAlgorithm::kSha384:
      return xmlSecTransformSha384Id;
    case DigestAlgorithm::kSha512:
      return xmlSecTransformSha512Id;
  }
  return xmlSecTransformIdUnknown;
}

bool IsRsa(SignatureAlgorithm a) {
  return a == SignatureAlgorithm::kRsaSha256 || a == SignatureAlgorithm::kRsaSha384 ||
         a == SignatureAlgorithm::kRsaSha512;
}

std::string KeyTypeName(const EVP_PKEY* key) {
  const char* name = EVP_PKEY_get0_type_name(key);
  return name != nullptr ? name : "unknown";
}

// The first element child of `parent` named `local` in namespace `ns`.
xmlNodePtr FindChild(xmlNodePtr parent, std::string_view local, std::string_view ns) {
  for (xmlNodePtr c = parent != nullptr ? parent->children : nullptr; c != nullptr; c = c->next) {
    if (c->type == XML_ELEMENT_NODE && Sv(c->name) == local && c->ns != nullptr &&
        Sv(c->ns->href) == ns) {
      return c;
    }
  }
  return nullptr;
}

xmlNodePtr FindSecurityHeader(xmlDocPtr doc) {
  xmlNodePtr envelope = xmlDocGetRootElement(doc);
  if (envelope == nullptr || envelope->ns == nullptr) return nullptr;
  xmlNodePtr header = FindChild(envelope, "Header", Sv(envelope->ns->href));
  return FindChild(header, "Security", kWsseNamespace);
}

std::string IssuerRfc2253(X509* cert) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), X509_get_issuer_name(cert), 0,
                                 XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
    return {};
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

std::string SerialDecimal(X509* cert) {
  std::unique_ptr<BIGNUM, ossl::Deleter<BN_free>> bn(
      ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!bn) return {};
  char* text = BN_bn2dec(bn.get());
  if (text == nullptr) return {};
  std::string out(text);
  OPENSSL_free(text);
  return out;
}

Result<std::string> CertificateBase64(X509* cert) {
  unsigned char* der = nullptr;
  const int n = i2d_X509(cert, &der);
  if (n <= 0) return SigningFailed("the certificate cannot be encoded: " + ossl::DrainErrors());
  std::string out = Base64Encode(std::span<const uint8_t>(der, static_cast<size_t>(n)));
  OPENSSL_free(der);
  return out;
}

// Adds <wsse:BinarySecurityToken> with the certificate before `before`.
Status AddBinarySecurityToken(xmlNodePtr security, xmlNodePtr before, X509* cert) {
  WSSTEP_ASSIGN_OR_RETURN(std::string b64, CertificateBase64(cert));
  xmlNsPtr wsse = xmlSearchNsByHref(security->doc, security, X(kWsseNamespace));
  xmlNsPtr wsu = xmlSearchNsByHref(security->doc, security, X(kWsuNamespace));
  xmlNodePtr token = xmlNewDocNode(security->doc, wsse, X("BinarySecurityToken"), nullptr);
  if (token == nullptr || wsse == nullptr || wsu == nullptr) {
    return SigningFailed("the security header lacks its wsse/wsu namespaces");
  }
  xmlNodeAddContent(token, X(b64.c_str()));
  xmlNewProp(token, X("EncodingType"), X(std::string(kBase64BinaryEncoding).c_str()));
  xmlNewProp(token, X("ValueType"), X(std::string(kX509v3TokenType).c_str()));
  xmlNewNsProp(token, wsu, X("Id"), X(std::string(kTokenId).c_str()));
  if (before != nullptr) {
    xmlAddPrevSibling(before, token);
  } else {
    xmlAddChild(security, token);
  }
  return Status();
}

// <wsse:SecurityTokenReference> inside ds:KeyInfo: a Reference to the token, or the
// certificate's issuer and serial number.
Status AddTokenReference(xmlNodePtr key_info, X509* cert, TokenReference reference) {
  xmlNsPtr wsse = xmlSearchNsByHref(key_info->doc, key_info, X(kWsseNamespace));
  xmlNodePtr str = xmlNewChild(key_info, wsse, X("SecurityTokenReference"), nullptr);
  if (str == nullptr) return XmlsecFailed("cannot add the SecurityTokenReference");
  if (reference == TokenReference::kDirect) {
    xmlNodePtr ref = xmlNewChild(str, wsse, X("Reference"), nullptr);
    const std::string uri = "#" + std::string(kTokenId);
    xmlNewProp(ref, X("URI"), X(uri.c_str()));
    xmlNewProp(ref, X("ValueType"), X(std::string(kX509v3TokenType).c_str()));
    return Status();
  }
  const std::string issuer = IssuerRfc2253(cert);
  const std::string serial = SerialDecimal(cert);
  if (issuer.empty() || serial.empty()) {
    return SigningFailed("the certificate's issuer or serial number cannot be read");
  }
  xmlNodePtr data = xmlSecTmplKeyInfoAddX509Data(str);
  xmlNodePtr issuer_serial = data != nullptr ? xmlSecTmplX509DataAddIssuerSerial(data) : nullptr;
  if (issuer_serial == nullptr ||
      xmlSecTmplX509IssuerSerialAddIssuerName(issuer_serial, X(issuer.c_str())) == nullptr ||
      xmlSecTmplX509IssuerSerialAddSerialNumber(issuer_serial, X(serial.c_str())) == nullptr) {
    return XmlsecFailed("cannot add the X509IssuerSerial reference");
  }
  return Status();
}

}  // namespace

std::string_view SignatureAlgorithmUri(SignatureAlgorithm a) {
  switch (a) {
    case SignatureAlgorithm::kRsaSha256:
      return "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
    case SignatureAlgorithm::kRsaSha384:
      return "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384";
    case SignatureAlgorithm::kRsaSha512:
      return "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
    case SignatureAlgorithm::kEcdsaSha256:
      return "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
    case SignatureAlgorithm::kEcdsaSha384:
      return "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384";
    case SignatureAlgorithm::kEcdsaSha512:
      return "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512";
    case SignatureAlgorithm::kByKeyType:
      break;
  }
  return "";
}

std::string_view DigestAlgorithmUri(DigestAlgorithm d) {
  switch (d) {
    case DigestAlgorithm::kSha256:
      return "http://www.w3.org/2001/04/xmlenc#sha256";
    case DigestAlgorithm::kSha384:
      return "http://www.w3.org/2001/04/xmldsig-more#sha384";
    case DigestAlgorithm::kSha512:
      return "http://www.w3.org/2001/04/xmlenc#sha512";
  }
  return "";
}

std::vector<std::string> SignatureOptions::EffectiveParts() const {
  if (!parts.empty()) return parts;
  return {std::string(kPartBody), std::string(kPartTimestamp)};
}

Result<SignatureAlgorithm> AlgorithmForKey(const EVP_PKEY* key, SignatureAlgorithm requested) {
  const int id = EVP_PKEY_get_base_id(key);
  const bool rsa = id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS;
  const bool ec = id == EVP_PKEY_EC;
  if (!rsa && !ec) {
    return SigningFailed(
        "the bound certificate's key is " + KeyTypeName(key) +
            "; WS-Security X.509 signatures need an RSA or EC key (RSA-SHA256 / ECDSA-SHA256)",
        "Bind an RSA or EC certificate to the endpoint, or turn the signature off.");
  }
  if (requested == SignatureAlgorithm::kByKeyType) {
    return rsa ? SignatureAlgorithm::kRsaSha256 : SignatureAlgorithm::kEcdsaSha256;
  }
  if (IsRsa(requested) != rsa) {
    return SigningFailed("the bound certificate's key is " + KeyTypeName(key) +
                             ", which cannot "
                             "make " +
                             std::string(SignatureAlgorithmUri(requested)),
                         "Leave the signature algorithm unset (chosen by the key's type), or "
                         "pick one for a " +
                             KeyTypeName(key) + " key.");
  }
  return requested;
}

Result<SignedEnvelope> SignEnvelope(std::string_view envelope,
                                    const std::vector<std::string>& signed_ids,
                                    const core::Identity& identity,
                                    const SignatureOptions& options) {
  if (!identity.key || !identity.leaf) {
    return SigningFailed("the identity has no private key or certificate");
  }
  WSSTEP_ASSIGN_OR_RETURN(SignatureAlgorithm algorithm,
                          AlgorithmForKey(identity.key.get(), options.algorithm));
  WSSTEP_RETURN_IF_ERROR(InitXmlsecOnce());
  last_xmlsec_error.clear();

  // The envelope is ours (built by BuildEnvelope, DOCTYPE refused in every fragment);
  // still, no network and no entity expansion.
  XmlDocPtr doc(xmlReadMemory(envelope.data(), static_cast<int>(envelope.size()), nullptr, "utf-8",
                              XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
  if (!doc) return SigningFailed("the built envelope cannot be read back by libxml2");
  xmlNodePtr security = FindSecurityHeader(doc.get());
  if (security == nullptr) return SigningFailed("the envelope has no wsse:Security header");

  // The parts carry wsu:Id; xmlsec finds "#id" references through the document's ID table.
  const xmlChar* id_attrs[] = {X("Id"), nullptr};
  xmlSecAddIDs(doc.get(), xmlDocGetRootElement(doc.get()), id_attrs);

  xmlNodePtr signature = xmlSecTmplSignatureCreateNsPref(
      doc.get(), xmlSecTransformExclC14NId, SignatureTransform(algorithm), nullptr, X("ds"));
  if (signature == nullptr) return XmlsecFailed("cannot create the signature template");
  xmlAddChild(security, signature);
  for (const std::string& id : signed_ids) {
    if (xmlGetID(doc.get(), X(id.c_str())) == nullptr) {
      return SigningFailed("the part with wsu:Id \"" + id + "\" is missing from the envelope");
    }
    const std::string uri = "#" + id;
    xmlNodePtr ref = xmlSecTmplSignatureAddReference(signature, DigestTransform(options.digest),
                                                     nullptr, X(uri.c_str()), nullptr);
    if (ref == nullptr ||
        xmlSecTmplReferenceAddTransform(ref, xmlSecTransformExclC14NId) == nullptr) {
      return XmlsecFailed("cannot add the reference to " + uri);
    }
  }
  xmlNodePtr key_info = xmlSecTmplSignatureEnsureKeyInfo(signature, nullptr);
  if (key_info == nullptr) return XmlsecFailed("cannot add KeyInfo");
  if (options.reference == TokenReference::kDirect) {
    WSSTEP_RETURN_IF_ERROR(AddBinarySecurityToken(security, signature, identity.leaf.get()));
  }
  WSSTEP_RETURN_IF_ERROR(AddTokenReference(key_info, identity.leaf.get(), options.reference));

  // The key stays in this process: xmlsec takes a reference to the same EVP_PKEY.
  ossl::EvpPkeyPtr pkey = ossl::UpRef(identity.key.get());
  xmlSecKeyDataPtr data = xmlSecOpenSSLEvpKeyAdopt(pkey.get());
  if (data == nullptr)
    return XmlsecFailed("xmlsec does not take the " + KeyTypeName(pkey.get()) + " key");
  (void)pkey.release();  // owned by `data` now
  XmlSecKeyPtr key(xmlSecKeyCreate());
  if (!key || xmlSecKeySetValue(key.get(), data) < 0) {
    xmlSecKeyDataDestroy(data);
    return XmlsecFailed("cannot wrap the key");
  }
  DsigCtxPtr ctx(xmlSecDSigCtxCreate(nullptr));
  if (!ctx) return XmlsecFailed("cannot create the signing context");
  ctx->signKey = key.release();  // destroyed with the context
  if (xmlSecDSigCtxSign(ctx.get(), signature) < 0) return XmlsecFailed("signing failed");

  xmlChar* out = nullptr;
  int out_len = 0;
  xmlDocDumpMemoryEnc(doc.get(), &out, &out_len, "utf-8");
  if (out == nullptr || out_len <= 0) return SigningFailed("the signed envelope cannot be written");
  SignedEnvelope result;
  result.body.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(out_len));
  // A PasswordText token may be in there: leave nothing behind in libxml2's buffer.
  OPENSSL_cleanse(out, static_cast<size_t>(out_len));
  xmlFree(out);
  result.facts.signature_algorithm = std::string(SignatureAlgorithmUri(algorithm));
  result.facts.digest_algorithm = std::string(DigestAlgorithmUri(options.digest));
  result.facts.certificate_fingerprint = identity.fingerprint;
  result.facts.reference = options.reference;
  result.facts.signed_ids = signed_ids;
  return result;
}

}  // namespace wsstep::soap
