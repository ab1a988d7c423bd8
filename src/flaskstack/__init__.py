"""flaskstack: Nginx + uWSGI + any WSGI app as one supervised, production-grade stack."""

__version__ = "0.1.0"
