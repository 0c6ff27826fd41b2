#!/usr/bin/env bash
# Test certificates for the TLS listener: a CA, the broker's certificate for 127.0.0.1 and
# localhost, and a client certificate, all signed by the CA. Usage: make-certs.sh DIR
# Writes DIR/{ca,server,client}.pem and DIR/{server,client}.key (PKCS#8). Needs the openssl CLI.
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
quiet() { "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; }
quiet openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=vltava test CA"
for who in server client; do
  quiet openssl req -newkey rsa:2048 -nodes -keyout "$who.key" -out "$who.csr" -subj "/CN=vltava-$who"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$who.ext"
  quiet openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$who.pem" -days 2 -extfile "$who.ext"
done
rm -f ./*.csr ./*.ext ca.srl
