"""SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760), pure.

- :mod:`sbc.auth.digest`: algorithms and the response computation (RFC 7616 §3.4).
- :mod:`sbc.auth.challenge`: ``WWW-Authenticate``/``Proxy-Authenticate`` and
  ``Authorization``/``Proxy-Authorization`` values, parsed and serialized.
- :mod:`sbc.auth.client`: answering a trunk's 401/407 (the SBC as a UAC).
- :mod:`sbc.auth.server`: challenging peers and checking their answers.
- :mod:`sbc.auth.secrets`: passwords referenced by policy, never printed.
"""
