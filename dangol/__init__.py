"""The service as a whole: the ``dangol`` command and the app it serves, assembled from the other packages.

It is the only package that imports the API and the console together with
the engine: ``bot`` builds the app and its lifecycle, and this package mounts
the API (``bot.api``) and the console (``console``) on it, so neither is
imported back by what it renders.
"""
