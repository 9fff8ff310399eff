#!/usr/bin/python3
"""Cross-check of photosync's S2S tokens against JWT libraries we did not
write (Debian's python3-jwt and python3-jwcrypto), driving s2s_tool.

(a) Tokens minted by our C code: the actor token's RS256 signature must
    verify with PyJWT and with jwcrypto against the published certificate,
    its x5t must be base64url(SHA-1(DER)), and its claims must be as
    reference exchange-wire.md §4.4/§4.5 says; the unsigned outer token is
    decoded with PyJWT without verification.
(b) Tokens minted by PyJWT with a key whose certificate is registered
    (through a metadata document written here, in either product's shape)
    must be accepted by our validator; forged ones must be refused.

Usage: s2s_crosscheck.py PATH/TO/s2s_tool     (TAP output; meson test)
"""

import base64
import datetime
import hashlib
import hmac
import json
import subprocess
import sys
import tempfile
import time
import os

try:
    import jwt
    from jwcrypto import jwk as jc_jwk, jws as jc_jws
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
except ImportError as e:  # pragma: no cover
    print("1..0 # SKIP python3-jwt/jwcrypto/cryptography missing: %s" % e)
    sys.exit(0)

EXCHANGE_ID = "00000002-0000-0ff1-ce00-000000000000"
SHAREPOINT_ID = "00000003-0000-0ff1-ce00-000000000000"
EX_REALM = "9a8b7c6d-1111-4222-8333-944455566677"
PY_REALM = "5e6f7a8b-2222-4333-8444-a55566677788"
HOST = "mail.contoso.com"
AUD = "%s/%s@%s" % (EXCHANGE_ID, HOST, EX_REALM)
PY_ISS = "%s@%s" % (SHAREPOINT_ID, PY_REALM)

count = 0
failed = 0


def ok(cond, what, diag=None):
    global count, failed
    count += 1
    if not cond:
        failed += 1
    print("%sok %d - %s" % ("" if cond else "not ", count, what))
    if not cond and diag:
        for line in str(diag).splitlines():
            print("#   " + line)
    sys.stdout.flush()
    return cond


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unverified_header(tok):
    return jwt.get_unverified_header(tok)


def raw_json(part):
    pad = "=" * (-len(part) % 4)
    return base64.urlsafe_b64decode(part + pad).decode()


# --- (a) our tokens, checked by PyJWT and jwcrypto ---

def check_ours(tool, d):
    out = subprocess.run([tool, "mint", d], capture_output=True, text=True)
    if not ok(out.returncode == 0, "s2s_tool mint", out.stderr):
        return
    params = json.loads(out.stdout)
    with open(os.path.join(d, "cert.pem"), "rb") as f:
        cert_pem = f.read()
    cert = x509.load_pem_x509_certificate(cert_pem)
    der = cert.public_bytes(serialization.Encoding.DER)
    pub = cert.public_key()
    pub_pem = pub.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)
    want_x5t = b64url(hashlib.sha1(der).digest())
    with open(os.path.join(d, "token")) as f:
        token = f.read()
    aud = "%s/%s@%s" % (params["target_id"], params["host"],
                        params["target_realm"])
    iss = "%s@%s" % (params["client_id"], params["realm"])
    nbf, exp = str(params["now"]), str(params["now"] + params["lifetime"])

    # The outer token: alg none, an empty signature, decoded unverified.
    ok(token.endswith(".") and token.count(".") == 2,
       "outer token has an empty signature")
    ok(unverified_header(token) == {"typ": "JWT", "alg": "none"},
       "outer header {typ JWT, alg none}", unverified_header(token))
    outer = jwt.decode(token, options={"verify_signature": False})
    ok(outer.get("aud") == aud and outer.get("iss") == iss and
       outer.get("nbf") == nbf and outer.get("exp") == exp and
       outer.get("smtp") == params["smtp"] and
       outer.get("nameid") == params["smtp"] and
       outer.get("nii") == "urn:office:idp:activedirectory",
       "outer claims (aud, iss, nbf/exp strings, smtp, nameid, nii)", outer)
    actor = outer.get("actortoken", "")

    # The actor token: header, then signature by two libraries.
    hdr = unverified_header(actor)
    ok(hdr == {"typ": "JWT", "alg": "RS256", "x5t": want_x5t},
       "actor header {typ JWT, alg RS256, x5t base64url SHA-1(DER)}", hdr)
    ok(json.loads(raw_json(actor.split(".")[0])) == hdr and
       raw_json(actor.split(".")[0]).startswith('{"typ":"JWT","alg":"RS256"'),
       "actor header member order typ, alg, x5t")
    try:
        claims = jwt.decode(actor, key=pub, algorithms=["RS256"],
                            audience=aud, issuer=iss,
                            options={"require": ["exp", "nbf", "aud", "iss"]})
        ok(True, "PyJWT verifies the actor RS256 signature, aud, iss, nbf, exp")
    except Exception as e:  # noqa: BLE001
        claims = {}
        ok(False, "PyJWT verifies the actor RS256 signature", repr(e))
    ok(claims.get("nameid") == iss and claims.get("nbf") == nbf and
       claims.get("exp") == exp and
       claims.get("trustedfordelegation") == "true",
       "actor claims (nameid, nbf/exp strings, trustedfordelegation)", claims)
    try:
        key = jc_jwk.JWK.from_pem(pub_pem)
        s = jc_jws.JWS()
        s.deserialize(actor)
        s.verify(key, alg="RS256")
        ok(json.loads(s.payload) == claims, "jwcrypto verifies the actor "
           "RS256 signature")
    except Exception as e:  # noqa: BLE001
        ok(False, "jwcrypto verifies the actor RS256 signature", repr(e))
    # The verifiers are not vacuous: another key fails.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    try:
        jwt.decode(actor, key=other.public_key(), algorithms=["RS256"],
                   audience=aud)
        ok(False, "PyJWT refuses the actor with another key")
    except jwt.InvalidSignatureError:
        ok(True, "PyJWT refuses the actor with another key")

    # The app-only token: the signed actor alone.
    with open(os.path.join(d, "apponly")) as f:
        app = f.read()
    try:
        c = jwt.decode(app, key=pub, algorithms=["RS256"], audience=aud)
        ok("trustedfordelegation" not in c and c.get("nameid") == iss,
           "app-only token verifies, no trustedfordelegation", c)
    except Exception as e:  # noqa: BLE001
        ok(False, "app-only token verifies", repr(e))

    # Our validator accepts what we minted, with our published metadata.
    r = subprocess.run([tool, "validate", os.path.join(d, "token"),
                        os.path.join(d, "metadata.json")],
                       capture_output=True, text=True)
    ok(r.returncode == 0 and "user=" + params["smtp"] in r.stdout,
       "s2s_tool validates its own token", r.stdout + r.stderr)


