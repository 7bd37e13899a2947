"""Password hashers for the tests of what a login costs."""

from django.contrib.auth.hashers import MD5PasswordHasher


class CountingPasswordHasher(MD5PasswordHasher):
    """MD5 (fast; tests only) that counts the passwords it hashes: checking a guess hashes
    it, and so does a guess for an unknown username (Django hashes it anyway, so that
    both take as long)."""

    hashed = 0

    def encode(self, password, salt):
        type(self).hashed += 1
        return super().encode(password, salt)
