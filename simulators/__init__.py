"""Simulated Microsoft Graph and simulated booking system (SPEC §10).

Shipped with the product: the tests and `roombridge demo` run the real bridge against them over loopback HTTP.
"""