# --- (b) PyJWT's tokens, checked by our validator ---

def make_cert(cn):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.DER)


def sharepoint_doc(der):
    # §4.2, as a real SharePoint farm writes it (S19): keyValue, Signing.
    return {"issuer": PY_ISS,
            "keys": [{"keyValue": {"type": "x509certificate",
                                   "value": base64.b64encode(der).decode()},
                      "usage": "Signing"}],
            "name": SHAREPOINT_ID, "serviceName": SHAREPOINT_ID}


def exchange_doc(der):
    # The Exchange shape (S18): keyvalue, x509Certificate, keyinfo.x5t.
    return {"id": "_0a1b2c3d-0000-4000-8000-000000000001", "version": "1.0",
            "name": "Exchange", "realm": PY_REALM,
            "serviceName": SHAREPOINT_ID, "issuer": PY_ISS,
            "allowedAudiences": [PY_ISS],
            "keys": [{"usage": "signing",
                      "keyinfo": {"x5t": base64.b64encode(
                          hashlib.sha1(der).digest()).decode()},
                      "keyvalue": {"type": "x509Certificate",
                                   "value": base64.b64encode(der).decode()}}],
            "endpoints": [{"location": "https://sp/metadata/json/1",
                           "protocol": "OAuth2", "usage": "metadata"}]}


def actor_claims(now, **over):
    c = {"aud": AUD, "iss": PY_ISS, "nbf": str(now),
         "exp": str(now + 3600), "nameid": PY_ISS,
         "trustedfordelegation": "true"}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def outer_token(actor, now, **over):
    c = {"aud": AUD, "iss": PY_ISS, "nbf": str(now), "exp": str(now + 3600),
         "nameid": "test9@contoso.com", "nii": "urn:office:idp:activedirectory",
         "smtp": "test9@contoso.com", "actortoken": actor}
    c.update(over)
    c = {k: v for k, v in c.items() if v is not None}
    return jwt.encode(c, None, algorithm="none")


def hs256(header, claims, secret):
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(claims, separators=(",", ":")).encode())
    mac = hmac.new(secret, ("%s.%s" % (h, p)).encode(), hashlib.sha256)
    return "%s.%s.%s" % (h, p, b64url(mac.digest()))


