// MemoryX gateway, client side (njs 0.7): the certificate and its key for one TLS handshake.
// gateway.pem holds both (leaf, chain, then key). nginx.conf hands the same value to
// ssl_certificate and ssl_certificate_key ("data:$mx_gateway_pem"), and nginx evaluates a
// js_set variable once per handshake, so the pair comes from one read of the file. Naming the
// file twice instead opens it twice: a renewal renamed into place between the two opens gave
// one handshake the old certificate with the new key ("key values mismatch", a TLS alert).
import fs from 'fs';

function pem(r) {
    return fs.readFileSync(r.variables.mx_gateway_pem_file, 'utf8');
}

export default {pem: pem};
