"""The cluster's PKI and web credentials, kept on the control machine.

`pki` creates or reads the CA, node and client certificates, `credentials` the web user's
password and its bcrypt hash, `files` what deploy installs on each node. Only `ensure_pki`
needs the `cryptography` package (the control extra); reading paths does not.
"""
