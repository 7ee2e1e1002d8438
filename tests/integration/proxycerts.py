"""Self-signed certificates for the integration tests (python cryptography when
installed, else the openssl command). A module of its own, not conftest, so
test files can import it whatever other test directories run in the session."""

import datetime
import os
import subprocess


def make_cert(host: str, out_dir: str):
    """A self-signed certificate for host; returns (cert_pem, key_pem, cert_der)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return make_cert_openssl(host, out_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert_pem, key_pem, cert.public_bytes(serialization.Encoding.DER)


def make_cert_openssl(host: str, out_dir: str):
    crt = os.path.join(out_dir, f"{host}.crt")
    key = os.path.join(out_dir, f"{host}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "30", "-subj", f"/CN={host}", "-addext",
                    f"subjectAltName=DNS:{host}"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"], check=True,
                         capture_output=True).stdout
    with open(crt) as f, open(key) as g:
        return f.read(), g.read(), der
