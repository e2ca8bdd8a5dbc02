"""Tests of the compiled hot paths against their references and the standards."""
