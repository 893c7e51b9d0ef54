"""Test settings: the real settings, with a throwaway secret key and fast password hashing."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-not-secret")
os.environ.setdefault("CUTOVER_VAR_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "var", "test"))

from controlplane.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
# Static files come from the apps' folders in tests (no collectstatic step).
STATIC_ROOT = os.path.join(os.environ["CUTOVER_VAR_DIR"], "static")
os.makedirs(STATIC_ROOT, exist_ok=True)
WHITENOISE_USE_FINDERS = True
