"""The cluster's PKI and web credentials, kept on the control machine.

`pki` names the files and creates or reuses them (`ensure_pki`), `certs` builds the
certificates, `issue` decides whether one on disk is still good, `credentials` keeps the
web user's password and its bcrypt hash, `privatefile` writes secrets with their final
mode, and `files` gives what deploy installs on each node. Only `ensure_pki` needs the
`cryptography` package (the control extra); reading paths does not.
"""