def run_validate(tool, d, tok, md):
    tf = os.path.join(d, "py-token")
    with open(tf, "w") as f:
        f.write(tok)
    r = subprocess.run([tool, "validate", tf, md], capture_output=True,
                       text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


def check_theirs(tool, d):
    key, der = make_cert("python STS")
    okey, oder = make_cert("intruder")
    x5t = b64url(hashlib.sha1(der).digest())
    now = int(time.time())
    century = 100 * 365 * 86400
    docs = {}
    for shape, doc in (("SharePoint", sharepoint_doc(der)),
                       ("Exchange", exchange_doc(der))):
        p = os.path.join(d, "py-%s.json" % shape)
        with open(p, "w") as f:
            json.dump(doc, f)
        docs[shape] = p

    def actor(claims, k=key, alg="RS256", hdr_x5t=x5t):
        return jwt.encode(claims, k, algorithm=alg,
                          headers={"typ": "JWT", "x5t": hdr_x5t})

    good = outer_token(actor(actor_claims(now)), now)
    ok(good.endswith("."), "PyJWT alg none token has an empty signature")
    for shape, md in docs.items():
        rc, out = run_validate(tool, d, good, md)
        ok(rc == 0 and "user=test9@contoso.com" in out and
           "partner=" + PY_ISS in out and "app_only=0" in out,
           "PyJWT token accepted (partner from %s-shape metadata)" % shape,
           out)
    md = docs["SharePoint"]

    # Accepted variants.
    num = outer_token(actor(actor_claims(now, nbf=now, exp=now + 3600)), now,
                      nbf=now, exp=now + 3600)
    rc, out = run_validate(tool, d, num, md)
    ok(rc == 0, "numeric nbf/exp accepted", out)
    rc, out = run_validate(tool, d, actor(actor_claims(
        now, trustedfordelegation=None)), md)
    ok(rc == 0 and "app_only=1" in out and "user= " in out,
       "PyJWT actor alone accepted as app-only", out)
    # A token bound to addresses: the digest as hashlib makes it.
    want = b64url(hashlib.sha256(b"a@contoso.com\ntest9@contoso.com\n")
                  .digest())
    rc, out = run_validate(tool, d, actor(actor_claims(
        now, trustedfordelegation=None,
        photosync_addresses_sha256=want)), md)
    ok(rc == 0 and out.endswith("addresses=" + want),
       "PyJWT app-only token bound to two addresses: digest read", out)
    # TokenHelper's lifetime, 12 hours, is the longest accepted.
    h12 = now + 12 * 3600
    rc, out = run_validate(tool, d, outer_token(actor(actor_claims(
        now, exp=str(h12))), now, exp=h12), md)
    ok(rc == 0, "PyJWT token valid for 12 hours accepted", out)

    # Forgeries.
    forged = [
        ("actor signed by an unregistered key, registered x5t",
         outer_token(actor(actor_claims(now), k=okey), now), "bad signature"),
        ("actor x5t of an unregistered certificate",
         outer_token(actor(actor_claims(now), k=okey,
                           hdr_x5t=b64url(hashlib.sha1(oder).digest())), now),
         "no partner certificate"),
        ("actor HS256 keyed with the certificate (alg confusion)",
         outer_token(hs256({"typ": "JWT", "alg": "HS256", "x5t": x5t},
                           actor_claims(now), der), now), "not RS256"),
        ("actor alg none",
         outer_token(jwt.encode(actor_claims(now), None, algorithm="none",
                                headers={"x5t": x5t}), now), "not RS256"),
        ("outer alg none without actortoken",
         outer_token(None, now), "without an actortoken"),
        ("actor for another host",
         outer_token(actor(actor_claims(
             now, aud="%s/evil.contoso.com@%s" % (EXCHANGE_ID, EX_REALM))),
             now), "not for host"),
        ("actor expired",
         outer_token(actor(actor_claims(now - 7200, exp=str(now - 3600))),
                     now), "expired"),
        ("outer iss is not the actor nameid",
         outer_token(actor(actor_claims(now)), now,
                     iss=PY_ISS.upper()), "iss is not the actor's nameid"),
        ("actor without trustedfordelegation, with a user",
         outer_token(actor(actor_claims(now, trustedfordelegation=None)),
                     now), "not trusted for delegation"),
        ("actor valid for 100 years",
         outer_token(actor(actor_claims(now, exp=str(now + century))),
                     now), "actor token: lifetime longer than 12 hours"),
        ("outer valid for 100 years",
         outer_token(actor(actor_claims(now)), now,
                     exp=str(now + century)),
         "outer token: lifetime longer than 12 hours"),
        ("outer valid a second longer than 12 hours",
         outer_token(actor(actor_claims(now)), now,
                     exp=now + 12 * 3600 + 1),
         "outer token: lifetime longer than 12 hours"),
        ("app-only actor without nbf valid for 100 years",
         actor(actor_claims(now, nbf=None, trustedfordelegation=None,
                            exp=now + century)),
         "actor token: lifetime longer than 12 hours"),
    ]
    for what, tok, why in forged:
        rc, out = run_validate(tool, d, tok, md)
        ok(rc == 1 and out.startswith("REFUSED") and why in out and
           "eyJ" not in out, "forged: %s" % what, out)
    # Tampered: PyJWT-signed payload swapped.
    a = actor(actor_claims(now)).split(".")
    b = actor(actor_claims(now, exp=str(now + 86400 * 365))).split(".")
    rc, out = run_validate(tool, d, outer_token(
        "%s.%s.%s" % (b[0], b[1], a[2]), now), md)
    ok(rc == 1 and "bad signature" in out, "forged: tampered actor payload",
       out)


def main():
    if len(sys.argv) != 2:
        print("usage: s2s_crosscheck.py S2S_TOOL", file=sys.stderr)
        return 2
    tool = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="s2s_crosscheck.") as d:
        check_ours(tool, d)
        check_theirs(tool, d)
    print("1..%d" % count)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
